"""Optical flow between consecutive frames (OpenCV's DIS) and the co-alignment rows it gives Marigold's video mode.

In video mode the units are frames: frame i's prediction and frame i+1's prediction warped back into frame i by
the flow are two rows of one comparison group, valid where the forward and backward flows agree (Sundaram et al.
2010's forward–backward check) and the warped point lies inside the frame. :func:`flow_rows` returns exactly the
``(maps, unit, group, mask)`` that :func:`marigold.core.coalign.solve` takes.

Flow convention: ``flow [2,H,W]`` (dx, dy) from ``a`` to ``b``: ``a(p) ≈ b(p + flow(p))``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["dis_flow", "warp", "consistent", "flow_rows", "global_flow", "affine_flow"]


def _gray_u8(img: torch.Tensor):
    """[3,H,W] or [H,W] 0..1 → uint8 HxW numpy (what DIS reads)."""
    if img.ndim == 3:
        img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]) if img.shape[0] == 3 else img[0]
    return (img.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().contiguous().numpy()


def dis_flow(a: torch.Tensor, b: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Dense flow [2,H,W] (float32, pixels) from image ``a`` to image ``b`` ([3,H,W] RGB or [H,W], 0..1) by
    OpenCV's DIS optical flow (``cv2.DISOpticalFlow_create``)."""
    import cv2

    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if preset not in presets:
        raise InputError(f"preset: expected one of {sorted(presets)}, got {preset!r}")
    if a.shape != b.shape:
        raise InputError(f"a, b: the two frames differ in shape ({tuple(a.shape)} vs {tuple(b.shape)})")
    dis = cv2.DISOpticalFlow_create(presets[preset])
    flow = dis.calc(_gray_u8(a), _gray_u8(b), None)  # HxWx2
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous()  # [2,H,W]


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """Sampling grid [1,H,W,2] in grid_sample's [-1, 1] coordinates (align_corners=True) for p + flow(p)."""
    _, H, W = flow.shape
    yy, xx = torch.meshgrid(torch.arange(H, dtype=flow.dtype), torch.arange(W, dtype=flow.dtype), indexing="ij")
    x = (xx + flow[0]) / max(W - 1, 1) * 2 - 1
    y = (yy + flow[1]) / max(H - 1, 1) * 2 - 1
    return torch.stack([x, y], -1).unsqueeze(0)


def warp(img: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``img`` [C,H,W] sampled at p + flow(p) (bilinear): the frame ``b`` seen from frame ``a``. Returns the warped
    image and a bool [H,W] mask of points that land inside the frame."""
    g = _grid(flow.to(img.dtype))
    out = F.grid_sample(img.unsqueeze(0), g, mode="bilinear", padding_mode="border", align_corners=True)[0]
    inside = (g[0].abs() <= 1).all(-1)  # [H,W]
    return out, inside


def consistent(fwd: torch.Tensor, bwd: torch.Tensor, alpha: float = 0.01, beta: float = 0.5) -> torch.Tensor:
    """Forward–backward check (Sundaram, Brox, Keutzer 2010): p is kept where |f(p) + b(p + f(p))|² <
    alpha·(|f|² + |b(p + f(p))|²) + beta, and p + f(p) lies inside the frame. Returns bool [H,W]."""
    bw, inside = warp(bwd, fwd)  # [2,H,W]
    err = (fwd + bw).pow(2).sum(0)
    return inside & (err < alpha * (fwd.pow(2).sum(0) + bw.pow(2).sum(0)) + beta)


def affine_flow(m: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A 2×3 affine map ``m`` (pixel coordinates of ``a`` → ``b``) as a dense flow ``[2,H,W]``."""
    H, W = size
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    m = m.double()
    fx = m[0, 0] * xx + m[0, 1] * yy + m[0, 2] - xx
    fy = m[1, 0] * xx + m[1, 1] * yy + m[1, 2] - yy
    return torch.stack([fx, fy]).float()  # [2,H,W]


GLOBAL_SIZE = 256  # px: the long side :func:`global_flow` estimates the motion at


def global_flow(a: torch.Tensor, b: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """One affine motion ``[2,H,W]`` from grey image ``a`` to ``b`` ([H,W], 0..1, exposure-normalised): the camera's
    motion, for scenes where a dense flow cannot be trusted pixel by pixel.

    Why: on weakly textured frames (flat walls) with noise and compression, DIS's per-pixel flow is off by more
    than the true motion (on bench.quality's video clips, 1.1–1.7 px end-point error against a true motion of
    1.2 px, worse than no flow) and half its pixels fail the forward–backward check; one global motion pools the
    edges of every orientation, which resolves the aperture problem (0.4–0.5 px there). How: DIS both ways, a
    RANSAC affine fit (``cv2.estimateAffine2D``) to the consistent pixels on edges, then refined by OpenCV's ECC
    image alignment (``cv2.findTransformECC``; Evangelidis & Psarakis 2008), whose correlation criterion ignores
    gain and offset changes between the frames. Falls back to the RANSAC fit, then to no motion. Frames larger
    than :data:`GLOBAL_SIZE` are estimated at that size (at 768×576 the full-size estimate cost 0.35 s a pair)."""
    if a.ndim != 2 or a.shape != b.shape:
        raise InputError(f"a, b: expected two grey [H,W] frames of one size, got {tuple(a.shape)}, {tuple(b.shape)}")
    H, W = a.shape
    f = max(H, W) / GLOBAL_SIZE
    if f > 1:  # one motion needs no more pixels than this: estimate it small and scale its translation back
        small = (max(round(H / f), 8), max(round(W / f), 8))
        rs = lambda x: F.interpolate(x.float()[None, None], size=small, mode="area")[0, 0]  # noqa: E731
        m = _global_affine(rs(a), rs(b), preset)
        sx, sy = W / small[1], H / small[0]
        m = m.copy()
        m[0, 1] *= sx / sy
        m[1, 0] *= sy / sx
        m[0, 2] *= sx
        m[1, 2] *= sy
        return affine_flow(torch.from_numpy(m), (H, W))
    return affine_flow(torch.from_numpy(_global_affine(a, b, preset)), (H, W))


def _global_affine(a: torch.Tensor, b: torch.Tensor, preset: str):
    """:func:`global_flow`'s motion as a 2×3 float64 numpy matrix (pixel coordinates of ``a`` → ``b``)."""
    import cv2
    import numpy as np

    H, W = a.shape
    fwd = dis_flow(a, b, preset)  # [2,H,W] a → b
    bwd = dis_flow(b, a, preset)
    ok = consistent(fwd, bwd).numpy()  # [H,W]
    an = a.detach().float().cpu().contiguous().numpy()
    bn = b.detach().float().cpu().contiguous().numpy()
    grad = np.hypot(cv2.Sobel(an, cv2.CV_32F, 1, 0), cv2.Sobel(an, cv2.CV_32F, 0, 1))
    v, u = np.nonzero(ok & (grad > 0.05))  # DIS is trustworthy on edges, not inside flat regions
    m = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    if v.size >= 12:
        src = np.stack([u, v], 1).astype(np.float32)
        fit, _ = cv2.estimateAffine2D(src, src + fwd[:, v, u].numpy().T, method=cv2.RANSAC,
                                      ransacReprojThreshold=1.0)
        if fit is not None and np.isfinite(fit).all():
            m = fit
    # ECC's warp maps template (b's role here: the frame sampled *at* p) to input coordinates: pass (a, b) so that
    # b(m·p) ≈ a(p), i.e. m is the motion a → b
    try:
        _, ecc = cv2.findTransformECC(an, bn, m.astype(np.float32), cv2.MOTION_AFFINE,
                                      (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6), None, 5)
        if np.isfinite(ecc).all() and np.abs(ecc[:, 2]).max() < max(H, W):
            m = ecc.astype(np.float64)
    except cv2.error:  # no convergence (a cut, a blank frame): keep the RANSAC fit
        pass
    return m


def flow_rows(frames: torch.Tensor, maps: torch.Tensor, *, preset: str = "medium", alpha: float = 0.01,
              beta: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Co-alignment rows for consecutive frames: ``frames [T,3,H,W]`` (0..1, any size) and per-frame predictions
    ``maps [T,h,w]`` (the flow is computed at the maps' size). Group i (i = 0..T−2) holds frame i's map (unit i)
    and frame i+1's map warped into frame i (unit i+1), both masked by the forward–backward check.
    Returns ``maps [2(T−1), h·w]``, ``unit``, ``group``, ``mask`` for :func:`marigold.core.coalign.solve` with
    ``n_units=T``."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"frames: expected [T,3,H,W], got {tuple(frames.shape)}")
    if maps.ndim != 3 or maps.shape[0] != frames.shape[0]:
        raise InputError(f"maps: expected [T,h,w] with T={frames.shape[0]}, got {tuple(maps.shape)}")
    T, h, w = maps.shape
    small = F.interpolate(frames.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    rows, masks, unit, group = [], [], [], []
    for i in range(T - 1):
        fwd = dis_flow(small[i], small[i + 1], preset)  # [2,h,w] frame i → i+1
        bwd = dis_flow(small[i + 1], small[i], preset)
        ok = consistent(fwd, bwd, alpha, beta)  # [h,w]
        warped, _ = warp(maps[i + 1].float().unsqueeze(0), fwd)  # [1,h,w]
        rows += [maps[i].float().reshape(-1), warped.reshape(-1)]
        masks += [ok.reshape(-1), ok.reshape(-1)]
        unit += [i, i + 1]
        group += [i, i]
    if not rows:
        empty = torch.zeros(0, h * w)
        return empty, torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), empty.bool()
    return torch.stack(rows), torch.tensor(unit), torch.tensor(group), torch.stack(masks)
