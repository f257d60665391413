"""Virtual KITTI 2 (Cabon et al. 2020) in its published layout.

    ROOT/vkitti_2.0.3_rgb/Scene01/clone/frames/rgb/Camera_0/rgb_00000.jpg
    ROOT/vkitti_2.0.3_depth/Scene01/clone/frames/depth/Camera_0/depth_00000.png   16-bit, centimetres

Depth is planar z in cm (65535 = sky / far). As in Marigold's training set-up, depths beyond 80 m are invalid
and the frame is cropped to the KITTI benchmark size 352 × 1216 (bottom rows, centred columns).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import DepthSample
from .formats import read_png16, read_rgb

BM_HEIGHT, BM_WIDTH = 352, 1216


def kitti_benchmark_crop(x: np.ndarray) -> np.ndarray:
    """Crop ``[H,W,...]`` to 352 × 1216: the bottom rows, the centred columns (KITTI's benchmark crop)."""
    h, w = x.shape[:2]
    top, left = max(h - BM_HEIGHT, 0), max((w - BM_WIDTH) // 2, 0)
    return x[top:top + BM_HEIGHT, left:left + BM_WIDTH]


class VKittiDataset:
    def __init__(self, root: str | Path, max_depth: float = 80.0, benchmark_crop: bool = True,
                 scenes: list[str] | None = None):
        self.root = Path(root)
        self.max_depth, self.crop = max_depth, benchmark_crop
        items = sorted(self.root.glob("**/frames/rgb/Camera_*/rgb_*.jpg"))
        if scenes:
            items = [p for p in items if any(f"/{s}/" in p.as_posix() for s in scenes)]
        if not items:
            raise FileNotFoundError(f"{self.root}: no Virtual KITTI 2 frames (**/frames/rgb/Camera_*/rgb_*.jpg).")
        self.items = items
        self.native_size = (BM_HEIGHT, BM_WIDTH) if benchmark_crop else (375, 1242)

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def depth_path(rgb: Path) -> Path:
        parts = list(rgb.parts)
        parts = [p.replace("vkitti_2.0.3_rgb", "vkitti_2.0.3_depth") for p in parts]
        i = len(parts) - 1 - parts[::-1].index("rgb")  # the frames/rgb/ folder
        parts[i] = "depth"
        parts[-1] = parts[-1].replace("rgb_", "depth_").replace(".jpg", ".png")
        return Path(*parts)

    def __getitem__(self, i: int) -> DepthSample:
        rgb_path = self.items[i]
        rgb = read_rgb(rgb_path)
        depth = read_png16(self.depth_path(rgb_path)) / 100.0  # cm → m
        if self.crop:
            rgb, depth = kitti_benchmark_crop(rgb), kitti_benchmark_crop(depth)
        valid = (depth > 1e-5) & (depth <= self.max_depth)
        return DepthSample(rgb=rgb, depth=np.where(valid, depth, 0).astype(np.float32), valid=valid,
                           name=str(rgb_path.relative_to(self.root)))
