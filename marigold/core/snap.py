"""Make a metric depth map pass through its measurements: guided interpolation of the residuals at the points.

A completed (or fitted) map ``D`` misses the measured depths ``z_j`` by residuals ``r_j = z_j − D(p_j)``. The
correction spreads those residuals over the image with the weights of a joint bilateral filter (Kopf et al.,
"Joint Bilateral Upsampling", SIGGRAPH 2007), guided by the map itself and by the photo: pixel ``p`` takes the
residuals of the points within :data:`REACH` mean spacings, each weighted by

    w_j(p) = exp(−½ (|p − p_j|² / σ_s² + (D(p) − D(p_j))² / σ_d² + |I(p) − I(p_j)|² / σ_c²))

so that a residual stays on the surface it was measured on (a wall's correction does not bleed into the chair in
front of it). ``σ_s`` is a share of the points' mean spacing (√(pixels / points)), so the same setting serves 10
points and a LiDAR sweep; ``σ_d`` a share of the map's median depth; ``σ_c`` in 0..1 colour units. The weights
are normalised over the points in reach (each pixel takes a weighted mean of their residuals), so the map meets
every point whose neighbours agree with it and comes close to the others; a pixel with no point in reach (a part
of the picture no sensor covered) keeps the map.

Why it exists: on our instrument (bench/RESULTS.md, "Metric depth", the small model, 3 seeds) completion alone
beat interpolating 100 points by only 0.90×: its map keeps a smooth error that the points themselves show. The
defaults were chosen on 16 held-out scenes apart from the bench's 8 (docs/lab/2026-12-07-metric-depth.md).

Cost: the points are bucketed in cells of one mean spacing, so each pixel weighs the few points around it:
2-7 s per megapixel on one core, whatever the number of points; photos above :data:`MAX_PIXELS` get the field
worked out at that size and stretched back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["snap_to_points", "SPATIAL", "DEPTH", "COLOUR", "REACH", "MAX_PIXELS"]

SPATIAL = 0.5  # σ_s as a share of the points' mean spacing
DEPTH = 0.03  # σ_d as a share of the map's median depth
COLOUR = 0.1  # σ_c in 0..1 colour units
REACH = 2  # a pixel looks at the points within this many mean spacings (beyond, σ_s = ½ spacing gives < e⁻⁸)
MAX_PIXELS = 1 << 21  # the correction is worked out on at most ~2 MP (a 12 MP photo: a 2.4× coarser field)
_CHUNK = 1 << 22  # pixels × candidate points per block (16 MiB of float32 per array)


def snap_to_points(depth: torch.Tensor, sparse: torch.Tensor, image: torch.Tensor | None = None, *,
                   spatial: float = SPATIAL, depth_sigma: float = DEPTH, colour: float | None = COLOUR,
                   reach: int = REACH) -> torch.Tensor:
    """``depth`` ``[N,1,H,W]`` metric, ``sparse`` ``[N,1,H,W]`` (0 = unmeasured, same units), ``image``
    ``[N,3,H,W]`` 0..1 or None (no colour term) → the corrected depth ``[N,1,H,W]`` (float32). Images without a
    measured point come back unchanged."""
    if depth.ndim != 4 or depth.shape[1] != 1 or sparse.shape != depth.shape:
        raise InputError(f"snap: depth and sparse must both be [N,1,H,W] of one shape; got {tuple(depth.shape)} "
                         f"and {tuple(sparse.shape)}.")
    if image is not None and (image.ndim != 4 or image.shape[0] != depth.shape[0]
                              or tuple(image.shape[-2:]) != tuple(depth.shape[-2:])):
        raise InputError(f"snap: image must be [N,C,H,W] the depth's size; got {tuple(image.shape)}.")
    if spatial <= 0 or depth_sigma <= 0 or (colour is not None and colour <= 0) or reach < 1:
        raise InputError("snap: the spreads and the reach must be positive.")
    out = depth.detach().float().cpu().clone()
    sp = sparse.detach().float().cpu()
    for i in range(out.shape[0]):
        guide = None if image is None or colour is None else image[i].detach().float().cpu()  # [C,H,W]
        out[i, 0] += _correction(out[i, 0], sp[i, 0], guide, spatial, depth_sigma, colour, reach)
    return out


def _cells(ys: torch.Tensor, xs: torch.Tensor, cell: float, shape: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Bucket the points into square cells of side ``cell`` px: a table ``[cells + 1, M]`` of point indices per
    cell (−1 = none; the last row is empty, for neighbours outside the image) and the number of cell columns."""
    rows, cols = int(math.ceil(shape[0] / cell)), int(math.ceil(shape[1] / cell))
    ids = (ys.float() / cell).long().clamp(max=rows - 1) * cols + (xs.float() / cell).long().clamp(max=cols - 1)
    order = torch.argsort(ids, stable=True)  # [K]
    counts = torch.bincount(ids, minlength=rows * cols)  # [cells]
    start = torch.cumsum(counts, 0) - counts  # [cells]
    rank = torch.arange(ids.numel()) - start[ids[order]]  # [K] each point's place within its cell
    table = torch.full((rows * cols + 1, int(counts.max())), -1, dtype=torch.long)
    table[ids[order], rank] = order
    return table, cols


def _correction(d: torch.Tensor, z: torch.Tensor, guide: torch.Tensor | None, spatial: float, depth_sigma: float,
                colour: float | None, reach: int) -> torch.Tensor:
    """``d`` ``[H,W]`` map, ``z`` ``[H,W]`` points → the ``[H,W]`` correction field (worked out at most at
    :data:`MAX_PIXELS` and stretched back bilinearly: the points' own values stay full resolution)."""
    h, w = d.shape
    ys, xs = torch.nonzero(z > 0, as_tuple=True)  # [K]
    if ys.numel() == 0:
        return torch.zeros_like(d)
    resid = z[ys, xs] - d[ys, xs]  # [K]
    pt_d = d[ys, xs]  # [K]
    pt_c = guide[:, ys, xs] if guide is not None else None  # [C,K]
    f = min(1.0, (MAX_PIXELS / (h * w)) ** 0.5)
    if f == 1.0:
        return _field(d, guide, ys.float(), xs.float(), resid, pt_d, pt_c, spatial, depth_sigma, colour, reach)
    size = (max(1, round(h * f)), max(1, round(w * f)))
    small_d = F.interpolate(d[None, None], size=size, mode="area")[0, 0]  # [h',w']
    small_g = F.interpolate(guide[None], size=size, mode="area")[0] if guide is not None else None  # [C,h',w']
    py = ((ys.float() + 0.5) * size[0] / h - 0.5).clamp(0, size[0] - 1)  # [K] the points in the small grid
    px = ((xs.float() + 0.5) * size[1] / w - 0.5).clamp(0, size[1] - 1)
    small = _field(small_d, small_g, py, px, resid, pt_d, pt_c, spatial, depth_sigma, colour, reach)  # [h',w']
    return F.interpolate(small[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def _field(d: torch.Tensor, guide: torch.Tensor | None, ys: torch.Tensor, xs: torch.Tensor, resid: torch.Tensor,
           pt_d: torch.Tensor, pt_c: torch.Tensor | None, spatial: float, depth_sigma: float, colour: float | None,
           reach: int) -> torch.Tensor:
    """The correction on the pixel grid of ``d`` ``[h,w]`` from K points at (``ys``, ``xs``) in that grid, with
    their residuals, depths and colours ``[C,K]``."""
    h, w = d.shape
    k_all = ys.numel()
    resid = torch.cat([resid, torch.zeros(1)])  # [K+1]; index K: "no point"
    spacing = (h * w / k_all) ** 0.5
    s_s = spatial * spacing
    pos = d[d > 0]
    s_d = depth_sigma * float(pos.median()) if pos.numel() else depth_sigma
    cell = max(spacing, 1.0)
    table, cols = _cells(ys, xs, cell, (h, w))
    rows = (table.shape[0] - 1) // cols
    offsets = torch.arange(-reach, reach + 1)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")  # [(2R+1)²] each, flattened below
    dy, dx = dy.reshape(-1), dx.reshape(-1)
    # features scaled by their spreads, so the weight's exponent is a squared distance: [y, x, depth, colour...]
    feats = [ys / s_s, xs / s_s, pt_d / s_d]
    pix = [None, None, d.reshape(-1) / s_d]
    if guide is not None:
        feats += list(pt_c / colour)
        pix += list(guide.reshape(guide.shape[0], -1) / colour)
    table_f = torch.cat([torch.stack(feats, 1), torch.zeros(1, len(feats))])  # [K+1,F]; row K: "no point"
    corr = torch.empty(h * w)
    step = max(1, _CHUNK // (dy.numel() * table.shape[1] * table_f.shape[1]))  # pixels per block
    for a in range(0, h * w, step):
        idx = torch.arange(a, min(a + step, h * w))  # [p]
        py, px = (idx // w).float(), (idx % w).float()
        cy = (py / cell).long().clamp(max=rows - 1)[:, None] + dy  # [p,N] the neighbouring cells
        cx = (px / cell).long().clamp(max=cols - 1)[:, None] + dx
        inside = (cy >= 0) & (cy < rows) & (cx >= 0) & (cx < cols)
        cid = torch.where(inside, cy * cols + cx, table.shape[0] - 1)  # [p,N]
        cand = table[cid].reshape(idx.numel(), -1)  # [p,N·M] point indices, −1 = none
        none = cand < 0
        cand = torch.where(none, k_all, cand)
        here = torch.stack([py / s_s, px / s_s] + [f[idx] for f in pix[2:]], 1)  # [p,F]
        logw = (here[:, None, :] - table_f[cand]).pow(2).sum(-1)  # [p,N·M]
        logw = logw.masked_fill(none, float("inf"))
        # normalised over the points in reach (shifted by the best, so none underflows): the most alike point
        # always counts; a pixel with no point in reach keeps the map (weights 0, correction 0)
        m = logw.min(1, keepdim=True).values  # [p,1]
        wgt = torch.exp(-0.5 * (logw - torch.where(torch.isfinite(m), m, 0.0)))  # [p,N·M]
        corr[idx] = (wgt * resid[cand]).sum(1) / wgt.sum(1).clamp_min(1e-30)
    return corr.reshape(h, w)
