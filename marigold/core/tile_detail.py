"""The tiled merge that takes the structure from the global pass and only the detail from the tiles.

A tile sees a narrow field of view: it finds the edges and the small things the global pass is too coarse to
resolve, but its large-scale shape drifts (a wall or a floor alone carries no depth cue). So, as Boosting
Monocular Depth (Miangoleh et al., CVPR 2021) and PatchFusion (Li et al., CVPR 2024) do, the frequencies are
split at the global pass's own resolution:

    merged = G + HP(Δ),   Δ = Σ_k w_k c_k (A_k − G) / Σ_k w_k,   HP(x) = x − blur_σ(x)

with ``G`` the global pass upsampled to the working canvas, ``A_k`` tile k (depth-like maps: fitted to ``G`` by
one scale and shift; then less its own coarse departure from the pass, ``DRIFT_SIGMA``, so that overlapping
tiles agree at coarse scales before they are blended), ``w_k`` the feathered blend weights (raised-cosine) and
``c_k`` the tile's confidence (below). ``blur_σ`` is a Gaussian of ``σ = DETAIL_SIGMA`` global pixels: whatever a
tile says about scales coarser than that is dropped, so its drift cannot reach the result, and the global pass
keeps its own answer there. Where every tile is distrusted (``c = 0``) the merge is the global pass itself. The
same equals ``blur_σ(G) + A − blur_σ(A)`` (structure from the pass, detail from the tile) where one confident
tile covers a pixel, but it is blurred once on the canvas, after the blend, so no tile border is ever low-passed
on its own (a blur at a tile's edge would see padding and leave a step there).

Confidence: the tile and the pass are compared at the pass's resolution, both blurred by ``COMPARE_SIGMA``
global pixels and their difference by ``CONFIDENCE_SIGMA`` more (coarser than the pass's own edge blur, so a tile
is not distrusted for being sharper than the pass at an edge): ``r`` = |aligned tile − pass| there. ``c = 1 / (1 + (r/τ)⁴)``, flat near 1 for typical
residuals and falling fast beyond ``τ = max(CONFIDENCE_K × median r over the image's tiles, floor)``: a tile
whose shape departs from the pass far more than the others' do (a hallucinated object, a wrong layer) adds no
detail there.

How each modality splits (its entry's ``tile_split``, :mod:`marigold.core.modality`): "affine" (depth,
disparity): each tile fitted by one scale and one shift (its blurred map onto the pass's at the pass's
resolution, the slope by ``FIT``; a flat tile or one that comes out inverted is replaced by the pass), the result
renormalised to 0..1; "unit" (normals): no fit, per channel, renormalised to unit length; "plain" (intrinsics): no
fit, per channel, clipped to each target's value range.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from . import image as img
from .modality import Modality

__all__ = ["DetailMerge", "gaussian_blur", "DETAIL_SIGMA", "DRIFT_SIGMA", "COMPARE_SIGMA", "CONFIDENCE_SIGMA",
           "CONFIDENCE_K", "FIT"]

DETAIL_SIGMA = 2.0  # the frequency split, in global-pass pixels: coarser than this comes from the pass
DRIFT_SIGMA = 1.0  # each tile's coarse departure from the pass, blurred this much more (global px), is removed
# first; 0: not (the canvas high-pass alone then drops the drift, less well: tiles' offsets differ in the overlaps)
COMPARE_SIGMA = 1.5  # the tile-vs-pass comparison's blur, in global-pass pixels
# the confidence's comparison is blurred this much more (global px): at COMPARE_SIGMA alone, 3-px poles that the pass
# resolves only faintly read as disagreement and lost a quarter of their step with exact tiles (the oracle of
# tests/test_tile_detail.py: 0.75 of the truth's; 0.98 at 2.5, the drift and a hallucinating tile handled as well)
CONFIDENCE_SIGMA = 2.5
CONFIDENCE_K = 3.0  # τ = this × the median residual; 0 turns the confidence off (every tile trusted)
TAU_FLOOR = {"affine": 0.01, "unit": 0.02, "plain": 0.01}  # τ never below this (0..1 depth; unit vectors; 0..1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of ``[N,C,H,W]`` with standard deviation ``sigma`` px, mirrored at the borders
    (replicated where a side is shorter than the kernel's radius)."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    i = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (i / sigma) ** 2)
    k = k / k.sum()  # [2r+1]
    n, c, h, w = x.shape
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(x.float(), (r, r, 0, 0), mode=mode)  # [N,C,H,W+2r]
    y = F.conv2d(y.reshape(n * c, 1, h, w + 2 * r), k.view(1, 1, 1, -1))  # [N·C,1,H,W]
    y = F.pad(y, (0, 0, r, r), mode=mode)  # [N·C,1,H+2r,W]
    y = F.conv2d(y, k.view(1, 1, -1, 1))  # [N·C,1,H,W]
    return y.reshape(n, c, h, w)


# How a tile's scale is fitted to the pass. A tile's own drift is noise in the regressor, which biases least squares
# of pass-on-tile ("ols") towards 0, shrinking the detail (to 0.35 of the true step at the oracle's strongest
# drift, tests/test_tile_detail.py); the pass's errors do the same to tile-on-pass inverted ("inverse"). The
# reduced-major-axis slope ("rma", std ratio with the correlation's sign) sits between the two.
FIT = "rma"


def _fit(t: torch.Tensor, g: torch.Tensor) -> tuple[float, float, bool]:
    """Scale and shift taking ``t`` onto ``g`` (both ``[1,1,h,w]``; the slope by ``FIT``) → (scale, shift,
    rejected). A flat ``t`` (no relief: its scale is undetermined) or a negative scale (an inverted tile) is
    rejected."""
    t, g = t.double().flatten(), g.double().flatten()
    hi, lo = float(t.max()), float(t.min())
    if hi - lo <= 1e-6 * max(abs(hi), abs(lo), 1.0):
        return 1.0, 0.0, True
    tc, gc = t - t.mean(), g - g.mean()
    cov, vt, vg = float((tc * gc).sum()), float((tc * tc).sum()), float((gc * gc).sum())
    if FIT == "ols":
        s = cov / vt
    elif FIT == "inverse":
        s = vg / cov if cov > 0 else -1.0
    else:
        s = math.copysign(math.sqrt(vg / vt), cov)
    if s <= 0:
        return 1.0, 0.0, True
    return s, float(g.mean() - s * t.mean()), False


def _lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``gaussian_blur(x, sigma)`` of a canvas ``[1,C,H,W]``, computed on a grid ``sigma / 2`` times coarser when
    that is 2 or more (antialiased down, blurred, bilinear up): the same low-pass to within a few percent of its
    width, with temporaries a fraction of the canvas (a 4096×3072 map: 50 MB each)."""
    d = int(sigma // 2)
    if d < 2:
        return gaussian_blur(x, sigma)
    h, w = x.shape[-2:]
    small = img.resize(x, (max(1, -(-h // d)), max(1, -(-w // d))), "bilinear", antialias=True)
    return img.resize(gaussian_blur(small, sigma / d), (h, w), "bilinear", antialias=False)


class DetailMerge:
    """Collects the tiles of one image (:meth:`add`), then merges them (:meth:`finish`); see the module
    docstring. ``glob``: the global pass ``[1,C,PH,PW]``; ``plan``: a :class:`marigold.core.tiling.TilePlan`;
    ``weight(k)``: tile k's blend weight ``[th,tw]`` (the weights of all tiles sum to one). The module's
    settings (``DETAIL_SIGMA`` ...) are read when it is made (bench/quality_tiles.py varies them)."""

    def __init__(self, glob: torch.Tensor, plan, modality: Modality, uncertainty: bool,
                 weight: Callable[[int], torch.Tensor]):
        self.plan, self.modality, self.uncertainty, self.weight = plan, modality, uncertainty, weight
        self.split = modality.tile_split_kind
        self.sigma, self.k, self.drift_sigma = DETAIL_SIGMA, CONFIDENCE_K, DRIFT_SIGMA
        self.g = img.resize(glob.float(), plan.size, "bilinear", antialias=False)  # [1,C,WH,WW]
        # working pixels per global pixel (the two axes agree to within rounding)
        self.f = max(plan.size[0] / glob.shape[-2], plan.size[1] / glob.shape[-1], 1.0)
        self.boxes = list(plan.boxes())
        # per tile: (prediction [1,C,th,tw], uncertainty | None, residual [1,1,sh,sw], drift [1,C,sh,sw] | None)
        self.tiles: list = []
        self.scales: list[float] = []
        self.shifts: list[float] = []
        self.rejected: list[bool] = []

    def _small(self, x: torch.Tensor) -> torch.Tensor:
        """A crop ``[1,C,th,tw]`` → at the global pass's resolution, blurred for the comparison ``[1,C,sh,sw]``."""
        th, tw = x.shape[-2:]
        size = (max(2, round(th / self.f)), max(2, round(tw / self.f)))
        return gaussian_blur(img.resize(x, size, "bilinear", antialias=True), COMPARE_SIGMA)

    def add(self, k: int, p: torch.Tensor, u: torch.Tensor | None) -> None:
        """Tile ``k`` (in :meth:`TilePlan.boxes` order): prediction ``p [1,C,th,tw]``, uncertainty or None."""
        y0, x0, y1, x1 = self.boxes[k]
        ts, gs = self._small(p.float()), self._small(self.g[..., y0:y1, x0:x1])  # [1,C,sh,sw] each
        scale, shift, rejected = 1.0, 0.0, False
        if self.split == "affine":
            scale, shift, rejected = _fit(ts, gs)
        departure = ts * scale + shift - gs  # [1,C,sh,sw]
        # [1,1,sh,sw] the structure's disagreement, coarser still: a thin thing the pass resolves only faintly is not
        # a disagreement
        r = gaussian_blur(departure, CONFIDENCE_SIGMA).norm(dim=1, keepdim=True)
        drift = None
        if self.drift_sigma > 0:  # [1,C,sh,sw] the tile's own low-frequency departure from the pass
            drift = gaussian_blur(departure, self.drift_sigma)
        self.tiles.append((p.float(), u, r, drift))
        self.scales.append(scale)
        self.shifts.append(shift)
        self.rejected.append(rejected)

    def finish(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ (merged ``[1,C,WH,WW]``, uncertainty or None, scale [T], shift [T], rejected [T])."""
        plan = self.plan
        kept = [t[2].flatten() for t, bad in zip(self.tiles, self.rejected) if not bad]
        median = float(torch.cat(kept).median()) if kept else 0.0
        span = float(self.g.max() - self.g.min()) if self.split == "affine" else 1.0
        tau = max(self.k * median, TAU_FLOOR[self.split] * max(span, 1e-12))
        delta = torch.zeros_like(self.g)  # [1,C,WH,WW] Σ w·c·(A − G)
        wsum = torch.zeros(1, 1, *plan.size)  # [1,1,WH,WW] Σ w
        uacc = None
        for k, (y0, x0, y1, x1) in enumerate(self.boxes):
            p, u, r, drift = self.tiles[k]
            scale, shift = self.scales[k], self.shifts[k]
            self.tiles[k] = None  # freed as soon as it is added
            w = self.weight(k)  # [th,tw]
            wsum[..., y0:y1, x0:x1] += w
            if self.uncertainty and u is not None and not self.rejected[k]:
                if uacc is None:
                    uacc = torch.zeros(1, u.shape[1], *plan.size)  # [1,C',WH,WW]
                uacc[..., y0:y1, x0:x1] += w * u.float() * abs(scale)
            if self.rejected[k]:  # the pass stands in: no detail from this tile
                continue
            c = torch.ones_like(r) if self.k <= 0 else 1.0 / (1.0 + (r / tau) ** 4)  # [1,1,sh,sw]
            c = img.resize(c, (y1 - y0, x1 - x0), "bilinear", antialias=False)  # [1,1,th,tw]
            a = p * scale + shift
            if drift is not None:
                a = a - img.resize(drift, (y1 - y0, x1 - x0), "bilinear", antialias=False)
            delta[..., y0:y1, x0:x1] += w * c * (a - self.g[..., y0:y1, x0:x1])
        delta.div_(wsum)
        unc = uacc.div_(wsum) if uacc is not None else None
        del wsum
        out = delta.sub_(_lowpass(delta, self.sigma * self.f)).add_(self.g)  # [1,C,WH,WW] in place: G + HP(Δ)
        self.g = None
        if self.split == "affine":
            lo, hi = out.min(), out.max()
            if float(hi - lo) > 1e-6:  # back to Marigold's 0..1; a constant map stays what the global pass said
                out.sub_(lo).div_(hi - lo)
                unc = unc / (hi - lo) if unc is not None else None
        elif self.split == "unit":
            out = self.modality.renormalize(out)
        else:
            c0 = 0
            for t in self.modality.targets:  # the detail may overshoot a target's range at its edges
                out[:, c0:c0 + t.channels].clamp_(*t.value_range)
                c0 += t.channels
        return (out, unc, torch.tensor(self.scales), torch.tensor(self.shifts),
                torch.tensor(self.rejected, dtype=torch.bool))
