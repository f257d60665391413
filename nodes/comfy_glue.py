"""The one place that talks to ComfyUI's runtime: progress bar, interrupt, model folders, device placement.

It turns them into what the core takes: ``progress(done, total)`` and ``check_cancel()`` callbacks, and a
:class:`~marigold.MarigoldModel` on the device that ComfyUI's model management chose. The model's UNet and
VAE are wrapped in one ``ModelPatcher``, so ComfyUI loads them with ``load_models_gpu`` and unloads them
(back to the offload device) when another model needs the memory, exactly like its own models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths

from ._core import marigold

FOLDER = "marigold"  # models/marigold/: checkpoint folders, and the download cache for published repo ids


def register_model_folder() -> None:
    """Register ``models/marigold`` with folder_paths (idempotent; extra_model_paths.yaml may add more)."""
    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER), is_default=True)


def download_dir() -> str:
    register_model_folder()
    return folder_paths.get_folder_paths(FOLDER)[0]


def local_checkpoints() -> dict[str, str]:
    """Checkpoint folders (with a model_index.json) under models/marigold/ and models/diffusers/: name → path."""
    register_model_folder()
    found: dict[str, str] = {}
    for kind in (FOLDER, "diffusers"):
        for root in folder_paths.get_folder_paths(kind):
            if not os.path.isdir(root):
                continue
            for name in sorted(os.listdir(root)):
                path = os.path.join(root, name)
                if name.startswith((".", "models--")) or not os.path.isfile(os.path.join(path, "model_index.json")):
                    continue
                found.setdefault(f"{kind}/{name}", path)
    return found


def input_files(suffixes: tuple[str, ...]) -> list[str]:
    """Files in ComfyUI's input folder ending in one of ``suffixes``, sorted: what LoadImage lists, but by suffix
    (a 16-bit depth PNG, an .npy or .exr is no picture to it)."""
    root = folder_paths.get_input_directory()
    if not os.path.isdir(root):
        return []
    return sorted(f for f in os.listdir(root) if f.lower().endswith(suffixes) and not f.startswith(".")
                  and os.path.isfile(os.path.join(root, f)))


def input_path(name: str) -> str:
    """A name from :func:`input_files` (or ComfyUI's annotated ``name [input]``) → its path."""
    return folder_paths.get_annotated_filepath(name)


def input_fingerprint(name: str) -> str:
    """Changes when the file does (size and modification time), so that ComfyUI's cache reruns the node."""
    try:
        st = os.stat(input_path(name))
    except OSError:
        return f"{name}: missing"
    return f"{name}:{st.st_size}:{st.st_mtime_ns}"


class Progress:
    """``progress(done, total)`` for the core, shown on the running node's progress bar."""

    def __init__(self):
        self.bar: comfy.utils.ProgressBar | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = comfy.utils.ProgressBar(total)
        self.bar.update_absolute(done, total)


def check_cancel() -> None:
    """Raises ComfyUI's interrupt exception when the user pressed Cancel; the core calls it between steps."""
    mm.throw_exception_if_processing_interrupted()


class _Parts(torch.nn.Module):
    """UNet and VAE under one module, so one ModelPatcher moves both."""

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module):
        super().__init__()
        self.unet = unet
        self.vae = vae


@dataclass
class LoadedMarigold:
    """What flows along a MARIGOLD_MODEL wire: the core model and the patcher ComfyUI manages it through."""

    model: marigold.MarigoldModel
    patcher: comfy.model_patcher.ModelPatcher
    name: str

    @property
    def task(self) -> str:
        return self.model.task

    def __repr__(self) -> str:
        return f"<Marigold {self.model.task} model {self.name}>"


def _download_bar():
    """A tqdm class for the hub's files bar that also moves the running node's progress bar."""
    import tqdm

    class DownloadBar(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.comfy_bar = comfy.utils.ProgressBar(self.total or 1)

        def update(self, n=1):
            out = super().update(n)
            self.comfy_bar.update_absolute(self.n, self.total or 1)
            return out

    return DownloadBar


def load(source: str, name: str, dtype: str) -> LoadedMarigold:
    """Load on the offload device in the dtype chosen for the compute device; wrap for model management.

    A published repo id downloads into models/marigold/ (the hub's cache layout) with the node's progress bar.
    """
    device = mm.get_torch_device()
    dt = marigold_dtype(dtype, device)
    model = marigold.load(source, device=mm.unet_offload_device(), dtype=dt, cache_dir=download_dir(),
                          progress=_download_bar())
    parts = _Parts(model.unet, model.vae)
    patcher = comfy.model_patcher.ModelPatcher(parts, load_device=device, offload_device=mm.unet_offload_device(),
                                               size=comfy.model_management.module_size(parts))
    return LoadedMarigold(model=model, patcher=patcher, name=name)


def marigold_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """ "auto" as the core decides it for ComfyUI's compute device (never fp16 on a CPU)."""
    from ._core import devices

    return devices.resolve_dtype(dtype, device)


# Peak activation memory of the SD2 UNet + VAE per processed pixel and batch item, in bytes per byte of dtype
# (measured order of magnitude: about 3 GB for one 768×768 image in fp16). ComfyUI frees this much besides the
# weights before loading, e.g. by offloading the SD1.5 model of a ControlNet graph.
BYTES_PER_PIXEL_PER_DTYPE_BYTE = 2600


def sampling_memory(loaded: LoadedMarigold, pixels: int, batch_size: int) -> int:
    item = torch.empty((), dtype=loaded.model.dtype).element_size()
    return int(pixels * batch_size * item * BYTES_PER_PIXEL_PER_DTYPE_BYTE)


def completion_memory(loaded: LoadedMarigold, pixels: int) -> int:
    """Depth completion keeps one UNet forward's and one VAE decode's activations for the backward pass (with
    activation checkpointing, the core's default): asked as two plain sampling items' worth. An estimate from the
    same per-pixel figure, not a measurement of the backward pass."""
    return sampling_memory(loaded, pixels, 2)


def prepare(loaded: LoadedMarigold, memory_required: int = 0) -> marigold.MarigoldModel:
    """Ask ComfyUI to put the model on its compute device (freeing others if needed); returns the core model."""
    mm.load_models_gpu([loaded.patcher], memory_required=memory_required, force_full_load=True)
    m = loaded.model
    m.device = loaded.patcher.load_device
    return m

