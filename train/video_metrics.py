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

Objects that move on their own (clips with a ``moving`` mask and the object's world ``motion`` per frame, see
``train.data.synthetic``): a pixel of the object is carried by the object's motion before it is projected, so its
pair is the same surface point too; the temporal error is also reported on static pixels and on moving-object
pixels apart (``temporal_error_static``, ``temporal_error_moving``): a method that smooths over time and lags
shows up in the second.

TAE, the temporal alignment error of Video Depth Anything (Chen et al., CVPR 2025, Sec. 4.1; its
``benchmark/eval/eval_tae.py``): every pixel of frame k is back-projected with its *predicted* aligned depth, moved
with the true relative pose (and the object's motion on moving pixels), rounded to the nearest pixel of frame
k+1, and its depth there compared with frame k+1's predicted depth: AbsRel ``|A[k+1](q) − z'| / A[k+1](q)``
over the pixels hit; the mean of both directions (k→k+1 and k+1→k) over the clip. Ours keeps the nearest point
where several land on one pixel (theirs keeps an arbitrary one) and counts only pixels valid in both frames' ground
truth; VDA's tables print it ×100 (theirs 0.570 is our 0.00570). Unlike the temporal error it needs no
ground-truth depth for the pairing, so a prediction that is consistent but wrong scores well on it.
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


def _carry(world: np.ndarray, v: np.ndarray, u: np.ndarray, moving: np.ndarray | None,
           motion: np.ndarray | None) -> np.ndarray:
    """World points ``[3,P]`` of pixels ``(v, u)``, moved by ``motion`` ``[3]`` where ``moving`` ``[H,W]`` is set."""
    if moving is None or motion is None:
        return world
    on = moving[v, u]
    return world + np.where(on[None], np.asarray(motion, np.float64)[:, None], 0.0)


def correspondences(gt0: np.ndarray, mask0: np.ndarray, gt1: np.ndarray, mask1: np.ndarray, K: np.ndarray,
                    pose0: np.ndarray, pose1: np.ndarray, tol: float = 0.01, moving0: np.ndarray | None = None,
                    motion: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Pixels of frame 0 visible in frame 1: ``(v, u)`` in frame 0 and the bilinear footprint ``(v0, u0, dv,
    du)`` of their projection in frame 1 (see the module docstring). Poses are camera-to-world ``[4,4]``;
    ``K`` maps camera coordinates to pixel indices (u = fx·X/Z + cx). ``moving0`` ``[H,W]``: pixels of an object
    that moves by ``motion`` ``[3]`` (world) between the two frames."""
    h, w = gt0.shape
    v, u = np.nonzero(mask0)
    z = gt0[v, u].astype(np.float64)
    rays = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)  # [3,P]
    world = _carry(pose0[:3, :3] @ (rays * z) + pose0[:3, 3:4], v, u, moving0, motion)  # [3,P]
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


def temporal_errors(aligned: np.ndarray, gt: np.ndarray, mask: np.ndarray, K: np.ndarray, poses: np.ndarray,
                    tol: float = 0.01, moving: np.ndarray | None = None, motion: np.ndarray | None = None
                    ) -> dict[str, tuple[float, int]]:
    """Temporal error on all, static and moving pixels: ``{"all" | "static" | "moving": (error, pairs)}``;
    ``moving`` ``[T,H,W]`` bool and ``motion`` ``[T,3]`` (the object's world displacement from frame k to k+1)
    where an object moves on its own (without them every pixel is static)."""
    sums = {"all": 0.0, "static": 0.0, "moving": 0.0}
    counts = {"all": 0, "static": 0, "moving": 0}
    for k in range(gt.shape[0] - 1):
        mv = None if moving is None else moving[k]
        v, u, v0, u0, dv, du = correspondences(gt[k], mask[k], gt[k + 1], mask[k + 1], K, poses[k], poses[k + 1],
                                               tol, mv, None if motion is None else motion[k])
        if v.size == 0:
            continue
        g0 = gt[k][v, u].astype(np.float64)
        a0 = aligned[k][v, u].astype(np.float64)
        g1 = _bilinear(gt[k + 1].astype(np.float64), v0, u0, dv, du)
        a1 = _bilinear(aligned[k + 1].astype(np.float64), v0, u0, dv, du)
        err = np.abs((a1 - a0) - (g1 - g0)) / g0  # [P]
        on = np.zeros(v.size, bool) if mv is None else mv[v, u]
        for key, sel in (("all", slice(None)), ("static", ~on), ("moving", on)):
            sums[key] += float(np.sum(err[sel]))
            counts[key] += int(err[sel].size)
    return {k: (sums[k] / counts[k] if counts[k] else float("nan"), counts[k]) for k in sums}


def temporal_error(aligned: np.ndarray, gt: np.ndarray, mask: np.ndarray, K: np.ndarray, poses: np.ndarray,
                   tol: float = 0.01) -> tuple[float, int]:
    """(mean relative error of the depth change of surface points between consecutive frames, number of
    correspondences); ``aligned``, ``gt``, ``mask`` ``[T,H,W]``, ``poses`` ``[T,4,4]`` camera-to-world."""
    return temporal_errors(aligned, gt, mask, K, poses, tol)["all"]


def _tae_pair(d0: np.ndarray, m0: np.ndarray, d1: np.ndarray, m1: np.ndarray, K: np.ndarray, rel: np.ndarray,
              moving0: np.ndarray | None, motion_cam1: np.ndarray | None) -> tuple[float, int]:
    """One direction of TAE: frame 0's predicted depth ``d0`` moved by ``rel`` (camera 0 → camera 1, ``[4,4]``)
    into frame 1; (sum of AbsRel against ``d1`` over the pixels hit, their number)."""
    h, w = d0.shape
    v, u = np.nonzero(m0 & (d0 > 0))
    z = d0[v, u].astype(np.float64)
    rays = np.linalg.inv(K) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)  # [3,P]
    cam1 = rel[:3, :3] @ (rays * z) + rel[:3, 3:4]  # [3,P]
    if moving0 is not None and motion_cam1 is not None:
        cam1 = cam1 + np.where(moving0[v, u][None], motion_cam1[:, None], 0.0)
    z1 = cam1[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pix = K @ cam1
        uu, vv = np.round(pix[0] / pix[2]), np.round(pix[1] / pix[2])
    ok = (z1 > 1e-6) & (uu >= 0) & (uu <= w - 1) & (vv >= 0) & (vv <= h - 1)
    idx = vv[ok].astype(np.int64) * w + uu[ok].astype(np.int64)
    proj = np.full(h * w, np.inf)
    np.minimum.at(proj, idx, z1[ok])  # z-buffer: the nearest point that lands on a pixel
    proj = proj.reshape(h, w)
    hit = np.isfinite(proj) & m1 & (d1 > 0)
    if not hit.any():
        return 0.0, 0
    return float(np.sum(np.abs(d1[hit] - proj[hit]) / d1[hit])), int(hit.sum())


def tae(aligned: np.ndarray, mask: np.ndarray, K: np.ndarray, poses: np.ndarray, moving: np.ndarray | None = None,
        motion: np.ndarray | None = None) -> float:
    """Video Depth Anything's temporal alignment error (module docstring) of an aligned prediction ``[T,H,W]``
    (metric depth), as a fraction (VDA prints ×100): the mean over frame pairs and both directions of the AbsRel
    of one frame's depth reprojected into the other with the true poses."""
    aligned = np.asarray(aligned, np.float64)
    per = []
    for k in range(aligned.shape[0] - 1):
        rel = np.linalg.inv(poses[k + 1]) @ poses[k]  # camera k → camera k+1
        for a, b, r, mv, sign in ((k, k + 1, rel, None if moving is None else moving[k], 1.0),
                                  (k + 1, k, np.linalg.inv(rel), None if moving is None else moving[k + 1], -1.0)):
            cam = None
            if motion is not None:  # the object's world displacement, in the target camera's axes
                cam = poses[b][:3, :3].T @ (sign * np.asarray(motion[k], np.float64))
            s, n = _tae_pair(aligned[a], mask[a], aligned[b], mask[b], K, r, mv, cam)
            if n:
                per.append(s / n)
    return float(np.mean(per)) if per else float("nan")


def evaluate_video(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, *, space: str = "depth",
                   intrinsics: np.ndarray | None = None, poses: np.ndarray | None = None,
                   min_depth: float = 1e-3, max_depth: float = np.inf, tol: float = 0.01,
                   moving: np.ndarray | None = None, motion: np.ndarray | None = None,
                   with_tae: bool = False) -> dict[str, float]:
    """One video ``[T,H,W]``: valid ∩ depth range → one alignment → AbsRel, δ1 (and the other depth metrics)
    pooled over all frames, and the temporal error where intrinsics and poses are known (with ``moving`` and
    ``motion``: also on static and moving pixels apart; with ``with_tae``: VDA's TAE too)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} must both be [T,H,W]")
    mask = valid & np.isfinite(gt) & (gt > min_depth) & (gt <= max_depth)
    aligned = align_video(pred, gt, mask, space, min_depth, max_depth)
    out = M.depth_metrics(aligned, gt, mask)
    if intrinsics is not None and poses is not None:
        K, P = np.asarray(intrinsics), np.asarray(poses)
        te = temporal_errors(aligned, gt, mask, K, P, tol, moving, motion)
        out["temporal_error"], n = te["all"]
        out["correspondences"] = float(n)
        if moving is not None:
            out["temporal_error_static"] = te["static"][0]
            out["temporal_error_moving"] = te["moving"][0]
        if with_tae:
            out["tae"] = tae(aligned, mask, K, P, moving, motion)
    return out
