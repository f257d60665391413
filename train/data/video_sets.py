"""The video sets RollingDepth trains and evaluates on, each read in its published layout.

Training (Ke et al. 2024, arXiv 2411.19189, Sec. 4.1, as far as public sources establish it: synthetic video):

- ``tartanair:ROOT`` (Wang et al. 2020): ``ROOT/ENV/{Easy,Hard}/PXXX/image_left/NNNNNN_left.png``,
  ``depth_left/NNNNNN_left_depth.npy`` (float32 metres, 480 × 640), ``pose_left.txt`` (one ``tx ty tz qx qy qz
  qw`` line per frame: camera-to-world in TartanAir's NED frame, camera body x forward, y right, z down);
  intrinsics fx = fy = 320, cx = 320, cy = 240. Poses are converted to our camera axes (x right, y down,
  z forward) so that the temporal measure can reproject.

Evaluation, with the frame lists RollingDepth publishes (``data_split/<set>/<split>/*.csv`` in prs-eth/RollingDepth:
one CSV per sequence, columns ``rgb,depth`` relative to the sequence folder; the file name is the sequence
path with ``^`` for ``/``, e.g. ``test^cab_e_3rd.csv`` → ``ROOT/test/cab_e_3rd/``). Put the CSV folder at
``ROOT`` (``*.csv``) or name it with ``split_dir``:

==============  ==========================================================  ====================================
name            depth files                                                 also read
==============  ==========================================================  ====================================
scannet-video   ``depth/N.png`` 16-bit millimetres (colour resized to depth)  ``intrinsic/intrinsic_depth.txt``,
                                                                            ``pose/N.txt`` (SensReader export)
bonn            ``depth/T.png`` 16-bit, metres × 5000 (TUM RGB-D format)      —
pointodyssey    ``depths*/depth_NNNNN.png`` 16-bit, metres = v / 65535 · 1000  —
dydtof          ``DepthMap/NAME.npy`` float (metres)                          —
==============  ==========================================================  ====================================

Not established from public sources (said here rather than guessed silently): what the ``crop`` of
RollingDepth's ScanNet split and the ``masked`` depth of its PointOdyssey split are (the authors' own
preprocessing; we read the files the CSVs name, as they are), DyDToF's depth unit (read as metres; affine-
invariant metrics do not depend on it), and each set's evaluation depth range (ours: ``EVAL_RANGES``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .common import DepthSample
from .formats import read_png16, read_rgb

TARTANAIR_K = np.array([[320.0, 0, 320.0], [0, 320.0, 240.0], [0, 0, 1]])
# our camera axes (x right, y down, z forward) expressed in TartanAir's body axes (x forward, y right, z down)
NED_FROM_CAM = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])
EVAL_RANGES = {"scannet-video": (1e-3, 10.0), "bonn": (1e-3, 10.0), "pointodyssey": (1e-3, 80.0),
               "dydtof": (1e-3, 80.0), "tartanair": (1e-3, 80.0)}


def tartanair_poses(path: str | Path) -> np.ndarray:
    """``pose_left.txt`` → ``[T,4,4]`` camera-to-world with our camera axes (world stays NED)."""
    from scipy.spatial.transform import Rotation

    rows = np.loadtxt(path, ndmin=2)
    if rows.shape[1] != 7:
        raise ValueError(f"{path}: expected 7 numbers a line (tx ty tz qx qy qz qw); got {rows.shape[1]}.")
    out = np.tile(np.eye(4), (rows.shape[0], 1, 1))
    out[:, :3, :3] = Rotation.from_quat(rows[:, 3:7]).as_matrix() @ NED_FROM_CAM  # scipy: (x, y, z, w)
    out[:, :3, 3] = rows[:, :3]
    return out


class TartanAirDataset:
    def __init__(self, root: str | Path, max_depth: float = float("inf")):
        self.root = Path(root)
        self.max_depth = max_depth
        self.seqs = []
        for seq in sorted(p.parent for p in self.root.glob("**/image_left") if p.is_dir()):
            frames = sorted((seq / "image_left").glob("*_left.png"))
            if frames:
                self.seqs.append((seq, frames))
        if not self.seqs:
            raise FileNotFoundError(f"{self.root}: no TartanAir trajectories (ENV/Easy/P000/image_left/"
                                    f"000000_left.png + depth_left/000000_left_depth.npy).")
        self.native_size = read_rgb(self.seqs[0][1][0]).shape[:2]

    def __len__(self) -> int:
        return len(self.seqs)

    def name(self, i: int) -> str:
        return str(self.seqs[i][0].relative_to(self.root))

    def num_frames(self, i: int) -> int:
        return len(self.seqs[i][1])

    def frame(self, i: int, k: int) -> DepthSample:
        seq, frames = self.seqs[i]
        p = frames[k]
        depth = np.load(seq / "depth_left" / (p.stem + "_depth.npy")).astype(np.float32)
        valid = np.isfinite(depth) & (depth > 0) & (depth <= self.max_depth)
        return DepthSample(rgb=read_rgb(p), depth=np.where(valid, depth, 0).astype(np.float32), valid=valid,
                           name=f"{self.name(i)}/{p.name}")

    def intrinsics(self, i: int) -> np.ndarray:
        h, w = self.native_size
        return TARTANAIR_K * np.array([[w / 640], [h / 480], [1]])

    def poses(self, i: int) -> np.ndarray | None:
        p = self.seqs[i][0] / "pose_left.txt"
        return tartanair_poses(p) if p.is_file() else None


def _decode(kind: str, path: Path) -> np.ndarray:
    if kind == "scannet-video":
        return read_png16(path) / 1000.0
    if kind == "bonn":
        return read_png16(path) / 5000.0
    if kind == "pointodyssey":
        return read_png16(path) / 65535.0 * 1000.0
    if kind == "dydtof":
        d = np.load(path).astype(np.float32)
        return d[..., 0] if d.ndim == 3 else d
    raise ValueError(kind)


class CsvVideoSet:
    """Sequences listed by RollingDepth's split CSVs (see the module docstring)."""

    def __init__(self, kind: str, root: str | Path, split_dir: str | Path | None = None):
        self.kind, self.root = kind, Path(root)
        where = Path(split_dir) if split_dir else self.root
        csvs = sorted(where.glob("*.csv"))
        if not csvs:
            raise FileNotFoundError(f"{where}: no split CSVs (RollingDepth's data_split/<set>/<split>/*.csv, one "
                                    f"per sequence with columns rgb,depth); put them there or pass split_dir.")
        self.seqs = []
        for c in csvs:
            with open(c, newline="", encoding="utf-8") as f:
                rows = [(r["rgb"], r["depth"]) for r in csv.DictReader(f)]
            self.seqs.append((self.root / c.stem.replace("^", "/"), rows, c.stem))
        self.min_depth, self.max_depth = EVAL_RANGES[kind]
        self._size = None

    @property
    def native_size(self) -> tuple[int, int]:
        if self._size is None:
            self._size = self.frame(0, 0).depth.shape
        return self._size

    def __len__(self) -> int:
        return len(self.seqs)

    def name(self, i: int) -> str:
        return self.seqs[i][2]

    def num_frames(self, i: int) -> int:
        return len(self.seqs[i][1])

    def frame(self, i: int, k: int) -> DepthSample:
        seq, rows, _ = self.seqs[i]
        rgb_rel, depth_rel = rows[k]
        depth = _decode(self.kind, seq / depth_rel).astype(np.float32)
        rgb = read_rgb(seq / rgb_rel)
        if rgb.shape[:2] != depth.shape:  # ScanNet: colour 1296 × 968, depth 640 × 480
            from PIL import Image

            im = Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).resize(depth.shape[::-1], Image.BILINEAR)
            rgb = np.asarray(im, dtype=np.float32) / 255.0
        valid = np.isfinite(depth) & (depth > 0)
        return DepthSample(rgb=rgb, depth=np.where(valid, depth, 0).astype(np.float32), valid=valid,
                           name=f"{self.name(i)}/{Path(rgb_rel).name}")

    def intrinsics(self, i: int) -> np.ndarray | None:
        p = self.seqs[i][0] / "intrinsic" / "intrinsic_depth.txt"
        if self.kind != "scannet-video" or not p.is_file():
            return None
        return np.loadtxt(p)[:3, :3]

    def poses(self, i: int) -> np.ndarray | None:
        if self.kind != "scannet-video":
            return None
        seq, rows, _ = self.seqs[i]
        files = [seq / "pose" / (Path(r).stem + ".txt") for r, _ in rows]
        if not all(f.is_file() for f in files):
            return None
        poses = np.stack([np.loadtxt(f).reshape(4, 4) for f in files])
        return poses if np.isfinite(poses).all() else None  # ScanNet marks lost tracking with -inf


def open_set(name: str, path: str | Path, **kw):
    if name == "tartanair":
        return TartanAirDataset(path, **kw)
    if name in ("scannet-video", "bonn", "pointodyssey", "dydtof"):
        return CsvVideoSet(name, path, **kw)
    raise ValueError(f"unknown video set {name!r}")
