"""Temporal fusion of per-frame depth with the frames: training-free, streaming, for any model's depth.

What it holds: :class:`TemporalFusion`, a recursive filter that takes frames and their per-frame depth maps one
at a time, and :func:`fuse_depth` / :func:`fuse_image_batch` that run it over a whole batch (the latter for
ComfyUI IMAGE batches, behind the ``MarigoldTemporalFusion`` node).

Which papers it follows: the optical-flow-guided recursive fusion that Lai et al. ("Learning Blind Video Temporal
Consistency", ECCV 2018) use as their training-free baseline and measure by the warping error: frame t's output is
a blend of its own per-frame result and the previous *output* warped along the optical flow, with the history
dropped where the forward and backward flows disagree (Sundaram, Brox, Keutzer 2010; :func:`.flow.consistent`:
occlusions, disocclusions, moving-object borders). For depth, whose per-frame maps also jump in scale and shift
(affine-invariant models), the current map is first fitted by one least-squares scale and shift to the warped
history, and the history's weight per pixel also falls with how far it disagrees after that fit (a Gaussian in the
residual over a robust spread of the frame's residuals): where the flow is wrong, or an object moved in a way the
flow missed, the frame's own prediction wins. So a moving object's depth moves with it (the flow carries it) or
is taken fresh (the checks drop the history): it never lags behind.

Per frame t with prediction D_t (optical flow by OpenCV's DIS, :mod:`.flow`, on exposure-normalised grey frames at
the depth maps' size)::

    W    = F_{t-1} warped into frame t along the backward flow        (the history)
    a, b = argmin Σ_ok (a·D_t + b − W)²                               (ok: forward–backward consistent)
    C    = a·D_t + b                                                   (the frame, in the history's affine frame)
    w    = strength · MAX_HISTORY · ok · exp(−½ (|C − W| / τ)²),  τ = AGREE · 1.4826 · median_ok |C − W|
    F_t  = w · W + (1 − w) · C

``strength`` 0 returns the input unchanged (exactly); 1 keeps up to :data:`MAX_HISTORY` of the history where it
agrees (an exponential window of about ten frames). The output lies in the first frame's affine frame.

Memory is flat in the clip's length: only the previous grey frame, the previous fused map and the last fit
(two floats) are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..optional import require
from .flow import consistent, dis_flow, warp

__all__ = ["DEFAULT_STRENGTH", "MAX_HISTORY", "TemporalFusion", "fuse_depth", "fuse_image_batch", "check_strength",
           "grey_frame", "iter_fused"]

DEFAULT_STRENGTH = 1.0
MAX_HISTORY = 0.9  # the history's weight where it agrees at strength 1: about ten frames of memory
AGREE = 3.0  # τ in robust standard deviations of the frame's residuals against the warped history
MIN_PIXELS = 0.05  # fewer consistent pixels than this share: fit on all pixels (a cut, a flash)


# video mode's default strength: 0, since on the instrument (bench/RESULTS.md, "Quality", issue #34) the fusion
# took the temporal error of Marigold's video mode down by a few per cent only, far from the bar
VIDEO_MODE_STRENGTH = 0.0


def fusion_default() -> float:
    """The strength video mode runs at when none is given: :data:`VIDEO_MODE_STRENGTH` where OpenCV is installed,
    else 0 (the fusion needs its optical flow; the ``flow`` extra brings it)."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return 0.0
    return VIDEO_MODE_STRENGTH


def check_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= float(strength) <= 1.0:
        raise InputError(f"temporal strength must be a number in 0..1 (0 = no fusion); got {strength!r}.")
    return float(strength)


def _grey(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[3,H,W]`` 0..1 → ``[h,w]`` grey at the depth maps' size, standardised (mean 0.5, std 0.2) so that an
    exposure or white-balance change between frames does not read as motion."""
    if frame.ndim != 3 or frame.shape[0] not in (1, 3):
        raise InputError(f"frame: expected [3,H,W] (0..1), got {tuple(frame.shape)}")
    f = frame.detach().float().cpu()
    if tuple(f.shape[-2:]) != size:
        f = F.interpolate(f[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]  # [C,h,w]
    g = (0.299 * f[0] + 0.587 * f[1] + 0.114 * f[2]) if f.shape[0] == 3 else f[0]  # [h,w]
    return ((g - g.mean()) / g.std().clamp_min(1e-6) * 0.2 + 0.5).clamp(0, 1)


def _fit(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float] | None:
    """Least-squares (a, b) with a·x + b ≈ y over 1-D tensors; None when degenerate."""
    x, y = x.double(), y.double()
    xm, ym = x.mean(), y.mean()
    var = ((x - xm) ** 2).mean()
    if x.numel() < 2 or var <= 1e-12:
        return None
    a = float(((x - xm) * (y - ym)).mean() / var)
    b = float(ym - a * xm)
    return (a, b) if math.isfinite(a) and math.isfinite(b) and a > 0 else None


def grey_frame(frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[3,H,W]`` 0..1 → the ``[1,h,w]`` grey copy :meth:`TemporalFusion.push` reads (a frame kept waiting costs
    h·w floats, not the full frame)."""
    return _grey(frame, size)[None]


class TemporalFusion:
    """Push frames in order (:meth:`push`); each returns that frame's fused depth. See the module docstring.

    ``strength`` in 0..1 (0: every map comes back unchanged); ``preset``: DIS's ("ultrafast", "fast", "medium")."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, *, preset: str = "medium") -> None:
        self.strength = check_strength(strength)
        if self.strength > 0:  # a missing OpenCV is one line naming the extra, before any frame is read
            require("cv2", "flow", "temporal fusion (optical flow)")
        self.preset = preset
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new clip, or a cut)."""
        self._grey: torch.Tensor | None = None  # [h,w] the previous frame
        self._fused: torch.Tensor | None = None  # [h,w] its fused depth
        self._fit: tuple[float, float] = (1.0, 0.0)  # the last frame's (a, b): the fallback of a degenerate fit
        self.last_weight: float = 0.0  # the mean history weight of the last frame (for inspection)

    def push(self, frame: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """``frame`` ``[3,H,W]`` 0..1 and its depth ``[h,w]`` or ``[1,h,w]`` (any model's, any affine frame) → the
        fused depth, same shape as ``depth`` (float32)."""
        if depth.ndim not in (2, 3) or (depth.ndim == 3 and depth.shape[0] != 1):
            raise InputError(f"depth: expected [h,w] or [1,h,w], got {tuple(depth.shape)}")
        if self.strength == 0.0:
            return depth
        d = depth.detach().float().cpu().reshape(depth.shape[-2:])  # [h,w]
        grey = _grey(frame, tuple(d.shape))  # [h,w]
        if self._fused is None or self._fused.shape != d.shape:
            fused = d.clone()
            self.last_weight = 0.0
        else:
            fused = self._blend(grey, d)
        self._grey, self._fused = grey, fused
        return fused.reshape(depth.shape)

    def _blend(self, grey: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        bwd = dis_flow(grey, self._grey, self.preset)  # [2,h,w] frame t → t−1
        fwd = dis_flow(self._grey, grey, self.preset)  # [2,h,w] frame t−1 → t
        ok = consistent(bwd, fwd) & torch.isfinite(d)  # [h,w] visible in both, flows agree
        hist, _ = warp(self._fused[None], bwd)  # [1,h,w] the history seen from frame t
        hist = hist[0]
        sel = ok if ok.float().mean() >= MIN_PIXELS else torch.isfinite(d)
        fit = _fit(d[sel], hist[sel])
        if fit is not None:  # refit without the gross outliers (a moving object the flow missed, an occlusion)
            r = (fit[0] * d + fit[1] - hist).abs()  # [h,w]
            keep = sel & (r <= 3.0 * 1.4826 * r[sel].median() + 1e-12)
            fit = _fit(d[keep], hist[keep]) or fit
        a, b = fit or self._fit
        self._fit = (a, b)
        cur = a * d + b  # [h,w] the frame in the history's affine frame
        r = (cur - hist).abs()  # [h,w]
        spread = float(cur.quantile(0.98) - cur.quantile(0.02)) if cur.numel() > 1 else 0.0
        tau = max(AGREE * 1.4826 * float(r[ok].median()) if ok.any() else 0.0, 1e-4 * spread, 1e-12)
        w = self.strength * MAX_HISTORY * ok.float() * torch.exp(-0.5 * (r / tau) ** 2)  # [h,w]
        self.last_weight = float(w.mean())
        return w * hist + (1.0 - w) * cur


def fuse_depth(frames: torch.Tensor | Iterable[torch.Tensor], depths: torch.Tensor | Iterable[torch.Tensor],
               strength: float = DEFAULT_STRENGTH, **kw) -> torch.Tensor:
    """A whole clip: ``frames`` ``[T,3,H,W]`` 0..1 and ``depths`` ``[T,h,w]`` or ``[T,1,h,w]`` → fused depths,
    same shape (float32; the input itself at strength 0)."""
    if isinstance(depths, torch.Tensor) and isinstance(frames, torch.Tensor):
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise InputError(f"frames: expected [T,3,H,W], got {tuple(frames.shape)}")
        if depths.ndim not in (3, 4) or depths.shape[0] != frames.shape[0]:
            raise InputError(f"depths: expected [T,h,w] or [T,1,h,w] with T={frames.shape[0]}, got "
                             f"{tuple(depths.shape)}")
        if check_strength(strength) == 0.0:
            return depths
    out = list(iter_fused(frames, depths, strength, **kw))
    return torch.stack(out)


def iter_fused(frames: Iterable[torch.Tensor], depths: Iterable[torch.Tensor], strength: float = DEFAULT_STRENGTH,
               **kw) -> Iterator[torch.Tensor]:
    """Stream: pairs (frame ``[3,H,W]``, depth ``[h,w]``/``[1,h,w]``) → fused depths, one at a time."""
    fusion = TemporalFusion(strength, **kw)
    for frame, depth in zip(frames, depths, strict=True):
        yield fusion.push(frame, depth)


def fuse_image_batch(frames: torch.Tensor, depth: torch.Tensor, strength: float = DEFAULT_STRENGTH) -> torch.Tensor:
    """ComfyUI IMAGE batches: ``frames`` ``[T,H,W,3]`` and ``depth`` ``[T,h,w,C]`` (any model's per-frame depth or
    disparity, as grey images) → fused depth ``[T,h,w,3]`` in 0..1, mapped once for the whole batch to the input's
    own range (one affine map for the clip, so the temporal consistency is kept). Strength 0: the input."""
    strength = check_strength(strength)
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise InputError(f"frames: expected IMAGE [T,H,W,3], got {tuple(frames.shape)}")
    if depth.ndim != 4 or depth.shape[0] != frames.shape[0]:
        raise InputError(f"depth: expected IMAGE [T,h,w,C] with as many frames as `frames` ({frames.shape[0]}), "
                         f"got {tuple(depth.shape)}")
    if strength == 0.0:
        return depth
    d = depth[..., :3].float().mean(-1)  # [T,h,w] a grey depth image's value
    fused = fuse_depth(frames[..., :3].permute(0, 3, 1, 2).float(), d, strength)  # [T,h,w]
    lo, hi = float(d.min()), float(d.max())
    flo, fhi = float(fused.min()), float(fused.max())
    if fhi > flo:  # the fused clip spans the input's range: one map for all frames
        fused = (fused - flo) / (fhi - flo) * (hi - lo) + lo
    return fused.clamp(0, 1)[..., None].expand(-1, -1, -1, 3).contiguous()  # [T,h,w,3]
