"""Video depth evaluation: one alignment per video, and a temporal consistency measure from exact geometry.

Accuracy follows RollingDepth's protocol (Ke et al. 2024, arXiv 2411.19189, Sec. 4.1 "evaluation"): the
prediction of a whole video is fitted to the ground truth with ONE least-squares scale and shift over the valid
pixels of all its frames, in the model's own space (disparity for RollingDepth / snippet models, whose output is
affine-invariant inverse depth; depth for Marigold), then AbsRel and δ1 are computed over all valid pixels of
the video (pooled) and averaged over videos. A model that flickers in scale from frame to frame cannot be fitted
by one affine map, so this already penalises inconsistency.

Temporal error (ours; the papers use optical-flow based measures where no geometry exists): between each pair
of consecutive frames, every valid pixel ``p`` of frame k is back-projected with its true depth and the known
intrinsics and poses, and projected into frame k+1 at the sub-pixel position ``q``. The pair counts when ``q``
lies inside frame k+1, its four neighbours are valid, and the true depth there (bilinear) equals the depth of
the projected point within ``tol`` (relative): a visible, un-occluded surface point. Then

    temporal_error = mean over counted pairs of | (A[k+1](q) − A[k](p)) − (G[k+1](q) − G[k](p)) | / G[k](p)

with A the aligned prediction and G the ground truth (both sampled bilinearly at q): the error of the predicted
depth *change* of a surface point against its true change, relative to its depth. Ground truth scores 0; a
prediction whose frames are each right up to their own scale scores about the scale jitter.
"""

from __future__ import annotations

import numpy as np

from . import metrics as M

VIDEO_METRICS = ("abs_rel", "delta1", "temporal_error")


def align_video(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, space: str = "depth",
                min_depth: float = 1e-3, max_depth: float = np.inf) -> np.ndarray:
    """``[T,H,W]`` prediction → metric depth with ONE least-squares scale and shift for the whole video, fitted
    over ``mask`` in ``space`` ("depth", or "disparity": fitted to 1/depth, then inverted)."""
    return M.align(pred, gt, mask, space, min_depth, max_depth)


def _bilinear(img: np.ndarray, v0: np.ndarray, u0: np.ndarray, dv: np.ndarray, du: np.ndarray) -> np.ndarray:
    return (img[v0, u0] * (1 - dv) * (1 - du) + img[v0, u0 + 1] * (1 - dv) * du
            + img[v0 + 1, u0] * dv * (1 - du) + img[v0 + 1, u0 + 1] * dv * du)


def correspondences(gt0: np.ndarray, mask0: np.ndarray, gt1: np.ndarray, mask1: np.ndarray, K: np.ndarray,
                    pose0: np.ndarray, pose1: np.ndarray, tol: float = 0.01) -> tuple[np.ndarray, ...]:
    """Pixels of frame 0 visible in frame 1: ``(v, u)`` in frame 0 and the bilinear footprint ``(v0, u0, dv,
    du)`` of their projection in frame 1 (see the module docstring). Poses are camera-to-world ``[4,4]``;
    ``K`` maps camera coordinates to pixel indices (u = fx·X/Z + cx)."""
    h, w = gt0.shape
    v, u = np.nonzero(mask0)
    z = gt0[v, u].astype(np.float64)
    rays = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)  # [3,P]
    world = pose0[:3, :3] @ (rays * z) + pose0[:3, 3:4]  # [3,P]
    cam1 = pose1[:3, :3].T @ (world - pose1[:3, 3:4])  # [3,P]
    z1 = cam1[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pix = K @ cam1
        uu, vv = pix[0] / pix[2], pix[1] / pix[2]
    ok = (z1 > 1e-6) & (uu >= 0) & (uu <= w - 1) & (vv >= 0) & (vv <= h - 1)
    v, u, uu, vv, z1 = v[ok], u[ok], uu[ok], vv[ok], z1[ok]
    u0 = np.minimum(np.floor(uu).astype(np.int64), w - 2)
    v0 = np.minimum(np.floor(vv).astype(np.int64), h - 2)
    du, dv = uu - u0, vv - v0
    ok = mask1[v0, u0] & mask1[v0, u0 + 1] & mask1[v0 + 1, u0] & mask1[v0 + 1, u0 + 1]
    g1 = _bilinear(gt1.astype(np.float64), v0, u0, dv, du)
    ok &= np.abs(g1 - z1) <= tol * z1  # the same surface point, not an occluder
    return v[ok], u[ok], v0[ok], u0[ok], dv[ok], du[ok]


def temporal_error(aligned: np.ndarray, gt: np.ndarray, mask: np.ndarray, K: np.ndarray, poses: np.ndarray,
                   tol: float = 0.01) -> tuple[float, int]:
    """(mean relative error of the depth change of surface points between consecutive frames, number of
    correspondences); ``aligned``, ``gt``, ``mask`` ``[T,H,W]``, ``poses`` ``[T,4,4]`` camera-to-world."""
    total, count = 0.0, 0
    for k in range(gt.shape[0] - 1):
        v, u, v0, u0, dv, du = correspondences(gt[k], mask[k], gt[k + 1], mask[k + 1], K, poses[k], poses[k + 1],
                                               tol)
        if v.size == 0:
            continue
        g0 = gt[k][v, u].astype(np.float64)
        a0 = aligned[k][v, u].astype(np.float64)
        g1 = _bilinear(gt[k + 1].astype(np.float64), v0, u0, dv, du)
        a1 = _bilinear(aligned[k + 1].astype(np.float64), v0, u0, dv, du)
        total += float(np.sum(np.abs((a1 - a0) - (g1 - g0)) / g0))
        count += int(v.size)
    return (total / count if count else float("nan")), count


def evaluate_video(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, *, space: str = "depth",
                   intrinsics: np.ndarray | None = None, poses: np.ndarray | None = None,
                   min_depth: float = 1e-3, max_depth: float = np.inf, tol: float = 0.01) -> dict[str, float]:
    """One video ``[T,H,W]``: valid ∩ depth range → one alignment → AbsRel, δ1 (and the other depth metrics)
    pooled over all frames, and the temporal error where intrinsics and poses are known."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must both be [T,H,W]")
    mask = valid & np.isfinite(gt) & (gt > min_depth) & (gt <= max_depth)
    aligned = align_video(pred, gt, mask, space, min_depth, max_depth)
    out = M.depth_metrics(aligned, gt, mask)
    if intrinsics is not None and poses is not None:
        te, n = temporal_error(aligned, gt, mask, np.asarray(intrinsics), np.asarray(poses), tol)
        out["temporal_error"] = te
        out["correspondences"] = float(n)
    return out
