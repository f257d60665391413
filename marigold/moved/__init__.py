"""Old module paths that still work: the flat modules of before the layout by part (``marigold.ensemble``,
``marigold.checkpoint``, ``marigold.video_io``, …) and the names the flat ``video.py``, ``io.py`` and
``geometry.py`` held, which are packages now. Each import by an old path gives the module (or name) that moved,
with a DeprecationWarning naming the new import; nothing is imported before it is asked for.

The public surface is ``import marigold`` (its ``__all__``); ``marigold.modality`` and ``marigold.prompts`` are
part of it, so importing them as modules is an alias without a warning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

# old module → where it lives now (renames: bas_relief/relief → geometry.relief, segment → modalities.segmentation)
MOVED = {
    "marigold.checkpoint": "marigold.core.checkpoint",
    "marigold.coalign": "marigold.core.coalign",
    "marigold.devices": "marigold.core.devices",
    "marigold.distributed": "marigold.core.distributed",
    "marigold.ensemble": "marigold.core.ensemble",
    "marigold.fast": "marigold.core.fast",
    "marigold.image": "marigold.core.image",
    "marigold.predict": "marigold.core.predict",
    "marigold.snippet": "marigold.core.snippet",
    "marigold.tiling": "marigold.core.tiling",
    "marigold.colorize": "marigold.io.colorize",
    "marigold.mesh": "marigold.geometry.mesh",
    "marigold.relief": "marigold.geometry.relief",
    "marigold.bas_relief": "marigold.geometry.relief",
    "marigold.stereo": "marigold.geometry.stereo",
    "marigold.segment": "marigold.modalities.segmentation",
    "marigold.flow": "marigold.video.flow",
    "marigold.frame_align": "marigold.video.frame_align",
    "marigold.video_distributed": "marigold.video.distributed",
    "marigold.video_io": "marigold.video.io",
    "marigold.video_output": "marigold.video.output",
}
# public names of ``import marigold`` that are modules: aliases, no warning
ALIASES = {"marigold.modality": "marigold.core.modality", "marigold.prompts": "marigold.core.prompts"}
# the packages that were flat modules: the old module's public names → the module that holds them now
PACKAGE_NAMES = {
    "marigold.video": ("marigold.video.pipeline", (
        "ALIGN_BORDER", "ALIGN_FACTOR", "CancelFn", "ClipNormalizer", "PRESETS", "ProgressFn", "SnippetRunner",
        "StreamingAligner", "VideoFrame", "VideoPrediction", "VideoPreset", "VideoStream", "cap_dilation",
        "clip_normalizer", "iter_video_depth", "plan_snippets", "predict_video", "rolling_units", "snippet_indices",
        "snippet_kind")),
    "marigold.io": ("marigold.io.images", (
        "IMAGE_SUFFIXES", "depth_to_uint16", "load_image", "read_exr", "save_depth_16bit", "save_exr", "save_npy",
        "save_rgb")),
    "marigold.geometry": ("marigold.geometry.normals", ("depth_to_normals",)),
}


def _warn(old: str, new: str) -> None:
    # stacklevel 3 (past this function and its caller): the warnings module skips the import system's own frames,
    # so the warning points at the user's import line (and is shown by default when that is __main__)
    warnings.warn(f"`{old}` moved to `{new}`; import it from there (or use the public names of `import marigold`). "
                  f"The old path will be removed.", DeprecationWarning, stacklevel=3)


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers only for the old paths above (the regular finders come first and know none of them), and only while
    the ``marigold`` imported is this package (not another project's of the same name)."""

    def find_spec(self, fullname, path, target=None):
        if (fullname in MOVED or fullname in ALIASES) and isinstance(sys.modules.get("marigold"), _Package):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = MOVED.get(spec.name) or ALIASES[spec.name]
        if spec.name in MOVED:
            _warn(spec.name, new)
        module = importlib.import_module(new)  # the same module object: its names, its state, its monkeypatches
        spec.loader_state = module.__spec__  # the import system sets __spec__ to the old path's; put it back below
        return module

    def exec_module(self, module) -> None:
        # already executed under its new name; its own spec keeps its relative imports resolving where they should
        module.__spec__ = module.__spec__.loader_state


class _Package(types.ModuleType):
    """``marigold`` itself: the import system sets an imported submodule on its package, and an old module path
    that shares its name with a public function (``marigold.predict``, ``.relief``, ``.segment``, ``.stereo``)
    must not replace the function, as the flat layout never did either."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and f"{self.__name__}.{name}" in MOVED \
                and not isinstance(self.__dict__.get(name, value), types.ModuleType):
            return
        super().__setattr__(name, value)


def package_getattr(package: str):
    """A module ``__getattr__`` for ``package`` (one of :data:`PACKAGE_NAMES`): the old flat module's names, with
    the warning; anything else is an AttributeError as usual (so submodules still import). Inside ComfyUI the
    package is ``<node pack>.marigold.video``: the same names, from its own ``pipeline``."""
    key = "marigold." + package.rsplit(".", 1)[-1]
    home, names = PACKAGE_NAMES[key]
    home = package + home[len(key):]

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        _warn(f"{package}.{name}", f"{home}.{name}")
        value = getattr(importlib.import_module(home), name)
        sys.modules[package].__dict__[name] = value  # warned once: `from package import name` asks twice
        return value

    return __getattr__


def install(package: str) -> None:
    """Serve the old paths (once per process); ``package``: "marigold", whose __init__ calls this last."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
    sys.modules[package].__class__ = _Package
