"""Optional dependencies: one line that names the extra to install, never a traceback from deep inside.

The core (``pip install marigold-suite``) needs none of these. ``require("h5py", "train", "NYUv2 files")``
imports the module or raises :class:`MissingDependency`, which every entry point (CLI, ``python -m
train.finetune`` / ``train.evaluate``, the ComfyUI nodes) prints as one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MarigoldError

DIST = "marigold-suite"
# module → the PyPI package that provides it (where the names differ)
PACKAGES = {"yaml": "pyyaml", "skimage": "scikit-image", "cv2": "opencv-python-headless",
            "torch.utils.tensorboard": "tensorboard", "av": "av", "OpenEXR": "OpenEXR"}


class MissingDependency(MarigoldError):
    """An optional package is not installed. The message says which extra (or package) brings it."""


def install_hint(module: str, extra: str | None) -> str:
    package = PACKAGES.get(module, module.split(".")[0])
    if extra:
        return f"pip install '{DIST}[{extra}]' (or just: pip install {package})"
    return f"pip install {package}"


def require(module: str, extra: str | None, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingDependency` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # a package that is present but fails inside its own imports is a different problem: let it show
        missing = getattr(e, "name", None) or module
        if missing.split(".")[0] not in (module.split(".")[0], PACKAGES.get(module)):
            raise
        raise MissingDependency(
            f"{feature} needs {PACKAGES.get(module, module.split('.')[0])}, which is not installed: "
            f"{install_hint(module, extra)}") from None
