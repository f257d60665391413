"""The standard affine-invariant depth evaluation: least-squares alignment, valid masks, eval crops, metrics.

As in Marigold's evaluation (``eval.alignment: least_square``): the prediction is fitted to the ground truth
with one scale and shift per image by least squares over the valid pixels (in depth, or in disparity where
the prediction is a disparity), clipped to the data set's depth range, and scored on the valid pixels inside
the evaluation crop. Per-image metrics are averaged over the data set.
"""

from __future__ import annotations

import numpy as np

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(s, t) minimising Σ_mask (s·pred + t − target)², in float64."""
    p = pred[mask].astype(np.float64)
    g = target[mask].astype(np.float64)
    if p.size < 2:
        raise ValueError("alignment needs at least 2 valid pixels")
    a = np.stack([p, np.ones_like(p)], 1)
    (s, t), *_ = np.linalg.lstsq(a, g, rcond=None)
    return float(s), float(t)


def align(pred: np.ndarray, gt_depth: np.ndarray, mask: np.ndarray, space: str = "depth",
          min_depth: float = 1e-3, max_depth: float = np.inf) -> np.ndarray:
    """Affine-invariant prediction → metric depth aligned to ``gt_depth`` over ``mask``.

    ``space="depth"``: fit pred ≈ depth. ``space="disparity"``: fit pred ≈ 1 / depth, then invert.
    """
    if space == "depth":
        s, t = fit_scale_shift(pred, gt_depth, mask)
        out = pred.astype(np.float64) * s + t
    elif space == "disparity":
        gt_disp = np.zeros_like(gt_depth, dtype=np.float64)
        gt_disp[mask] = 1.0 / gt_depth[mask]
        s, t = fit_scale_shift(pred, gt_disp, mask)
        disp = pred.astype(np.float64) * s + t
        lo = 1.0 / max_depth if np.isfinite(max_depth) and max_depth > 0 else 1e-12
        disp = np.clip(disp, lo, None)
        out = 1.0 / disp
    else:
        raise ValueError(f"alignment space must be 'depth' or 'disparity'; got {space!r}")
    return np.clip(out, min_depth, max_depth if np.isfinite(max_depth) else None)


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """AbsRel, SqRel, RMSE, RMSE(log), δ1..δ3 over ``mask`` (pred already aligned, both > 0 there)."""
    p = pred[mask].astype(np.float64)
    g = gt[mask].astype(np.float64)
    if g.size == 0:
        raise ValueError("no valid pixels to evaluate")
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
    }


def evaluate_prediction(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, *, space: str = "depth",
                        min_depth: float = 1e-3, max_depth: float = np.inf, crop: np.ndarray | None = None
                        ) -> dict[str, float]:
    """One image: valid mask ∩ depth range ∩ eval crop → align → metrics."""
    mask = valid & np.isfinite(gt) & (gt > min_depth) & (gt <= max_depth)
    if crop is not None:
        mask &= crop
    aligned = align(pred, gt, mask, space, min_depth, max_depth)
    return depth_metrics(aligned, gt, mask)


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}


# eval crops, as fractions of the image (Eigen et al. 2014; Garg et al. 2016), and NYUv2's Eigen crop in pixels
def kitti_crop(shape: tuple[int, int], kind: str = "eigen") -> np.ndarray:
    h, w = shape
    m = np.zeros((h, w), bool)
    if kind == "eigen":
        m[int(0.3324324 * h):int(0.91351351 * h), int(0.0359477 * w):int(0.96405229 * w)] = True
    elif kind == "garg":
        m[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
    else:
        raise ValueError(f"KITTI crop must be 'eigen' or 'garg'; got {kind!r}")
    return m


def nyu_eigen_crop(shape: tuple[int, int] = (480, 640)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[45:471, 41:601] = True
    return m


# ---------------------------------------------------------------------------------------------------------------
# Normals and intrinsic images

NORMALS_METRICS = ("mean_angle", "median_angle", "a11.25", "a22.5", "a30")


def normals_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Angular error in degrees between unit normals ``[H,W,3]`` over ``mask``: mean, median, and the % of
    pixels under 11.25°, 22.5° and 30° (the protocol of Marigold's normals evaluation, after Bae et al.)."""
    p = pred / np.maximum(np.linalg.norm(pred, axis=-1, keepdims=True), 1e-6)
    g = gt / np.maximum(np.linalg.norm(gt, axis=-1, keepdims=True), 1e-6)
    ang = np.degrees(np.arccos(np.clip((p * g).sum(-1), -1.0, 1.0)))[mask]
    if ang.size == 0:
        return {k: float("nan") for k in NORMALS_METRICS}
    return {"mean_angle": float(ang.mean()), "median_angle": float(np.median(ang)),
            "a11.25": float((ang < 11.25).mean() * 100), "a22.5": float((ang < 22.5).mean() * 100),
            "a30": float((ang < 30).mean() * 100)}


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Gamma 1/2.2 (prs-eth's ``img_linear2srgb``), for scoring linear albedo in sRGB as their evaluation does."""
    return np.clip(x, 0, None) ** (1 / 2.2)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, None) ** 2.2


def image_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """One target map ``[H,W,C]`` in 0..1 against its ground truth over ``mask``: MSE, MAE, PSNR (data range 1) and
    SSIM (scikit-image's, 7×7 windows over the whole image, its map averaged over the channels and the mask).

    prs-eth's IID evaluation reports PSNR, SSIM and LPIPS; LPIPS needs a pretrained network's weights (AlexNet or
    VGG from the hub), which this package does not download, so it is left to their tools."""
    d = (pred.astype(np.float64) - gt.astype(np.float64))[mask]
    if d.size == 0:
        return {"mse": float("nan"), "mae": float("nan"), "psnr": float("nan"), "ssim": float("nan")}
    mse = float((d ** 2).mean())
    ssim = float("nan")
    if min(gt.shape[:2]) >= 7:  # the smallest window scikit-image takes
        from skimage.metrics import structural_similarity

        _, smap = structural_similarity(gt.astype(np.float64), pred.astype(np.float64), data_range=1.0,
                                        channel_axis=-1, full=True)  # [H,W,C]
        ssim = float(smap.mean(-1)[mask].mean())
    return {"mse": mse, "mae": float(np.abs(d).mean()), "psnr": float(10 * np.log10(1.0 / max(mse, 1e-12))),
            "ssim": ssim}


def tile_seam_ratio(out, plan) -> float:
    """A tiled map ``out`` ``[H,W]`` (torch, at the plan's working size) and its
    :class:`marigold.core.tiling.TilePlan` → mean |gradient| across the tile borders over the mean |gradient|
    away from every overlap (1 = no seam; tests/test_tiling.py, bench/quality.py)."""
    import torch

    gx = (out[:, 1:] - out[:, :-1]).abs()  # [H,W-1]: column c is the step from c to c+1
    gy = (out[1:] - out[:-1]).abs()  # [H-1,W]
    th, tw = plan.tile
    bx = sorted({x for x in plan.xs if x > 0} | {x + tw for x in plan.xs if x + tw < plan.size[1]})
    by = sorted({y for y in plan.ys if y > 0} | {y + th for y in plan.ys if y + th < plan.size[0]})
    covered_x = torch.zeros(plan.size[1], dtype=torch.int)  # tiles over each column
    for x in plan.xs:
        covered_x[x:x + tw] += 1
    covered_y = torch.zeros(plan.size[0], dtype=torch.int)
    for y in plan.ys:
        covered_y[y:y + th] += 1
    inside_x = (covered_x[:-1] == 1) & (covered_x[1:] == 1)  # steps within one tile only
    inside_y = (covered_y[:-1] == 1) & (covered_y[1:] == 1)
    border = torch.cat([gx[:, [b - 1 for b in bx]].flatten(), gy[[b - 1 for b in by]].flatten()])
    inside = torch.cat([gx[:, inside_x].flatten(), gy[inside_y].flatten()])
    return float(border.mean() / inside.mean())
