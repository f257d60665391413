"""A plain folder of RGB images with depth beside them: the way to train on your own data.

Either ``ROOT/rgb/NAME.{png,jpg}`` with ``ROOT/depth/NAME.{png,npy,exr}``, or ``ROOT/NAME.{png,jpg}`` with
``ROOT/NAME_depth.{png,npy,exr}``. Depth files:

- 16-bit PNG: integer units, divided by ``png_scale`` (default 1000: millimetres → metres); 0 is invalid
- ``.npy``: float depth in metres (any 2-D array, or ``[H,W,1]``); non-finite or ≤ 0 is invalid
- ``.exr``: float depth (channel Z, Y or R); non-finite or ≤ 0 is invalid

Optional ``ROOT/normals/NAME.npy`` (``[H,W,3]`` unit vectors) enables normals training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import DepthSample
from .formats import read_exr, read_png16, read_rgb

RGB_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".png", ".npy", ".exr")


def read_depth_file(path: Path, png_scale: float = 1000.0) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".png":
        return read_png16(path) / png_scale
    if suffix == ".npy":
        d = np.load(path, allow_pickle=False).astype(np.float32)
        return d[..., 0] if d.ndim == 3 else d
    if suffix == ".exr":
        return read_exr(path)
    raise ValueError(f"{path}: depth must be a 16-bit .png, .npy or .exr file.")


class FolderDataset:
    def __init__(self, root: str | Path, png_scale: float = 1000.0, max_depth: float = float("inf")):
        self.root = Path(root)
        self.png_scale, self.max_depth = png_scale, max_depth
        nested = (self.root / "rgb").is_dir()
        rgb_dir = self.root / "rgb" if nested else self.root
        pairs = []
        for p in sorted(rgb_dir.iterdir()):
            if p.suffix.lower() not in RGB_SUFFIXES or p.stem.endswith("_depth"):
                continue
            cands = ([self.root / "depth" / (p.stem + s) for s in DEPTH_SUFFIXES] if nested
                     else [self.root / (p.stem + "_depth" + s) for s in DEPTH_SUFFIXES])
            found = [c for c in cands if c.is_file()]
            if found:
                pairs.append((p, found[0]))
        if not pairs:
            raise FileNotFoundError(f"{self.root}: no RGB + depth pairs (rgb/NAME.png + depth/NAME.{{png,npy,exr}}, "
                                    f"or NAME.png + NAME_depth.{{png,npy,exr}}).")
        self.items = pairs
        self.native_size = read_rgb(pairs[0][0]).shape[:2]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> DepthSample:
        rgb_path, depth_path = self.items[i]
        rgb = read_rgb(rgb_path)
        depth = read_depth_file(depth_path, self.png_scale).astype(np.float32)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{depth_path}: depth is {depth.shape}, the image {rgb.shape[:2]}.")
        valid = np.isfinite(depth) & (depth > 0) & (depth <= self.max_depth)
        normals = None
        npath = self.root / "normals" / (rgb_path.stem + ".npy")
        if npath.is_file():
            normals = np.load(npath, allow_pickle=False).astype(np.float32)
        return DepthSample(rgb=rgb, depth=np.where(valid, depth, 0).astype(np.float32), valid=valid,
                           normals=normals, name=rgb_path.name)
