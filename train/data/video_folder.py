"""Your own videos as folders of frames: the way to train a snippet model on your data, and to evaluate on it.

    ROOT/SEQUENCE/frames/000000.png   (or .jpg)         colour frames, in order of their names
    ROOT/SEQUENCE/depth/000000.png | .npy | .exr         depth of the frame with the same stem
    ROOT/SEQUENCE/intrinsics.txt                          optional: 3 × 3 matrix (pixel index u = fx·X/Z + cx)
    ROOT/SEQUENCE/poses.txt                               optional: one camera-to-world matrix per frame, 12 or
                                                          16 numbers a line (row-major; camera x right, y down,
                                                          z forward)

``ROOT`` may also be one sequence itself (``ROOT/frames``). Depth files are read as in :mod:`train.data.folder`:
16-bit PNG in millimetres (``png_scale``), ``.npy`` / ``.exr`` in metres; ≤ 0 or non-finite is invalid.
:func:`write_sequence` writes a clip in this layout (16-bit PNG depth in mm, or ``.npy``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import DepthSample
from .folder import DEPTH_SUFFIXES, RGB_SUFFIXES, read_depth_file
from .formats import read_rgb, write_png16


def _sequence_dirs(root: Path) -> list[Path]:
    if (root / "frames").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if (p / "frames").is_dir())


class VideoFolderDataset:
    def __init__(self, root: str | Path, png_scale: float = 1000.0, max_depth: float = float("inf")):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder (expected SEQUENCE/frames/ + SEQUENCE/depth/).")
        self.png_scale, self.max_depth = png_scale, max_depth
        self.seqs: list[tuple[Path, list[tuple[Path, Path]]]] = []
        for seq in _sequence_dirs(self.root):
            pairs = []
            for p in sorted((seq / "frames").iterdir()):
                if p.suffix.lower() not in RGB_SUFFIXES:
                    continue
                found = [c for c in (seq / "depth" / (p.stem + s) for s in DEPTH_SUFFIXES) if c.is_file()]
                if not found:
                    raise FileNotFoundError(f"{seq}/depth: no depth for frame {p.name} (expected "
                                            f"{p.stem}.png, .npy or .exr).")
                pairs.append((p, found[0]))
            if pairs:
                self.seqs.append((seq, pairs))
        if not self.seqs:
            raise FileNotFoundError(f"{self.root}: no sequences (SEQUENCE/frames/NNNNNN.png + "
                                    f"SEQUENCE/depth/NNNNNN.{{png,npy,exr}}).")
        self.native_size = read_rgb(self.seqs[0][1][0][0]).shape[:2]

    def __len__(self) -> int:
        return len(self.seqs)

    def name(self, i: int) -> str:
        return self.seqs[i][0].name

    def num_frames(self, i: int) -> int:
        return len(self.seqs[i][1])

    def frame(self, i: int, k: int) -> DepthSample:
        rgb_path, depth_path = self.seqs[i][1][k]
        rgb = read_rgb(rgb_path)
        depth = read_depth_file(depth_path, self.png_scale).astype(np.float32)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{depth_path}: depth is {depth.shape}, the frame {rgb.shape[:2]}.")
        valid = np.isfinite(depth) & (depth > 0) & (depth <= self.max_depth)
        return DepthSample(rgb=rgb, depth=np.where(valid, depth, 0).astype(np.float32), valid=valid,
                           name=f"{self.name(i)}/{rgb_path.name}")

    def intrinsics(self, i: int) -> np.ndarray | None:
        p = self.seqs[i][0] / "intrinsics.txt"
        return np.loadtxt(p).reshape(3, 3) if p.is_file() else None

    def poses(self, i: int) -> np.ndarray | None:
        p = self.seqs[i][0] / "poses.txt"
        if not p.is_file():
            return None
        rows = np.loadtxt(p, ndmin=2)
        if rows.shape[1] not in (12, 16) or rows.shape[0] != self.num_frames(i):
            raise ValueError(f"{p}: expected {self.num_frames(i)} lines of 12 or 16 numbers; got {rows.shape}.")
        out = np.tile(np.eye(4), (rows.shape[0], 1, 1))
        out[:, :3, :] = rows[:, :12].reshape(-1, 3, 4)
        return out


def write_sequence(folder: str | Path, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray | None = None,
                   intrinsics: np.ndarray | None = None, poses: np.ndarray | None = None,
                   depth_format: str = "png") -> Path:
    """Write ``rgb`` ``[T,H,W,3]`` 0..1 and ``depth`` ``[T,H,W]`` (metres) as one sequence folder."""
    from PIL import Image

    folder = Path(folder)
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    (folder / "depth").mkdir(parents=True, exist_ok=True)
    for k in range(rgb.shape[0]):
        Image.fromarray((np.clip(rgb[k], 0, 1) * 255 + 0.5).astype(np.uint8)).save(folder / "frames" / f"{k:06d}.png")
        d = np.where(valid[k], depth[k], 0) if valid is not None else depth[k]
        if depth_format == "png":
            write_png16(folder / "depth" / f"{k:06d}.png", np.clip(np.round(d * 1000.0), 0, 65535))
        elif depth_format == "npy":
            np.save(folder / "depth" / f"{k:06d}.npy", d.astype(np.float32))
        else:
            raise ValueError(f"depth_format must be 'png' or 'npy'; got {depth_format!r}.")
    if intrinsics is not None:
        np.savetxt(folder / "intrinsics.txt", np.asarray(intrinsics).reshape(3, 3))
    if poses is not None:
        np.savetxt(folder / "poses.txt", np.asarray(poses)[:, :3, :].reshape(-1, 12))
    return folder
