"""Ensembling of the E predictions Marigold makes per image: affine-invariant depth alignment, normals, intrinsics.

Depth members are affine-invariant, so before they can be averaged each gets a scale ``s_i`` and shift ``t_i``
minimising the objective of the Marigold paper (Ke et al. 2024, Sec. 3.3), the one diffusers' ``ensemble_depth``
minimises too::

    sum_{i<j} RMS(a_i - a_j)  +  λ (|min m| + |1 - max m|),     a_i = s_i d_i + t_i,   m = median_i a_i

diffusers evaluates it with a Python loop over the E(E-1)/2 pairs and lets scipy's BFGS take finite-difference
gradients: 2E+1 full evaluations per gradient, on the CPU. Here the pair term is a quadratic form in (s, t)
over the E×E second moments of the members (one matmul over the pixels, done once), the regulariser is one
vectorised median, gradients are exact (autograd), and the per-pixel work stays on the members' device (the
few float64 numbers live on the CPU: no float64 on a GPU or MPS device, see tests/test_no_float64_on_device.py).
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from ..errors import InputError

REDUCTIONS_DEPTH = ("median", "mean")
REDUCTIONS_NORMALS = ("closest", "mean")
ITERATIONS_PER_STEP = 5


MEDIAN_CHUNK = 1 << 15  # pixels per chunk of the selection network: E rows of it stay in the L2 cache


@functools.lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs (a, b), a < b, that put the lower median of n values at index (n-1)//2.

    Batcher's odd-even merge sort on the next power of two, without the comparators that touch padding (pads
    are +inf and stay at the end, so those comparators never swap), then without the comparators the median
    position does not depend on. n = 10: 27 pairs.
    """
    size = 1 << max(0, (n - 1).bit_length())
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    need, kept = {(n - 1) // 2}, []
    for a, b in reversed(pairs):
        if a in need or b in need:
            kept.append((a, b))
            need |= {a, b}
    return tuple(reversed(kept))


def _select(rows: list[torch.Tensor], net: tuple[tuple[int, int], ...], k: int) -> torch.Tensor:
    rows = list(rows)
    for a, b in net:
        rows[a], rows[b] = torch.minimum(rows[a], rows[b]), torch.maximum(rows[a], rows[b])
    return rows[k]


def median_rows(x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                deviation: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``median(x·scale + shift, dim=0)`` (the lower median: the element torch.median picks), and with
    ``deviation`` the median absolute deviation from it; no autograd.

    A selection network of elementwise min/max over the E rows, a cache-sized chunk of pixels at a time, the
    per-row scale and shift applied to the chunk only (the aligned members are never written out whole): on
    the CPU 10–16× faster than ``torch.median`` over a short first dimension, which sorts every column.
    """
    e = x.shape[0]
    flat = x.reshape(e, -1)  # [E,P]
    net, k = median_network(e), (e - 1) // 2
    med = torch.empty(flat.shape[1], dtype=x.dtype, device=x.device)  # [P]
    dev = torch.empty_like(med) if deviation else None
    sc = scale.to(x.dtype).to(x.device).view(e, 1) if scale is not None else None  # [E,1] cast where it is
    sh = shift.to(x.dtype).to(x.device).view(e, 1) if shift is not None else None
    step = MEDIAN_CHUNK if x.device.type == "cpu" else flat.shape[1]  # a GPU does it in one pass
    for s in range(0, flat.shape[1], step):
        chunk = flat[:, s:s + step]  # [E,c]
        if sc is not None:
            chunk = chunk * sc
        if sh is not None:
            chunk = chunk + sh
        m = _select(chunk.unbind(0), net, k)  # [c]
        med[s:s + step] = m
        if dev is not None:
            dev[s:s + step] = _select((chunk - m).abs_().unbind(0), net, k)
    shape = x.shape[1:]
    return med.view(shape), (dev.view(shape) if dev is not None else None)


def _reduce(x: torch.Tensor, reduction: str, uncertainty: bool, scale: torch.Tensor | None = None,
            shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[E,...] → ([1,...], [1,...] | None): median with median absolute deviation, or mean with std, of
    ``x·scale + shift`` (per member, [E])."""
    if reduction == "mean":
        if scale is not None:
            view = (-1, *([1] * (x.dim() - 1)))
            x = x * scale.to(x.dtype).to(x.device).view(view) + shift.to(x.dtype).to(x.device).view(view)
        pred = x.mean(dim=0, keepdim=True)
        return pred, (x.std(dim=0, keepdim=True) if uncertainty else None)
    pred, dev = median_rows(x, scale, shift, deviation=uncertainty)
    return pred[None], (dev[None] if dev is not None else None)


def _downsample(depth: torch.Tensor, max_res: int | None) -> torch.Tensor:
    """The alignment is solved at most at ``max_res`` (nearest-exact, as diffusers does)."""
    h, w = depth.shape[-2:]
    if max_res is None or max(h, w) <= max_res:
        return depth
    m = max(h, w)
    return F.interpolate(depth, size=(h * max_res // m, w * max_res // m), mode="nearest-exact")


class AlignmentObjective:
    """The alignment objective for E members ``[E,P]``, cheap to evaluate many times.

    ``pairs(s, t)`` costs O(E²) (second moments precomputed in float64). The regulariser needs only the min and
    max over pixels of the reduced prediction ``m = median_i(s_i d_i + t_i)``; a median over all P pixels per
    evaluation would dominate the solve, so :meth:`extremes` evaluates it on a few pixels only, exactly:

    At a centre (s⁰, t⁰) the full prediction m⁰ is computed once (a median selection network, no autograd).
    Moving to (s, t) changes every pixel's median (or mean) by at most
    ``B = max_i |s_i - s⁰_i|·max|d_i| + |t_i - t⁰_i|``. If U is the smallest new value among the n pixels of
    lowest m⁰ (found by a partial sort), no pixel with ``m⁰ > U + B`` can be the new minimum: once the window
    holds a pixel beyond U + B, the window's minimum is exact (its gradient comes from re-evaluating that one
    pixel with autograd); the maximum likewise from the other end. When the window would grow past 6 % of
    the pixels, the point becomes the new centre (one full evaluation).
    """

    PREFIX = 0.01  # share of pixels tried first at each end
    RECENTRE = 0.06  # a window larger than this share of pixels triggers a full evaluation and a new centre

    def __init__(self, members: torch.Tensor, regularizer_strength: float, reduction: str):
        d = members.reshape(members.shape[0], -1).float()  # [E,P]
        self.d = d
        self.reg = float(regularizer_strength)
        self.reduction = reduction
        # Per-pixel work stays on the members' device in float32; the 2E unknowns and the E×E moments are float64
        # on the CPU (the pair term cancels badly in float32, and MPS has no float64: tests/test_no_float64_on_device.py)
        host = self.host = torch.device("cpu")
        d64 = d.to(host, torch.float64)  # [E,P]
        self.second = (d64 @ d64.T) / d.shape[1]  # [E,E]  mean(d_i d_j)
        self.first = d64.mean(dim=1)  # [E]  mean(d_i)
        del d64
        lo, hi = (v.to(host, torch.float64) for v in d.aminmax(dim=1))  # [E] each
        self.dmin, self.dmax_signed = lo, hi
        self.dmax = torch.maximum(lo.abs(), hi.abs())  # [E]  max |d_i|, for the bound B
        e = d.shape[0]
        self.iu = torch.triu_indices(e, e, offset=1)  # [2,E(E-1)/2]
        self._centre = None  # (s⁰, t⁰, m⁰ [P], max |m⁰|)
        self._windows = {}
        self._sufficed = {}
        self.full_evaluations = 0

    def pairs(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        i, j = self.iu
        g, m = self.second, self.first
        dt = t[i] - t[j]
        msd = (s[i] ** 2 * g[i, i] + s[j] ** 2 * g[j, j] - 2 * s[i] * s[j] * g[i, j]
               + 2 * dt * (s[i] * m[i] - s[j] * m[j]) + dt**2)  # [pairs] mean squared difference
        return msd.clamp(min=1e-20).sqrt().sum()

    def _reduce(self, d: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        grad = torch.is_grad_enabled() and (s.requires_grad or t.requires_grad)
        s, t = s.float().to(d.device), t.float().to(d.device)  # [E] each: cast on the CPU, then moved
        if self.reduction == "median" and not grad:
            return median_rows(d, s, t)[0]  # [K], aligned chunk by chunk
        aligned = d * s[:, None] + t[:, None]  # [E,K]
        # with autograd this is a pixel or two (the extremes), for their gradient
        return aligned.mean(dim=0) if self.reduction == "mean" else aligned.median(dim=0).values  # [K]

    def prediction(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The reduced prediction over all pixels ``[P]``."""
        self.full_evaluations += 1
        return self._reduce(self.d, s, t)

    def _recentre(self, s: torch.Tensor, t: torch.Tensor, pred: torch.Tensor) -> None:
        pred = pred.detach()
        scale = float(pred.abs().max())
        self._centre = (s.detach().clone(), t.detach().clone(), pred, scale)
        self._windows: dict[bool, tuple[torch.Tensor, torch.Tensor]] = {}
        self._sufficed: dict[bool, int] = {}

    def _window(self, lowest: bool, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The n pixels with the lowest (highest) centre prediction m⁰: m⁰ sorted from that end ``[n]`` and the
        members there ``[E,n]``. A partial sort (top-k) of a few percent of the pixels, grown when asked."""
        w = self._windows.get(lowest)
        if w is None or w[0].numel() < n:
            p = self.d.shape[1]
            k = max(n, min(4 * n, int(p * self.RECENTRE)))  # fetch ahead: a window that grows once costs one top-k
            values, idx = self._centre[2].topk(k, largest=not lowest, sorted=True)  # [k]
            w = (values, self.d.index_select(1, idx))  # index_select: ~4× faster than d[:, idx] on the CPU
            self._windows[lowest] = w
        return w[0][:n], w[1][:, :n]

    def _end(self, s, t, bound, lowest: bool):
        """Exact min (lowest) or max over all pixels, from the centre's end windows; None when too many pixels
        would be needed."""
        p = self.d.shape[1]
        n = self._sufficed.get(lowest, max(1, int(p * self.PREFIX)))  # start where the last evaluation ended
        while True:
            values, part = self._window(lowest, n)
            with torch.no_grad():
                pred = self._reduce(part, s, t)  # [n]
            k = pred.argmin() if lowest else pred.argmax()
            ext = pred[k]
            # a pixel outside the window has m⁰ beyond the window's last value; it can beat ext only if that
            # m⁰ is within B of ext. The window suffices when some of its own pixels are already out of reach.
            inside = int((values <= ext + bound).sum() if lowest else (values >= ext - bound).sum())
            if inside < n or n == p:
                self._sufficed[lowest] = n
                return self._reduce(part.index_select(1, k.view(1)), s, t)[0]  # the same value, differentiable
            n = min(p, 4 * n)
            if n > p * self.RECENTRE:
                return None

    def extremes(self, s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(min, max) over all pixels of the reduced prediction, differentiable, usually from a few pixels."""
        c = self._centre
        if c is not None:
            s0, t0, _, scale = c
            bound = float(((s.detach() - s0).abs() * self.dmax + (t.detach() - t0).abs()).max())
            bound += 1e-5 * (2 * scale + 1.0)  # float32 rounding of the medians
            lo = self._end(s, t, bound, True)
            hi = self._end(s, t, bound, False) if lo is not None else None
            if lo is not None and hi is not None:
                return lo, hi
        with torch.no_grad():
            pred = self.prediction(s, t)  # [P]
        self._recentre(s, t, pred)
        # the same values, differentiable: the two extreme pixels evaluated again with autograd
        ends = self._reduce(self.d[:, torch.stack([pred.argmin(), pred.argmax()])], s, t)  # [2]
        return ends[0], ends[1]

    def _exact(self, v: torch.Tensor) -> torch.Tensor:
        """A value from the pixels' device as a float64 on the CPU, where the unknowns are (differentiable)."""
        return v.to(self.host).double()  # moved, then cast: never a float64 on the device

    def __call__(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The objective as diffusers defines it."""
        cost = self.pairs(s, t)
        if self.reg > 0:
            lo, hi = self.extremes(s, t)
            cost = cost + self._exact(lo.abs() + (1.0 - hi).abs()) * self.reg
        return cost

    def _span(self, s: torch.Tensor, t: torch.Tensor, shift_invariant: bool, full: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
        if full:
            pred = self.prediction(s, t)
            lo, hi = pred.min(), pred.max()
        else:
            lo, hi = self.extremes(s, t)
        lo = self._exact(lo) if shift_invariant else torch.zeros((), dtype=torch.float64)
        return lo, self._exact(hi)

    def scale_free(self, s: torch.Tensor, t: torch.Tensor, shift_invariant: bool = True) -> torch.Tensor:
        """The pair term in the gauge where the reduced prediction spans exactly 0..1 (0..max for scale-only).

        The ensemble's output is invariant to one affine map applied to all members (the final normalisation
        undoes it), and in that gauge the regulariser is zero, so this equals the objective there. Unlike the
        objective it cannot be lowered by shrinking all scales together, the collapse that stops diffusers
        from taking more than two solver steps.
        """
        lo, hi = self._span(s, t, shift_invariant)
        return self.pairs(s, t) / (hi - lo).clamp(min=1e-12)

    def gauge_and_value(self, s: torch.Tensor, t: torch.Tensor, shift_invariant: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """:meth:`gauge` and the objective there, from one full evaluation (the median commutes with the
        gauge's positive affine map, so the gauged prediction is the gauged median)."""
        pmin, pmax = (self._exact(v) for v in self.extremes(s, t))  # exact over all pixels (see the class doc)
        lo = pmin if shift_invariant else torch.zeros((), dtype=torch.float64)
        c = 1.0 / (pmax - lo).clamp(min=1e-12)
        s, t = s * c, (t - lo) * c
        value = self.pairs(s, t)
        if self.reg > 0:
            value = value + self.reg * (((pmin - lo) * c).abs() + (1.0 - (pmax - lo) * c).abs())
        return s, t, float(value)

    def gauge(self, s: torch.Tensor, t: torch.Tensor, shift_invariant: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(s, t) mapped into the gauge of :meth:`scale_free` (the span checked on all pixels)."""
        lo, hi = self._span(s, t, shift_invariant, full=True)
        c = 1.0 / (hi - lo).clamp(min=1e-12)
        return s * c, (t - lo) * c


def _initial(obj: AlignmentObjective, scale_invariant: bool, shift_invariant: bool
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max normalisation of each member, diffusers' starting point."""
    lo, hi = obj.dmin, obj.dmax_signed
    if shift_invariant:
        s = 1.0 / (hi - lo).clamp(min=1e-6)
        return s, -s * lo
    s = 1.0 / hi.clamp(min=1e-6)
    return s, torch.zeros_like(s)


def solve_alignment(members: torch.Tensor, scale_invariant: bool = True, shift_invariant: bool = True,
                    reduction: str = "median", regularizer_strength: float = 0.02, max_iter: int = 2,
                    tol: float = 1e-3, max_res: int | None = 1024) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Scale and shift per member, ``([E], [E] float64 on the CPU, objective)``; see the module docstring.

    ``max_iter`` and ``tol`` are diffusers' solver budget. An iteration here (exact gradients, L-BFGS with a
    strong-Wolfe line search, no pixel loop) costs about a hundredth of one of scipy's finite-difference BFGS
    iterations, so the solver takes ``ITERATIONS_PER_STEP × max_iter`` of them. With the shift free (the usual
    case) it minimises the objective in the gauge where the reduced prediction spans 0..1 (0..max for
    scale-only; see :meth:`AlignmentObjective.scale_free`), and returns parameters in that gauge.
    """
    with torch.inference_mode(False):  # the solver needs autograd, even when called under inference mode
        small = _downsample(members.float(), max_res)  # [E,1,h,w]
        if small.is_inference():  # autograd cannot record inference tensors
            small = small.clone()
    args = (small, scale_invariant, shift_invariant, reduction, regularizer_strength, max_iter, tol, max_res)
    worker = _single_thread_worker() if small.device.type == "cpu" else None
    if worker is None:
        return _solve_here(*args)
    return worker.submit(_solve_here, *args).result()


def _solve_here(*args):
    with torch.inference_mode(False):
        return _solve(*args)


# The solver is a few hundred small ops: on the CPU one thread each is faster than waking the pool, and on a busy
# machine much faster (every parallel op waits for a descheduled worker: 0.5 s against 3.6 s for 10 members at
# 768×1024 on 2 loaded cores). torch.set_num_threads would change the whole process (ComfyUI runs other packs'
# torch work beside ours), so the solve runs on one worker thread of ours whose own OpenMP thread count is 1:
# OpenMP keeps that count per thread, and torch's process-wide setting is never touched.
_WORKER: ThreadPoolExecutor | None | bool = None
_WORKER_LOCK = threading.Lock()


def _single_thread_worker() -> ThreadPoolExecutor | None:
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            pool = ThreadPoolExecutor(1, thread_name_prefix="marigold-solver")
            if pool.submit(_one_openmp_thread_here).result():
                _WORKER = pool
            else:  # no OpenMP library to ask: solve on the caller's thread with torch's own setting
                pool.shutdown()
                _WORKER = False
        return _WORKER or None


def _one_openmp_thread_here() -> bool:
    """Set this thread's OpenMP thread count to 1 (only this thread's); True when torch now sees 1 here."""
    import ctypes
    import glob
    import os

    torch.ones(1 << 16).sum()  # torch's own per-thread OpenMP set-up first, or it would undo what follows
    lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for path in sorted(glob.glob(os.path.join(lib_dir, "libgomp*")) + glob.glob(os.path.join(lib_dir, "libiomp*"))
                       + glob.glob(os.path.join(lib_dir, "libomp*"))):
        try:
            ctypes.CDLL(path).omp_set_num_threads(1)
        except (OSError, AttributeError):
            continue
        if torch.get_num_threads() == 1:
            return True
    return torch.get_num_threads() == 1


def _solve(small, scale_invariant, shift_invariant, reduction, regularizer_strength, max_iter, tol, max_res):
    obj = AlignmentObjective(small, regularizer_strength, reduction)
    s0, t0 = _initial(obj, scale_invariant, shift_invariant)
    x = torch.cat([s0, t0]) if shift_invariant else s0.clone()
    e = small.shape[0]

    def split(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (v[:e], v[e:]) if shift_invariant else (v, torch.zeros_like(v))

    x = x.clone().requires_grad_(True)
    if max_iter > 0:
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=ITERATIONS_PER_STEP * max_iter, tolerance_grad=tol, tolerance_change=1e-9,
                                history_size=2 * e + 1, line_search_fn="strong_wolfe")
        def closure():
            opt.zero_grad()
            loss = obj.scale_free(*split(x), shift_invariant)
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
    x = x.detach()
    s, t = split(x)
    with torch.no_grad():
        s, t, value = obj.gauge_and_value(s, t, shift_invariant)
    return s, t, value


def ensemble_depth(depth: torch.Tensor, scale_invariant: bool = True, shift_invariant: bool = True,
                   output_uncertainty: bool = False, reduction: str = "median", regularizer_strength: float = 0.02,
                   max_iter: int = 2, tol: float = 1e-3, max_res: int | None = 1024
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Align and reduce E depth members ``[E,1,H,W]`` → ``(depth [1,1,H,W] in 0..1, uncertainty [1,1,H,W] | None)``.

    Same arguments and meaning as diffusers' ``MarigoldDepthPipeline.ensemble_depth``. Affine-invariant members
    are aligned by scale and shift, scale-invariant ones by scale alone, metric ones not at all.
    """
    if not isinstance(depth, torch.Tensor) or depth.dim() != 4 or depth.shape[1] != 1:
        raise InputError(f"ensemble_depth expects members of shape [E,1,H,W]; got {getattr(depth, 'shape', None)}.")
    if reduction not in REDUCTIONS_DEPTH:
        raise InputError(f"`reduction` must be one of {REDUCTIONS_DEPTH}; got {reduction!r}.")
    if not scale_invariant and shift_invariant:
        raise InputError("Pure shift-invariant ensembling is not supported.")
    depth = depth.float()
    if not torch.isfinite(torch.stack(depth.aminmax())).all():  # NaN propagates into min/max: one pass
        raise InputError("Depth members contain NaN or infinite values.")
    aligning = scale_invariant or shift_invariant
    s = t = None
    if aligning and depth.shape[0] > 1:
        s, t, _ = solve_alignment(depth, scale_invariant, shift_invariant, reduction, regularizer_strength,
                                  max_iter, tol, max_res)  # [E], [E]
    pred, unc = _reduce(depth, reduction, output_uncertainty, s, t)  # [1,1,H,W]
    if aligning:
        pmin, pmax = pred.aminmax()
        lo = pmin if shift_invariant else pred.new_zeros(())
        rng = (pmax - lo).clamp(min=1e-6)
        pred = (pred - lo) / rng
        if unc is not None:
            unc = unc / rng
    return pred, unc


def normalize_normals(normals: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Unit length along dim 1 of ``[N,3,H,W]`` (not in place)."""
    return normals / normals.norm(dim=1, keepdim=True).clamp(min=eps)


def ensemble_normals(normals: torch.Tensor, output_uncertainty: bool = False, reduction: str = "closest"
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """E unit-normal members ``[E,3,H,W]`` → ``(normals [1,3,H,W], uncertainty [1,1,H,W] | None)``.

    "closest" keeps, per pixel, the member nearest the normalised mean; uncertainty is the mean angle to it / π.
    """
    if not isinstance(normals, torch.Tensor) or normals.dim() != 4 or normals.shape[1] != 3:
        raise InputError(f"ensemble_normals expects members of shape [E,3,H,W]; got {getattr(normals, 'shape', None)}.")
    if reduction not in REDUCTIONS_NORMALS:
        raise InputError(f"`reduction` must be one of {REDUCTIONS_NORMALS}; got {reduction!r}.")
    mean = normalize_normals(normals.mean(dim=0, keepdim=True))  # [1,3,H,W]
    cos = (mean * normals).sum(dim=1, keepdim=True).clamp(-1, 1)  # [E,1,H,W]
    unc = cos.arccos().mean(dim=0, keepdim=True) / torch.pi if output_uncertainty else None  # [1,1,H,W]
    if reduction == "mean":
        return mean, unc
    idx = cos.argmax(dim=0, keepdim=True).expand(1, 3, -1, -1)  # [1,3,H,W]
    return torch.gather(normals, 0, idx), unc


def ensemble_intrinsics(targets: torch.Tensor, output_uncertainty: bool = False, reduction: str = "median"
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """E members of T targets ``[E,T,3,H,W]`` → ``(targets [T,3,H,W], uncertainty [T,3,H,W] | None)``."""
    if not isinstance(targets, torch.Tensor) or targets.dim() != 5 or targets.shape[2] != 3:
        raise InputError(f"ensemble_intrinsics expects members [E,T,3,H,W]; got {getattr(targets, 'shape', None)}.")
    if reduction not in REDUCTIONS_DEPTH:
        raise InputError(f"`reduction` must be one of {REDUCTIONS_DEPTH}; got {reduction!r}.")
    pred, unc = _reduce(targets, reduction, output_uncertainty)
    return pred[0], (unc[0] if unc is not None else None)
