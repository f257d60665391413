"""Hypersim (Roberts et al. 2021) in its published layout, read straight from the HDF5 files.

    ROOT/ai_001_001/images/scene_cam_00_final_hdf5/frame.0000.color.hdf5          HDR linear RGB, [768,1024,3]
    ROOT/ai_001_001/images/scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5  distance to the camera centre

``depth_meters`` is the Euclidean distance to the camera centre, not planar depth; it is converted with the
published intrinsics (1024 × 768, horizontal field of view 60°, so f = 512 / tan 30° = 886.81 px):
``z = r / sqrt(1 + ((u - cx) / f)² + ((v - cy) / f)²)``. NaN marks pixels with no geometry. The HDR colour is
tone-mapped as Hypersim's own scripts do (and Marigold's preprocessing after them): scale so that the 90th
percentile of brightness (0.3 R + 0.59 G + 0.11 B) maps to 0.8 after gamma 1/2.2, then clip.
An optional split file lists ``scene/camera/frame`` lines (e.g. ``ai_001_001 cam_00 0``) to use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import DepthSample
from .formats import read_hdf5

WIDTH, HEIGHT, FOV_X = 1024, 768, np.pi / 3
FOCAL = 0.5 * WIDTH / np.tan(FOV_X / 2)  # 886.81 px
GAMMA, PERCENTILE, BRIGHTNESS = 1.0 / 2.2, 90, 0.8


def distance_to_planar(distance: np.ndarray, focal: float = FOCAL) -> np.ndarray:
    """Distance to the camera centre ``[H,W]`` → planar depth (z), for a centred principal point."""
    h, w = distance.shape
    f = focal * w / WIDTH  # the focal length scales with the image width
    u = (np.arange(w) + 0.5 - w / 2) / f
    v = (np.arange(h) + 0.5 - h / 2) / f
    return (distance / np.sqrt(1.0 + u[None, :] ** 2 + v[:, None] ** 2)).astype(np.float32)


def tonemap(hdr: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Hypersim's tone mapping of linear HDR RGB → sRGB-ish 0..1."""
    hdr = np.nan_to_num(hdr.astype(np.float32), nan=0.0, posinf=0.0)
    bright = 0.3 * hdr[..., 0] + 0.59 * hdr[..., 1] + 0.11 * hdr[..., 2]
    pick = bright[valid] if valid is not None and valid.any() else bright.ravel()
    p = np.percentile(pick, PERCENTILE) if pick.size else 0.0
    scale = 1.0 if p < 1e-4 else BRIGHTNESS ** (1.0 / GAMMA) / p
    return np.clip(np.power(np.maximum(scale * hdr, 0), GAMMA), 0, 1).astype(np.float32)


def list_frames(root: Path, split_file: str | Path | None = None) -> list[Path]:
    """The colour frames of a Hypersim folder: those a split file names (``scene cam frame`` per line, ``#``
    comments), else every ``*/images/scene_cam_*_final_hdf5/frame.*.color.hdf5``; empty when there are none."""
    if split_file is None:
        return sorted(root.glob("*/images/scene_cam_*_final_hdf5/frame.*.color.hdf5"))
    items = []
    for line in Path(split_file).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            scene, cam, frame = line.split()[:3]
            items.append(root / scene / "images" / f"scene_{cam}_final_hdf5" / f"frame.{int(frame):04d}.color.hdf5")
    return items


class HypersimDataset:
    """``normals=True``: also ``frame.NNNN.normal_cam.hdf5`` (geometry folder; camera frame x right, y up, z towards
    the viewer: Marigold's convention already), for normals training."""

    def __init__(self, root: str | Path, split_file: str | Path | None = None, max_depth: float = 65.0,
                 normals: bool = False):
        self.root = Path(root)
        self.max_depth = max_depth
        self.normals = bool(normals)
        items = list_frames(self.root, split_file)
        if not items:
            raise FileNotFoundError(f"{self.root}: no Hypersim frames (*/images/scene_cam_*_final_hdf5/"
                                    f"frame.*.color.hdf5).")
        self.items = items
        self.native_size = (HEIGHT, WIDTH)

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def depth_path(color: Path) -> Path:
        geo = color.parent.name.replace("_final_hdf5", "_geometry_hdf5")
        return color.parent.parent / geo / color.name.replace(".color.hdf5", ".depth_meters.hdf5")

    def __getitem__(self, i: int) -> DepthSample:
        color = self.items[i]
        dist = read_hdf5(self.depth_path(color)).astype(np.float32)
        valid = np.isfinite(dist) & (dist > 0)
        depth = distance_to_planar(np.where(valid, dist, 0))
        valid &= depth <= self.max_depth
        rgb = tonemap(read_hdf5(color), valid)
        normals = None
        if self.normals:
            path = self.depth_path(color).with_name(color.name.replace(".color.hdf5", ".normal_cam.hdf5"))
            if not path.is_file():
                from marigold.errors import InputError

                raise InputError(f"{path}: missing normals file (Hypersim's normal_cam, needed with normals: true).")
            normals = read_hdf5(path).astype(np.float32)
            ok = np.isfinite(normals).all(-1)
            valid &= ok
            normals = np.where(ok[..., None], normals, 0.0)
            normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
        return DepthSample(rgb=rgb, depth=np.where(valid, depth, 0), valid=valid, normals=normals,
                           name=str(color.relative_to(self.root)))
