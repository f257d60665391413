"""The depth evaluation sets, each read in its published layout (see :mod:`train.evaluate` for the table of
names, layouts, depth ranges and crops): ``make_eval_set("nyu:PATH")`` → an :class:`EvalSet` of :class:`EvalItem`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from marigold.optional import require

from . import metrics as M
from .data.formats import read_png16, read_rgb
from .data.vkitti import kitti_benchmark_crop

# Middlebury 2014 "Motorcycle" calibration (calib.txt: cam0 f = 3979.911, doffs = 124.343, baseline = 193.001),
# at the quarter resolution scikit-image ships (741 × 500): f and doffs divided by 4.
MOTORCYCLE_F, MOTORCYCLE_DOFFS, MOTORCYCLE_BASELINE_MM = 994.978, 31.086, 193.001


@dataclass
class EvalItem:
    rgb: np.ndarray  # [H,W,3] float32 0..1
    depth: np.ndarray  # [H,W] metres (0 where invalid)
    valid: np.ndarray  # [H,W] bool
    name: str = ""


@dataclass
class EvalSet:
    name: str
    items: Iterable[EvalItem]
    min_depth: float = 1e-3
    max_depth: float = np.inf
    crop: str | None = None  # "nyu" | "kitti-eigen" | "kitti-garg" | None
    space: str = "depth"
    size: int | None = None
    extra: dict = field(default_factory=dict)

    def crop_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        if self.crop == "nyu":
            return M.nyu_eigen_crop(shape)
        if self.crop in ("kitti-eigen", "kitti-garg"):
            return M.kitti_crop(shape, self.crop.split("-")[1])
        return None


# ---------------------------------------------------------------------------------------------------------------
# Loaders


def nyu_items(mat_path: str | Path, split_path: str | Path | None = None, limit: int | None = None
              ) -> Iterator[EvalItem]:
    h5py = require("h5py", "train", "Reading NYUv2's .mat file")

    mat_path = Path(mat_path)
    split_path = Path(split_path) if split_path else mat_path.with_name("splits.mat")
    with h5py.File(mat_path, "r") as f:
        n = f["images"].shape[0]
        idx = list(range(n))
        if split_path.is_file():
            loadmat = require("scipy.io", "train", "Reading NYUv2's splits.mat").loadmat

            idx = [int(i) - 1 for i in np.asarray(loadmat(str(split_path))["testNdxs"]).ravel()]
        for k, i in enumerate(idx[:limit]):
            rgb = np.asarray(f["images"][i]).transpose(2, 1, 0).astype(np.float32) / 255.0  # [3,W,H] → [H,W,3]
            depth = np.asarray(f["depths"][i]).T.astype(np.float32)  # [W,H] → [H,W]
            yield EvalItem(rgb, depth, depth > 0, f"nyu_{i + 1:04d}")


def kitti_items(root: str | Path, split_file: str | Path | None = None, limit: int | None = None
                ) -> Iterator[EvalItem]:
    root = Path(root)
    split_file = Path(split_file) if split_file else root / "eigen_test_files_with_gt.txt"
    lines = [ln.split() for ln in split_file.read_text().splitlines() if ln.strip()]
    lines = [ln for ln in lines if len(ln) >= 2 and ln[1] != "None"]
    for rgb_rel, depth_rel, *_ in lines[:limit]:
        rgb = kitti_benchmark_crop(read_rgb(root / rgb_rel))
        depth = kitti_benchmark_crop(read_png16(root / depth_rel) / 256.0).astype(np.float32)
        yield EvalItem(rgb, depth, depth > 0, rgb_rel)


ETH3D_SIZE = (4032, 6048)


def eth3d_items(root: str | Path, limit: int | None = None) -> Iterator[EvalItem]:
    root = Path(root)
    rgbs = sorted(root.glob("*/images/dslr_images/*.JPG"))
    for p in rgbs[:limit]:
        dpath = p.parents[2] / "ground_truth_depth" / "dslr_images" / p.name
        rgb = read_rgb(p)
        depth = np.fromfile(dpath, dtype="<f4")
        h, w = rgb.shape[:2] if depth.size == rgb.shape[0] * rgb.shape[1] else ETH3D_SIZE
        depth = depth.reshape(h, w)
        valid = np.isfinite(depth) & (depth > 0)
        yield EvalItem(rgb, np.where(valid, depth, 0).astype(np.float32), valid, str(p.relative_to(root)))


def scannet_items(root: str | Path, limit: int | None = None) -> Iterator[EvalItem]:
    root = Path(root)
    rgbs = sorted(root.glob("*/color/*.jpg"))
    for p in rgbs[:limit]:
        depth = read_png16(p.parents[1] / "depth" / (p.stem + ".png")) / 1000.0
        rgb = read_rgb(p)
        if rgb.shape[:2] != depth.shape:  # ScanNet colour is 1296×968; depth 640×480
            from PIL import Image

            rgb = np.asarray(Image.fromarray((rgb * 255).astype(np.uint8)).resize(depth.shape[::-1], Image.BILINEAR),
                             dtype=np.float32) / 255.0
        yield EvalItem(rgb, depth.astype(np.float32), depth > 0, str(p.relative_to(root)))


def diode_items(root: str | Path, limit: int | None = None) -> Iterator[EvalItem]:
    root = Path(root)
    rgbs = sorted(p for p in root.glob("**/*.png"))
    for p in rgbs[:limit]:
        depth = np.load(p.with_name(p.stem + "_depth.npy")).astype(np.float32)
        depth = depth[..., 0] if depth.ndim == 3 else depth
        mask = np.load(p.with_name(p.stem + "_depth_mask.npy")).astype(bool)
        yield EvalItem(read_rgb(p), np.where(mask, depth, 0), mask & (depth > 0), str(p.relative_to(root)))


def middlebury_motorcycle() -> EvalItem:
    """The Middlebury 2014 Motorcycle left view with metric depth from its disparity (``+inf`` = invalid)."""
    skimage_data = require("skimage.data", "train", "The Middlebury motorcycle (scikit-image data)")

    left, _, disp = skimage_data.stereo_motorcycle()
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.zeros(disp.shape, np.float32)
    depth[valid] = MOTORCYCLE_F * MOTORCYCLE_BASELINE_MM / (disp[valid] + MOTORCYCLE_DOFFS) / 1000.0  # metres
    return EvalItem(np.asarray(left, np.float32) / 255.0, depth, valid, "middlebury_motorcycle")


def synthetic_eval_set(n: int = 8, split: str = "heldout", height: int = 96, width: int = 128,
                       texture: str = "photo") -> EvalSet:
    from .data.synthetic import SyntheticDataset

    ds = SyntheticDataset(n, height, width, split, texture)

    def items():
        for i in range(len(ds)):
            s = ds[i]
            yield EvalItem(s.rgb, s.depth, s.valid, s.name)

    return EvalSet(f"synthetic-{split}", items(), min_depth=1e-3, size=n)


def make_eval_set(spec: str, limit: int | None = None) -> EvalSet:
    name, _, path = spec.partition(":")
    if name == "nyu":
        return EvalSet("nyu", nyu_items(path, limit=limit), 1e-3, 10.0, crop="nyu")
    if name == "kitti":
        return EvalSet("kitti", kitti_items(path, limit=limit), 1e-5, 80.0, crop="kitti-eigen")
    if name == "eth3d":
        return EvalSet("eth3d", eth3d_items(path, limit=limit), 1e-5, np.inf)
    if name == "scannet":
        return EvalSet("scannet", scannet_items(path, limit=limit), 1e-3, 10.0)
    if name == "diode":
        return EvalSet("diode", diode_items(path, limit=limit), 0.6, 350.0)
    if name == "middlebury":
        return EvalSet("middlebury", [middlebury_motorcycle()], 1e-3, np.inf, size=1)
    if name == "synthetic":  # synthetic[:N[:flat]]
        n, _, texture = path.partition(":")
        return synthetic_eval_set(int(n) if n else (limit or 8), texture=texture or "photo")
    raise ValueError(f"unknown data set {name!r}: nyu, kitti, eth3d, scannet, diode, middlebury or synthetic")


# ---------------------------------------------------------------------------------------------------------------
