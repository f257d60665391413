r"""Depth-completion evaluation: metric depth from an image and sparse measurements, scored by MAE and RMSE in the
data's units (per image, then averaged over the set), as Marigold-DC evaluates (prs-eth/Marigold-DC
``script/eval.py``, ``DATASETS.md``).

    python -m train.evaluate --checkpoint prs-eth/marigold-depth-v1-0 --dataset kitti-dc:/data/kitti \
        --complete [--complete-steps 50 --ensemble 1 --processing-resolution 768] [--baseline fit]

Sparse-input sets, each read in its published layout (``name:path``):

===========  ====================================================================================  ===================
name         layout                                                                                sparse input
===========  ====================================================================================  ===================
dc-folder    Marigold-DC's processed layout: ``rgb/NAME.png``, ``sparse/NAME.npy``, ``gt/NAME.npy``  as given
             (metres, 0 = none)
nyu-dc       the NYUv2 HDF5 pair Marigold-DC reads (A. Conti's release): ``nyu_img_gt.h5`` (``img``  ``hints``: 500
             [N,H,W,3] uint8, ``gt`` [N,H,W(,1)] m) and ``nyu_pred_with_500.h5`` (``hints``)        points
scannet-dc   ``SCENE/color/N.jpg`` + ``SCENE/depth/N.png`` (16-bit mm), as ``scannet``                500 points drawn
                                                                                                   from the truth
kitti-dc     ``depth_selection/val_selection_cropped/{image,velodyne_raw,groundtruth_depth}/*.png``  LiDAR, filtered
             (16-bit, metres × 256) under ROOT                                                      (7×7, 1.5 m)
void         VOID release: ``void_{150,500,1500}/test_{image,sparse_depth,ground_truth}.txt`` list  as given
             paths under ROOT (16-bit PNGs, metres × 256); ``void:ROOT:500`` picks the density
synthetic-dc held-out synthetic scenes (``synthetic-dc[:N[:K]]``: N scenes, K points drawn)          K points (100)
===========  ====================================================================================  ===================

"Drawn from the truth": k valid pixels chosen as Marigold-DC chooses them (:func:`sample_points`: numpy's legacy
generator seeded 2024 shuffles the valid pixels' coordinates, the first k are kept), so our points are theirs.
KITTI-DC's LiDAR is cleaned as Marigold-DC cleans it (:func:`filter_lidar`, after Conti et al. 2023 and VPP4DC):
a point farther than 1.5 m behind the nearest return in a 7×7 window around any point near it is dropped (it
sees through a foreground edge).

Baselines beside the method, on the same points: ``fit`` (the plain prediction, :func:`marigold.predict`, with one
least-squares scale and shift to the points, :func:`marigold.fit_metric`), ``nearest`` and ``linear``
(interpolating the points alone, scipy's ``griddata``; nearest fills outside their hull).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from marigold.optional import require

from .data.formats import read_png16, read_rgb
from .eval_sets import scannet_items

DEFAULT_POINTS = 500  # NYUv2 and ScanNet's protocol
SAMPLE_SEED = 2024  # Marigold-DC's seed for the points it draws
BASELINES = ("fit", "fit + snap", "nearest", "linear")


@dataclass
class DCItem:
    rgb: np.ndarray  # [H,W,3] float32 0..1
    sparse: np.ndarray  # [H,W] float32, 0 = unmeasured
    depth: np.ndarray  # [H,W] float32 ground truth, 0 = invalid
    name: str = ""


def sample_points(valid: np.ndarray, k: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``k`` of the True pixels of ``valid`` ``[H,W]`` → a mask ``[H,W]``, drawn as Marigold-DC draws them (the
    legacy global generator seeded, the ``[P,2]`` coordinates shuffled by rows, the first ``k`` kept)."""
    coords = np.argwhere(valid)  # [P,2]
    k = min(int(k), len(coords))
    np.random.seed(seed)
    np.random.shuffle(coords)
    out = np.zeros(valid.shape, bool)
    if k:
        out[tuple(coords[:k].T)] = True
    return out


def filter_lidar(sparse: np.ndarray, nx: int = 7, ny: int = 7, th: float = 1.5) -> np.ndarray:
    """Drop LiDAR returns that see through a foreground edge: a return whose depth exceeds by more than ``th``
    the nearest return in the ``ny``×``nx`` window of any return near it (Conti et al. 2023's rule, the filter
    Marigold-DC applies to KITTI-DC). ``[H,W]`` metres, 0 = none → the same with the dropped points at 0."""
    ndimage = require("scipy.ndimage", "train", "Filtering KITTI-DC's LiDAR")
    d = np.asarray(sparse, np.float32)
    valid = d > 1e-3
    big = np.float32(1e6)
    # the nearest return in each return's window, then, for every pixel, the least of those over the returns
    # whose windows cover it: a pixel's depth minus that is the largest step behind a nearby foreground
    near = ndimage.minimum_filter(np.where(valid, d, big), size=(ny, nx), mode="constant", cval=big)
    near = ndimage.minimum_filter(np.where(d > 0, near, big), size=(ny, nx), mode="constant", cval=big)
    drop = (d > 0) & (d - near > th)
    return np.where(drop, 0, d).astype(np.float32)


def _png_metres(path: Path) -> np.ndarray:
    return (read_png16(path) / 256.0).astype(np.float32)


def folder_items(root: str | Path, limit: int | None = None) -> Iterator[DCItem]:
    root = Path(root)
    for p in sorted((root / "sparse").glob("*.npy"))[:limit]:
        rgb = next((root / "rgb" / (p.stem + s) for s in (".png", ".jpg", ".jpeg")
                    if (root / "rgb" / (p.stem + s)).is_file()), None)
        if rgb is None:
            raise FileNotFoundError(f"{root / 'rgb'}: no image named {p.stem}.png/.jpg for {p.name}")
        yield DCItem(read_rgb(rgb), np.load(p).astype(np.float32).squeeze(),
                     np.load(root / "gt" / p.name).astype(np.float32).squeeze(), p.stem)


def nyu_dc_items(root: str | Path, limit: int | None = None) -> Iterator[DCItem]:
    h5py = require("h5py", "train", "Reading the NYUv2 depth-completion HDF5 files")
    root = Path(root)
    with h5py.File(root / "nyu_img_gt.h5", "r") as fi, h5py.File(root / "nyu_pred_with_500.h5", "r") as fh:
        for i in range(len(fi["gt"]))[:limit]:
            yield DCItem(np.asarray(fi["img"][i], np.float32) / 255.0, np.asarray(fh["hints"][i], np.float32).squeeze(),
                         np.asarray(fi["gt"][i], np.float32).squeeze(), f"nyu_{i:04d}")


def scannet_dc_items(root: str | Path, limit: int | None = None, k: int = DEFAULT_POINTS) -> Iterator[DCItem]:
    for it in scannet_items(root, limit):
        pick = sample_points(it.valid, k)
        yield DCItem(it.rgb, np.where(pick, it.depth, 0).astype(np.float32), np.where(it.valid, it.depth, 0), it.name)


def kitti_dc_items(root: str | Path, limit: int | None = None) -> Iterator[DCItem]:
    base = Path(root) / "depth_selection" / "val_selection_cropped"
    images = sorted((base / "image").glob("*.png"))
    lidar = sorted((base / "velodyne_raw").glob("*.png"))
    truth = sorted((base / "groundtruth_depth").glob("*.png"))
    if not (len(images) == len(lidar) == len(truth)) or not images:
        raise FileNotFoundError(f"{base}: expected as many image/, velodyne_raw/ and groundtruth_depth/ PNGs "
                                f"(found {len(images)}, {len(lidar)}, {len(truth)})")
    for ip, lp, tp in list(zip(images, lidar, truth))[:limit]:
        yield DCItem(read_rgb(ip), filter_lidar(_png_metres(lp)), _png_metres(tp), ip.stem)


def void_items(root: str | Path, density: int = 500, limit: int | None = None) -> Iterator[DCItem]:
    root = Path(root)
    lists = [root / f"void_{density}" / f"test_{k}.txt" for k in ("image", "sparse_depth", "ground_truth")]
    if not all(p.is_file() for p in lists):
        raise FileNotFoundError(f"{root}: VOID's void_{density}/test_image.txt, test_sparse_depth.txt and "
                                f"test_ground_truth.txt not found")
    rows = [[ln.strip() for ln in p.read_text().splitlines() if ln.strip()] for p in lists]
    for ip, sp, gp in list(zip(*rows))[:limit]:
        yield DCItem(read_rgb(root / ip), _png_metres(root / sp), _png_metres(root / gp), ip)


def synthetic_dc_items(n: int = 8, k: int = 100, size: tuple[int, int] = (96, 128),
                       texture: str = "flat") -> Iterator[DCItem]:
    from .eval_sets import synthetic_eval_set

    for it in synthetic_eval_set(n, "heldout", *size, texture=texture).items:
        valid = it.valid & (it.depth > 1e-3)
        pick = sample_points(valid, k)
        yield DCItem(it.rgb, np.where(pick, it.depth, 0).astype(np.float32), np.where(valid, it.depth, 0), it.name)


def dc_items(spec: str, limit: int | None = None) -> Iterator[DCItem]:
    """``name:path[:option]`` (see the module docstring) → the set's items."""
    name, _, rest = spec.partition(":")
    path, _, opt = rest.rpartition(":") if name in ("void", "synthetic-dc") and rest.count(":") else (rest, "", "")
    if name == "dc-folder":
        return folder_items(rest, limit)
    if name == "nyu-dc":
        return nyu_dc_items(rest, limit)
    if name == "scannet-dc":
        return scannet_dc_items(rest, limit)
    if name == "kitti-dc":
        return kitti_dc_items(rest, limit)
    if name == "void":
        return void_items(path or rest, int(opt) if opt else 500, limit)
    if name == "synthetic-dc":
        n, k = (path, opt) if opt else (rest, "")
        return synthetic_dc_items(int(n) if n else (limit or 8), int(k) if k else 100)
    raise ValueError(f"unknown depth-completion set {name!r}: dc-folder, nyu-dc, scannet-dc, kitti-dc, void or "
                     f"synthetic-dc")


def interpolate(sparse: np.ndarray, method: str) -> np.ndarray:
    """The points alone, interpolated over the image (``nearest`` or ``linear``; linear is filled by nearest
    outside the points' hull)."""
    interp = require("scipy.interpolate", "train", "Interpolating sparse depth")
    ys, xs = np.nonzero(sparse > 0)
    h, w = sparse.shape
    gy, gx = np.mgrid[0:h, 0:w]
    pts, vals = np.stack([ys, xs], 1), sparse[ys, xs]
    near = interp.griddata(pts, vals, (gy, gx), method="nearest")
    if method == "nearest" or len(vals) < 3:
        return near.astype(np.float32)
    try:
        lin = interp.griddata(pts, vals, (gy, gx), method="linear")
    except Exception:  # collinear points: no triangulation
        return near.astype(np.float32)
    return np.where(np.isfinite(lin), lin, near).astype(np.float32)


def evaluate_completion(model, items, *, steps: int | None = None, ensemble_size: int = 1,
                        processing_resolution: int | None = None, seed: int = 0,
                        baselines: tuple[str, ...] = (), method: bool = True, one_step: bool = False,
                        snap: bool = True) -> dict:
    """Complete (and run the ``baselines`` on) every item; MAE / RMSE per image, then the set's means.

    ``snap``: completion snapped to the points (:func:`marigold.snap_to_points`, the library's default); the
    published method's own map is then scored too, as "completion, no snap" (the same run, before the snap).
    Baselines: "fit" (one scale and shift of the plain prediction), "fit + snap", "nearest", "linear"."""
    import marigold
    from marigold.core.image import to_tensor
    from marigold.core.metric import fit_metric, metric_errors, sparse_depth
    from marigold.core.snap import snap_to_points

    rows = []
    for it in items:
        row: dict = {"name": it.name, "points": int((it.sparse > 0).sum())}
        if method:
            out = marigold.complete(model, it.rgb, it.sparse, num_inference_steps=steps, ensemble_size=ensemble_size,
                                    processing_resolution=processing_resolution, seed=seed, one_step=one_step,
                                    snap=snap)
            row["completion"] = metric_errors(out.depth[0, 0], it.depth)
            if snap:
                row["completion, no snap"] = metric_errors(out.unsnapped[0, 0], it.depth)
        if "fit" in baselines or "fit + snap" in baselines:
            p = marigold.predict(model, it.rgb, ensemble_size=ensemble_size,
                                 processing_resolution=processing_resolution, seed=seed).prediction
            fitted = fit_metric(p, it.sparse)
            if "fit" in baselines:
                row["fit"] = metric_errors(fitted.depth[0, 0], it.depth)
            if "fit + snap" in baselines:  # the same fit, snapped: what fit_metric(snap=True) returns
                snapped = snap_to_points(fitted.depth, sparse_depth(it.sparse, tuple(fitted.depth.shape[-2:])),
                                         to_tensor(it.rgb))
                row["fit + snap"] = metric_errors(snapped[0, 0], it.depth)
        for b in ("nearest", "linear"):
            if b in baselines:
                row[b] = metric_errors(interpolate(it.sparse, b), it.depth)
        rows.append(row)
    keys = [k for k in ("completion", "completion, no snap", *BASELINES) if rows and k in rows[0]]
    means = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("mae", "rmse")} for k in keys}
    return {"n": len(rows), "means": means, "rows": rows}


def format_table(name: str, result: dict) -> str:
    lines = [f"{name} ({result['n']} images): MAE / RMSE in the data's units, per image then averaged",
             "| method | MAE | RMSE |", "|---|---|---|"]
    lines += [f"| {k} | {v['mae']:.4f} | {v['rmse']:.4f} |" for k, v in result["means"].items()]
    return "\n".join(lines)
