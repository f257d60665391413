"""Readers for the file formats the published data sets use (one function per format, no data-set logic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from marigold.io.images import read_exr, save_exr  # noqa: F401  (one EXR codec: the core's)
from marigold.optional import require


def read_rgb(path: str | Path) -> np.ndarray:
    """8-bit RGB image → ``[H,W,3]`` float32 in 0..1."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def read_png16(path: str | Path) -> np.ndarray:
    """16-bit greyscale PNG → ``[H,W]`` float32 of the raw integer values."""
    with Image.open(path) as im:
        if im.mode not in ("I;16", "I;16B", "I;16L", "I", "L"):
            raise ValueError(f"{path}: expected a 16-bit greyscale PNG, got mode {im.mode}.")
        return np.asarray(im, dtype=np.float32)


def write_png16(path: str | Path, values: np.ndarray) -> None:
    """``[H,W]`` integer values 0..65535 → 16-bit greyscale PNG."""
    Image.fromarray(np.asarray(values).astype(np.uint16)).save(path, format="PNG")


def write_exr(path: str | Path, depth: np.ndarray) -> None:
    """``[H,W]`` float depth → EXR (channel Z), as data-set files are written (path first)."""
    save_exr(depth, path)


def read_hdf5(path: str | Path, key: str = "dataset") -> np.ndarray:
    h5py = require("h5py", "train", "Reading HDF5 files (Hypersim)")

    with h5py.File(path, "r") as f:
        return np.asarray(f[key])
