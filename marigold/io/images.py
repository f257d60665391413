"""Files in and out: images with clear errors, 16-bit PNG depth, .npy, 8-bit RGB."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file fully (so a truncated file fails here, with its name, not later)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file.")
    try:
        with Image.open(p) as im:
            im.load()
            return im.copy()
    except UnidentifiedImageError:
        raise InputError(f"{p}: not an image file that Pillow can read.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{p}: the image cannot be decoded ({e}); the file may be truncated.") from None


def _depth_2d(depth: torch.Tensor | np.ndarray) -> np.ndarray:
    d = depth.detach().float().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth, np.float32)
    while d.ndim > 2 and d.shape[0] == 1:  # [1,1,H,W] / [1,H,W] → [H,W]; a 1-pixel map stays 2-D
        d = d[0]
    if d.ndim != 2:
        raise InputError(f"Expected one depth map ([H,W] or [1,1,H,W]); got shape {d.shape}.")
    return d


def depth_to_uint16(depth: torch.Tensor | np.ndarray) -> np.ndarray:
    """0..1 depth → uint16, ``depth × 65535`` truncated, as diffusers' ``export_depth_to_16bit_png`` writes it."""
    d = _depth_2d(depth)
    if not np.isfinite(d).all():
        raise InputError("Depth contains NaN or infinite values; nothing was written.")
    return (np.clip(d, 0.0, 1.0) * 65535).astype(np.uint16)


def _atomic_save(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)
    return path


def save_depth_16bit(depth: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a 0..1 depth map as a 16-bit greyscale PNG (works on Pillow 10 to 13)."""
    arr = depth_to_uint16(depth)
    return _atomic_save(Path(path), lambda p: Image.fromarray(arr).save(p, format="PNG"))


def save_npy(array: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    a = array.detach().float().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return _atomic_save(Path(path), lambda p: np.save(p, np.squeeze(a)))


def _openexr():
    from ..optional import require

    return require("OpenEXR", None, "EXR files")


def save_exr(depth: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a depth map as a float32 single-channel (``Z``) ZIP-compressed OpenEXR file, values as they are."""
    OpenEXR = _openexr()
    d = np.ascontiguousarray(_depth_2d(depth), dtype=np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}

    def write(p: Path) -> None:
        with OpenEXR.File(header, {"Z": d}) as f:
            f.write(str(p))

    return _atomic_save(Path(path), write)


def read_exr(path: str | os.PathLike) -> np.ndarray:
    """A depth EXR (channel Z, Y, R, depth, or else the first one) → ``[H,W]`` float32."""
    OpenEXR = _openexr()
    try:
        with OpenEXR.File(str(path)) as f:
            ch = f.channels()
            for name in ("Z", "Y", "R", "depth", "Depth"):
                if name in ch:
                    return np.asarray(ch[name].pixels, dtype=np.float32)
            first = next(iter(ch.values())).pixels
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path}: not a readable OpenEXR file ({e}).") from None
    return np.asarray(first[..., 0] if first.ndim == 3 else first, dtype=np.float32)


def save_rgb(rgb: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """RGB in 0..1, ``[3,H,W]``, ``[1,3,H,W]`` or ``[H,W,3]`` → 8-bit PNG/JPEG (by suffix)."""
    a = rgb.detach().float().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb, np.float32)
    a = np.squeeze(a)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    u8 = (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return _atomic_save(Path(path), lambda p: Image.fromarray(u8).save(p, format=_format(path)))


def _format(path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        Path(path).suffix.lower(), "PNG")


SPARSE_SUFFIXES = (".png", ".npy", ".exr")


def load_sparse_depth(path: str | os.PathLike) -> np.ndarray:
    """Sparse measured depth → ``[H,W]`` float32 in metres, 0 where unmeasured: a 16-bit PNG in millimetres
    (0 = none, the convention of depth sensors and of ScanNet), ``.npy`` or ``.exr`` in metres (0 or NaN = none)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SPARSE_SUFFIXES:
        raise InputError(f"{p}: sparse depth must be a 16-bit PNG (millimetres), .npy or .exr (metres); got "
                         f"{p.suffix or 'no suffix'}.")
    if not p.is_file():
        raise InputError(f"{p}: no such sparse depth file.")
    if suffix == ".png":
        with Image.open(p) as im:
            if im.mode not in ("I;16", "I;16B", "I;16L", "I"):
                raise InputError(f"{p}: a sparse depth PNG must be 16-bit greyscale in millimetres; got mode "
                                 f"{im.mode}.")
            d = np.asarray(im, dtype=np.float32) / 1000.0
    elif suffix == ".npy":
        try:
            d = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise InputError(f"{p}: not a plain .npy array ({e}).") from None
        d = np.squeeze(np.asarray(d, dtype=np.float32))
    else:
        d = read_exr(p)
    if d.ndim != 2:
        raise InputError(f"{p}: sparse depth must be one map [H,W]; got shape {tuple(d.shape)}.")
    return np.nan_to_num(d, nan=0.0, posinf=np.inf, neginf=-np.inf)


def save_depth_mm(depth: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Metric depth in metres → 16-bit PNG in millimetres (0 = none, 65.535 m at most: farther is clipped)."""
    d = _depth_2d(depth)
    mm = np.clip(np.nan_to_num(d, nan=0.0) * 1000.0 + 0.5, 0, 65535).astype(np.uint16)
    return _atomic_save(Path(path), lambda p: Image.fromarray(mm).save(p, format="PNG"))
