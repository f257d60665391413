"""Temporal fusion of per-frame depth with the frames: training-free, streaming, for any model's depth.

What it holds: :class:`TemporalFusion`, a recursive filter that takes frames and their per-frame depth maps one
at a time, and :func:`fuse_depth` / :func:`fuse_image_batch` that run it over a whole batch (the latter for
ComfyUI IMAGE batches, behind the ``MarigoldTemporalFusion`` node).

Which papers it follows: the optical-flow-guided recursive fusion that Lai et al. ("Learning Blind Video Temporal
Consistency", ECCV 2018) use as their training-free baseline: frame t's output is a blend of its own per-frame
result and the previous *output* carried into frame t, with the history's weight per pixel falling with how far
the two disagree (a Gaussian in the residual over a robust spread of the frame's residuals): where the motion is
wrong, or an object moved in a way the motion missed, the frame's own prediction wins, so a moving object's depth
is taken fresh and never lags behind.

Two methods (``method``):

``"transport"`` (the default): the history is carried by one global (affine) camera motion per frame pair
(:func:`.flow.global_flow`) and its *depth values* are carried too: under a moving camera a surface point's depth
changes between frames, and for a rigid motion that change is, in any affine frame of depth, ``D_t(p) =
L(p)·D_{t−1}(q) + M(p)`` with ``L`` and ``M`` linear in the pixel position (6 numbers). Per frame t with prediction
D_t::

    W    = F_{t−1} warped into frame t by the global motion             (the history)
    θ_t  = robust least-squares fit of D_t ≈ L_θ·W + M_θ                  (6 parameters, on box-filtered maps)
    θ̄_t  = β·θ̄_{t−1} + (1 − β)·θ_t,  β = TRANSPORT_SMOOTHING, θ̄_0 = no motion
                                                    (the camera moves smoothly; flicker does not)
    H    = L_θ̄·W + M_θ̄                                                    (the history in frame t's depth)
    w    = strength · MAX_HISTORY · inside · exp(−½ (|D_t − H| / τ)²),  τ = AGREE · 1.4826 · median |D_t − H|
    F_t  = w · H + (1 − w) · D_t

The running transport starts at "no motion", so on a clip that starts mid-motion the history trails the camera's
depth change for about ten frames (1/(1 − β)); seeding it with the first fit instead (a raw frame as the
regressor) measured worse on the bench. The output follows the frames' own affine frame (no per-frame scale and shift is fitted): a model whose per-frame
maps jump in scale and shift needs them aligned first (video mode's :mod:`.frame_align`, or ``method="dense"``).

Why it is built so (issue #34; measured on bench.quality's video clips, small model, seed 0, docs/lab/
2026-12-07-video-fusion.md): the dense per-pixel DIS flow of the first method is worse than no flow on those
weakly textured, flickering frames, and its forward–backward check drops half the pixels, so the history's weight
averaged 0.42 of 0.9 under flicker; and a warp of depth *values* ignores the depth change under camera motion,
which the first method's per-frame scale-and-shift fit absorbs as if it were flicker (the output lags the camera;
with the true flow, clip AbsRel rose 6–10 %). The smoothed transport ``θ̄`` tells the two apart: what jumps from
one frame to the next is flicker, what persists is the camera.

``"dense"`` (the first method, kept for comparison): DIS's per-pixel flow with the forward–backward check
(Sundaram, Brox, Keutzer 2010; :func:`.flow.consistent`), and the frame fitted by one least-squares scale and
shift to the warped history (the output lies in the first frame's affine frame).

``strength`` 0 returns the input unchanged (exactly); 1 keeps up to :data:`MAX_HISTORY` of the history where it
agrees (an exponential window of about ten frames).

Memory is flat in the clip's length: only the previous grey frame, the previous fused map and a few floats (the
last fit, the smoothed transport) are kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..optional import require
from .flow import consistent, dis_flow, global_flow, warp

__all__ = ["DEFAULT_STRENGTH", "MAX_HISTORY", "VIDEO_MODE_STRENGTH", "TemporalFusion", "available", "fusion_default", "fuse_depth", "fuse_image_batch", "check_strength",
           "grey_frame", "iter_fused"]

DEFAULT_STRENGTH = 1.0
METHODS = ("transport", "dense")
MAX_HISTORY = 0.9  # the history's weight where it agrees at strength 1: about ten frames of memory
AGREE = {"transport": 5.0, "dense": 3.0}  # τ in robust standard deviations of the residuals against the history
FIT_BLUR = 5  # px: the box filter of the maps the transport is fitted on
IDENTITY = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the transport of a still camera
MAX_DEPTH_CHANGE = 1.25  # the transport's L may scale depth by at most this (or its inverse) between two frames
TRANSPORT_SMOOTHING = 0.9  # β of the transport's running mean: the camera's motion, averaged over ~10 frames
MIN_PIXELS = 0.05  # fewer consistent pixels than this share: fit on all pixels (a cut, a flash)


# video mode's default strength: on. The "transport" method measured TE 0.42x of frames one seed on clips with all
# four flicker kinds, 0.51x with a ball rolling across (0.74x on the ball's pixels: no lag), 0.73x on plain clips,
# AbsRel <= 1.01x, 3 seeds (docs/lab/2026-12-07-video-fusion.md); sensor noise alone stays at 0.66x
VIDEO_MODE_STRENGTH = 1.0


def available() -> bool:
    """Whether OpenCV (the fusion's optical flow; the ``flow`` extra) can be imported. It is not a requirement of
    the package: ComfyUI environments break when two opencv packages compete."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def fusion_default() -> float:
    """The strength video mode runs at when none is given: :data:`VIDEO_MODE_STRENGTH` where OpenCV is installed,
    else 0 (the fusion needs its optical flow; the ``flow`` extra brings it)."""
    return VIDEO_MODE_STRENGTH if available() else 0.0


MISSING_NOTE = ("the temporal fusion (video mode's default for Marigold checkpoints) needs OpenCV: pip install "
                "'marigold-suite[flow]' (or opencv-python-headless); running with the per-frame alignment only.")


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

    ``strength`` in 0..1 (0: every map comes back unchanged); ``method``: "transport" or "dense" (module
    docstring); ``preset``: DIS's ("ultrafast", "fast", "medium")."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, *, method: str = "transport", preset: str = "medium") -> None:
        self.strength = check_strength(strength)
        if method not in METHODS:
            raise InputError(f"temporal fusion method must be one of {', '.join(METHODS)}; got {method!r}.")
        if self.strength > 0:  # a missing OpenCV is one line naming the extra, before any frame is read
            require("cv2", "flow", "temporal fusion (optical flow)")
        self.method, self.preset = method, preset
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new clip, or a cut)."""
        self._grey: torch.Tensor | None = None  # [h,w] the previous frame
        self._fused: torch.Tensor | None = None  # [h,w] its fused depth
        self._fit: tuple[float, float] = (1.0, 0.0)  # the last frame's (a, b): the fallback of a degenerate fit
        self._theta: tuple[float, ...] | None = None  # "transport": the running mean θ̄ (6 floats)
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
            fused = self._transport(grey, d) if self.method == "transport" else self._blend(grey, d)
        self._grey, self._fused = grey, fused
        return fused.reshape(depth.shape)

    def _transport(self, grey: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        bwd = global_flow(grey, self._grey, self.preset)  # [2,h,w] frame t → t−1, one affine motion
        hist, inside = warp(self._fused[None], bwd)  # [1,h,w], [h,w]
        hist = hist[0]
        inside = inside & torch.isfinite(d)
        if inside.float().mean() < MIN_PIXELS:  # the motion left (almost) nothing of the history: start again
            self._theta, self.last_weight = None, 0.0
            return d.clone()
        # the smooth history is the regressor and the noisy frame the target: the other way round, the frame's
        # noise would pull the fitted L towards 0 (regression dilution) and the history would trail the camera
        # and both are fitted box-filtered (FIT_BLUR px): the transport is smooth, the noise is not, and noise in the
        # regressor biases the fit too (the first history is a raw frame)
        cols = _transport_columns(hist)  # [6,h,w]
        bd = _box(d)  # [h,w]
        theta = _fit_transport(_transport_columns(_box(hist)), bd, inside & torch.isfinite(bd))
        if theta is None:  # degenerate (a blank frame): keep the running mean, or start again
            if self._theta is None:
                self.last_weight = 0.0
                return d.clone()
            theta = self._theta
        beta = TRANSPORT_SMOOTHING
        # the running mean starts at "no motion": seeded by the first fit instead, a bad first fit steered the
        # history for ten frames (clip AbsRel 1.44× on one white-balance clip)
        prev = self._theta if self._theta is not None else IDENTITY
        mean = tuple(beta * m + (1 - beta) * x for m, x in zip(prev, theta))
        self._theta = mean
        # the history carried into frame t's depth; the frame itself stays as it is: removing its own jump from the
        # running mean too (θ_t − θ̄_t) measured worse (a first version: TE 0.69× instead of 0.52× on "+ all four",
        # seed 0, AbsRel 1.07×)
        hist = (cols * torch.tensor(mean, dtype=cols.dtype)[:, None, None]).sum(0)  # [h,w] L_θ̄·W + M_θ̄
        cur = d
        r = (cur - hist).abs()  # [h,w]
        spread = float(cur.quantile(0.98) - cur.quantile(0.02)) if cur.numel() > 1 else 0.0
        tau = max(AGREE["transport"] * 1.4826 * float(r[inside].median()), 1e-4 * spread, 1e-12)
        wgt = self.strength * MAX_HISTORY * inside.float() * torch.exp(-0.5 * (r / tau) ** 2)  # [h,w]
        self.last_weight = float(wgt.mean())
        return wgt * hist + (1.0 - wgt) * cur

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
        tau = max(AGREE["dense"] * 1.4826 * float(r[ok].median()) if ok.any() else 0.0, 1e-4 * spread, 1e-12)
        w = self.strength * MAX_HISTORY * ok.float() * torch.exp(-0.5 * (r / tau) ** 2)  # [h,w]
        self.last_weight = float(w.mean())
        return w * hist + (1.0 - w) * cur


def _box(z: torch.Tensor) -> torch.Tensor:
    """``[h,w]`` → its FIT_BLUR × FIT_BLUR box mean ``[h,w]`` (the border averages what it has)."""
    return F.avg_pool2d(z[None, None], FIT_BLUR, 1, FIT_BLUR // 2, count_include_pad=False)[0, 0]


def _transport_columns(d: torch.Tensor) -> torch.Tensor:
    """``[h,w]`` depth → the 6 columns ``[D, D·u, D·v, 1, u, v]`` ``[6,h,w]`` (u, v in −1..1) of the transport."""
    h, w = d.shape
    v, u = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")  # [h,w]
    return torch.stack([d, d * u, d * v, torch.ones_like(d), u, v])


def _transport_maps(theta, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """θ (6 floats) → ``L``, ``M`` ``[h,w]``: the transport ``L·D + M`` in the columns' order."""
    v, u = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    return theta[0] + theta[1] * u + theta[2] * v, theta[3] + theta[4] * u + theta[5] * v


def _fit_transport(cols: torch.Tensor, y: torch.Tensor, sel: torch.Tensor) -> tuple[float, ...] | None:
    """Least squares ``y ≈ Σ θ_k·cols[k]`` over ``sel``, refitted without the gross outliers (a moving object, an
    occlusion). A fit whose ``L`` leaves [1/MAX_DEPTH_CHANGE, MAX_DEPTH_CHANGE] somewhere in the frame is ill-posed
    (a map of a few flat levels makes the six columns nearly collinear): then the two columns ``D, 1`` alone (one
    scale and shift), and None when that is degenerate too."""
    h, w = y.shape

    def solve(m: torch.Tensor, k: tuple[int, ...]):
        if int(m.sum()) < 12:
            return None
        x = cols[list(k)][:, m].T.double()  # [P,len(k)]
        part = torch.linalg.lstsq(x, y[m].double()[:, None]).solution[:, 0]
        sol = torch.zeros(6, dtype=torch.float64)
        sol[list(k)] = part
        L = _transport_maps(sol.tolist(), 2, 2)[0]  # [2,2]: L at the frame's corners (it is linear)
        ok = bool(torch.isfinite(sol).all()) and float(L.min()) >= 1 / MAX_DEPTH_CHANGE \
            and float(L.max()) <= MAX_DEPTH_CHANGE
        return sol if ok else None

    for k in ((0, 1, 2, 3, 4, 5), (0, 3)):
        sol = solve(sel, k)
        if sol is None:
            continue
        r = ((cols * sol.float()[:, None, None]).sum(0) - y).abs()  # [h,w]
        refit = solve(sel & (r <= 3.0 * 1.4826 * r[sel].median() + 1e-12), k)
        return tuple(float(x) for x in (sol if refit is None else refit))
    return None


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
    disparity, as grey images; fused by the "dense" method) → fused depth ``[T,h,w,3]`` in 0..1, mapped once for the whole batch to the input's
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
    # "dense": other models' maps (each normalised on its own) jump in scale and shift from frame to frame, which
    # only the dense method's per-frame fit removes; "transport" expects frames already in one affine frame
    fused = fuse_depth(frames[..., :3].permute(0, 3, 1, 2).float(), d, strength, method="dense")  # [T,h,w]
    lo, hi = float(d.min()), float(d.max())
    flo, fhi = float(fused.min()), float(fused.max())
    if fhi > flo:  # the fused clip spans the input's range: one map for all frames
        fused = (fused - flo) / (fhi - flo) * (hi - lo) + lo
    return fused.clamp(0, 1)[..., None].expand(-1, -1, -1, 3).contiguous()  # [T,h,w,3]
