"""Images in, tensors out: every input form becomes ``[N,3,H,W]`` float32 in 0..1, and back.

Resizing always happens in float32, whatever dtype the model runs in: torch's antialiased resize has no
bf16/fp16 kernel on the CPU, and depth loses precision when it is resampled in half precision.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import InputError

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor, str, os.PathLike]
ImageInput = Union[ImageLike, Sequence[ImageLike]]

RESAMPLE_METHODS = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")
LATENT_FACTOR = 8  # the Stable Diffusion VAE downsamples by 8
MIN_SIDE = 8  # below one latent pixel the UNet has nothing to work on
# The UNet's attention memory grows with the square of the pixel count: past this side a GPU runs out of memory
# (and a CPU takes hours). Larger images are processed at a smaller size and resized back, never refused.
MAX_PROCESSING_SIDE = 2048


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """PIL image → HWC array, keeping 16-bit and float precision."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.uint16)
    if img.mode == "I":  # 32-bit int PNGs are 16-bit data in practice
        arr = np.asarray(img, dtype=np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise InputError(f"32-bit integer image with values outside 0..65535 (mode {img.mode}) is not supported.")
        return arr.astype(np.uint16)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32)
    if img.mode in ("RGB", "L", "RGBA", "LA"):
        return np.asarray(img)
    # palette, CMYK, YCbCr, 1-bit…: let PIL do the colour conversion
    return np.asarray(img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB"))


def _array_to_nchw(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"Image array of dtype {arr.dtype} is not an image; expected uint8, uint16 or float.")
    if np.issubdtype(arr.dtype, np.signedinteger):
        raise InputError(f"Image array of signed dtype {arr.dtype}; expected uint8, uint16 or float in 0..1.")
    if arr.ndim == 2:
        arr = arr[None, :, :, None]  # [1,H,W,1]
    elif arr.ndim == 3:
        arr = arr[None]  # [1,H,W,C]
    elif arr.ndim != 4:
        raise InputError(f"Image array must be HW, HWC or NHWC; got shape {tuple(arr.shape)}.")
    scale = float(np.iinfo(arr.dtype).max) if np.issubdtype(arr.dtype, np.unsignedinteger) else 1.0
    t = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32, copy=False)).permute(0, 3, 1, 2)  # [N,C,H,W]
    return t / scale if scale != 1.0 else t


def _tensor_to_nchw(t: torch.Tensor) -> torch.Tensor:
    if t.ndim == 2:
        t = t[None, None]  # [1,1,H,W]
    elif t.ndim == 3:
        t = t[None]  # [1,C,H,W]
    elif t.ndim != 4:
        raise InputError(f"Image tensor must be HW, CHW or NCHW; got shape {tuple(t.shape)}.")
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    if not t.is_floating_point():
        raise InputError(f"Image tensor of dtype {t.dtype}; expected float in 0..1 or uint8.")
    return t.detach().float()


def _fix_channels(t: torch.Tensor) -> torch.Tensor:
    """[N,C,H,W] with C in 1..4 → [N,3,H,W]: grey is repeated, alpha dropped."""
    c = t.shape[1]
    if c == 1:
        return t.repeat(1, 3, 1, 1)
    if c == 2:  # grey + alpha
        return t[:, :1].repeat(1, 3, 1, 1)
    if c == 3:
        return t
    if c == 4:
        return t[:, :3].contiguous()
    raise InputError(f"Image has {c} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA).")


def to_tensor(image: ImageInput) -> torch.Tensor:
    """Any supported image input → ``[N,3,H,W]`` float32 in 0..1 on the CPU (or the input tensor's device).

    Accepts a PIL image, an HW/HWC/NHWC array (uint8, uint16 or float in 0..1), an HW/CHW/NCHW tensor, or a
    list of these with one size. Greyscale is repeated to RGB and an alpha channel is dropped.
    """
    if isinstance(image, (list, tuple)):
        if len(image) == 0:
            raise InputError("Empty list of images.")
        parts = [to_tensor(im) for im in image]
        sizes = {tuple(p.shape[2:]) for p in parts}
        if len(sizes) > 1:
            raise InputError(f"Images in one batch must share a size; got {sorted(sizes)}. Pass them one at a time.")
        return torch.cat(parts, dim=0)
    if isinstance(image, (str, bytes, os.PathLike)):
        from ..io.images import load_image

        image = load_image(image)
    if isinstance(image, Image.Image):
        t = _array_to_nchw(_pil_to_array(image))
    elif isinstance(image, np.ndarray):
        t = _array_to_nchw(image)
    elif isinstance(image, torch.Tensor):
        t = _tensor_to_nchw(image)
    else:
        raise InputError(f"Unsupported image type {type(image).__name__}; pass a PIL image, a numpy array or a tensor.")
    t = _fix_channels(t).contiguous()  # one memory layout, so equal pictures give bit-equal predictions
    check_image_values(t)
    return t


def from_bhwc(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI's IMAGE ``[B,H,W,C]`` → ``[B,3,H,W]`` float32 0..1 (alpha dropped, grey repeated)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise InputError(f"Expected an IMAGE tensor [B,H,W,C]; got {getattr(image, 'shape', type(image))}.")
    t = _fix_channels(image.detach().float().permute(0, 3, 1, 2))  # [B,3,H,W]
    check_image_values(t)
    return t


def to_bhwc(t: torch.Tensor) -> torch.Tensor:
    """``[N,C,H,W]`` → ComfyUI's ``[N,H,W,3]`` float32 on the CPU (one channel is repeated)."""
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    return t.permute(0, 2, 3, 1).float().cpu().contiguous()  # [N,H,W,3]


def check_image_values(t: torch.Tensor) -> None:
    if t.numel() == 0:
        raise InputError(f"Image is empty (shape {tuple(t.shape)}).")
    if not torch.isfinite(t).all():
        raise InputError("Image contains NaN or infinite values.")
    lo, hi = t.min().item(), t.max().item()
    if lo < 0.0 or hi > 1.0:
        raise InputError(f"Image values must lie in 0..1; got {lo:.4g}..{hi:.4g}. Divide 8-bit data by 255.")


def processing_size(size: tuple[int, int], processing_resolution: int) -> tuple[int, int]:
    """(H, W) → the size the model sees before padding: longest side = ``processing_resolution`` (0 = native)."""
    h, w = size
    if min(h, w) < 1:
        raise InputError(f"Image of size {w}×{h} is empty.")
    if min(h, w) < MIN_SIDE:  # upsampling a few pixels to the processing resolution would only invent detail
        raise InputError(f"Image of size {w}×{h} is too small: Marigold needs at least {MIN_SIDE} pixels on each "
                         f"side of the input image.")
    if processing_resolution and processing_resolution > 0:
        m = max(h, w)
        h, w = h * processing_resolution // m, w * processing_resolution // m
    if max(h, w) > MAX_PROCESSING_SIDE:
        raise InputError(
            f"Image of size {size[1]}×{size[0]} would be processed at {w}×{h}; Marigold processes at most "
            f"{MAX_PROCESSING_SIDE} pixels on the longest side (attention memory grows with the square of the "
            f"pixel count). Set processing_resolution to 768 (the default) or up to {MAX_PROCESSING_SIDE}: "
            f"the result is still resized back to {size[1]}×{size[0]}."
        )
    if min(h, w) < MIN_SIDE:
        raise InputError(
            f"Image of size {size[1]}×{size[0]} would be processed at {w}×{h}; Marigold needs at least "
            f"{MIN_SIDE} pixels on each side. Use a larger image, a less extreme aspect ratio, or a larger "
            f"processing resolution."
        )
    return h, w


def padded_size(size: tuple[int, int]) -> tuple[int, int]:
    return -(-size[0] // LATENT_FACTOR) * LATENT_FACTOR, -(-size[1] // LATENT_FACTOR) * LATENT_FACTOR


def check_resample(method: str, name: str) -> None:
    if method not in RESAMPLE_METHODS:
        raise InputError(f"`{name}` must be one of {', '.join(RESAMPLE_METHODS)}; got {method!r}.")


def resize(t: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool) -> torch.Tensor:
    """Resize ``[N,C,H,W]`` in float32 (see the module docstring), returning float32."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t.float()
    aa = antialias and mode in ("bilinear", "bicubic")
    return F.interpolate(t.float(), size=tuple(size), mode=mode, antialias=aa)


def preprocess(image: torch.Tensor, processing_resolution: int, mode: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """``[N,3,H,W]`` 0..1 → ``[N,3,PPH,PPW]`` in -1..1, resized (antialiased) and edge-padded to /8.

    Returns the padded image and the padding (ph, pw) to remove afterwards.
    """
    h, w = processing_size(tuple(image.shape[-2:]), processing_resolution)
    x = image * 2.0 - 1.0  # [N,3,H,W]
    x = resize(x, (h, w), mode, antialias=True)  # [N,3,PH,PW]
    ph, pw = -h % LATENT_FACTOR, -w % LATENT_FACTOR
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")  # [N,3,PPH,PPW]
    return x, (ph, pw)


def unpad(t: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    ph, pw = padding
    return t[..., : t.shape[-2] - ph, : t.shape[-1] - pw]
