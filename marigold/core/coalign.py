"""Co-alignment: one scale and one shift per unit (a snippet, or a frame) so that all units seeing a frame agree.

The rows
--------
``maps [M,K]`` are low-resolution observations, one row per (unit, comparison group): ``unit [M]`` says which
unit made the row, ``group [M]`` which rows are compared pixel by pixel (the rows of one frame, or a frame and
its flow-warped neighbour), ``mask [M,K]`` which pixels are valid. The aligned value of a row is
``scale[unit] · map + shift[unit]``.

What RollingDepth minimises (prs-eth/RollingDepth `rollingdepth/depth_aligner.py`, ``DepthAligner.run`` and ``DepthAligner.optimize``)
-------------------------------------------------------------------------------------------------------------
* ``run``: every snippet value has the global minimum ``mn`` of all snippets subtracted (so values are >= 0),
  a 2-pixel border is cropped and the maps are subsampled 10× by striding (``[::10, ::10]``, no averaging).
* ``optimize``: per snippet ``s`` (init 1) and ``t`` (init 0); aligned ``a = s·x + t``. For every frame ``f``
  the target is the plain mean of the aligned snippet values covering it (``summ = M.sum(0) / B.sum(0)``), and
  the same in depth, ``d = 1 / clip(a, 1e-3)`` (``summ_depth``). The targets are detached and each is
  normalised by its frame's mean absolute value over all pixels. The loss is

      mean over [L, T, K] of  B·|a − ā_f| / mean_k|ā_f|   +   mean over [L, T, K] of  B·|d − d̄_f| / mean_k|d̄_f|
      + Σ_dilations ( 0.1 · mean_snippets relu(1 − s)²  +  10 · mean_snippets t² )

  where L is the number of layers (Σ snippet lengths: one layer per (dilation, position in the snippet)), T the
  number of frames and K the pixels; B marks the (layer, frame) entries that exist. The penalties fix the gauge
  the data terms leave free (a common positive scale of all snippets leaves both normalised L1 terms unchanged):
  ``t`` is pulled to 0 and ``s`` is kept from shrinking below 1. Adam (lr 1e-3, betas (0.5, 0.9)) runs 2000
  steps on this loss, its gradient ignoring the targets' dependence on ``(s, t)``.
* ``merge_scaled_triplets``: each frame is the mean of the aligned full-resolution snippets covering it; the
  pipeline then renormalises the clip to [-1, 1] (``rollingdepth_pipeline.py``, ``forward``, "Re-normalize").

What :func:`solve` minimises
----------------------------
The same function, evaluated exactly (:func:`objective`), on the generic rows: groups play the frames, L is the
largest group (``layers=``), the origin subtracted before the reciprocal term is the minimum of the valid map
values (``origin=``; the reference uses the full-resolution minimum), the per-unit penalty weight ``π_u`` is
``1/U`` unless ``penalty_weight`` gives it (the reference: ``1/N_d`` for a snippet of a dilation with ``N_d``
snippets). The mean per group pixel is over the rows valid there; the normalisers are over the group's pixels
that any row sees. With ``x' = x − origin``, ``a = s·x' + t'`` and the returned shift is ``t' − s·origin``.

Start: the reference's, ``s = 1``, ``t' = 0`` (shift ``−origin``), or ``init``. Warm start: the closed-form
least-squares solution of the term in the maps' own space (uniform weights; mean scale and mean ``t'`` held, or
least squares would shrink every scale), kept if it lowers the exact objective.

Then Levenberg–Marquardt on an iteratively reweighted least-squares surrogate: the L1 terms as weighted squares
(weights ``1/max(|residual|, eps·normaliser)``), the reciprocal (depth) term linearised (Gauss–Newton, its
derivative ``−1/a²``, 0 where clipped), the target's dependence on ``(s, t)`` kept exactly (a row's residual is
``P·a`` with ``P`` the group's centring operator) and the normalisers held at the current iterate. Each step
solves the 2U×2U normal equations, assembled per group by one batched matmul per term over [G, 2n, K] and
scattered with ``index_put_``; a step is kept only if the exact objective does not increase, else the damping
grows (so the exact objective decreases monotonically, from the reference's own starting point). Holding the
normalisers makes the surrogate prefer smaller scales, so without anchors every step is followed by the exact
minimisation over a common scale ``c`` (the data terms are invariant to it, the penalties are convex in it).
Stops when two successive iterations lower the objective by less than ``tol`` (relative).

Measured (``bench/coalign.py``, synthetic snippets, both answers scored by the reference's own loss): ours is
lower than 2000 Adam steps; see bench/RESULTS.md, "Co-alignment", for the realistic case and the speed-up.

Gauge: as in the reference, fixed by its penalties (``scale_penalty``, ``shift_penalty``), or by ``fixed``
units. Without anchors, a penalty set to 0 is replaced by a hard constraint, because the data terms alone are
minimised by degenerate answers (all scales → 0 with equal shifts, or all shifts → ∞: every relative residual
vanishes): ``scale_penalty=0`` holds the mean scale at 1, ``shift_penalty=0`` holds the mean origin-shifted
shift ``t'`` at 0 (i.e. mean shift ``−origin·mean scale`` in the caller's coordinates), both over the units
that share a group pixel with another unit (the init is projected onto these constraints first).

Degenerate inputs: non-finite map values are masked out; a unit that shares no group with any other unit, or
whose maps are constant, keeps its init along the directions nothing determines (damped normal equations).
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError

__all__ = ["solve", "objective", "merge", "snippet_rows"]

CLIP = 1e-3  # the reference's clip before the reciprocal (depth_aligner.py, ``optimize``)


class _Rows:
    """The rows laid out as [G, n, K] (n = the largest group), padded rows masked out."""

    def __init__(self, maps, unit, group, mask, origin, layers, n_units):
        M, K = maps.shape
        finite = torch.isfinite(maps)
        valid = finite if mask is None else (mask.to(torch.bool) & finite)
        x = torch.where(valid, maps, torch.zeros((), dtype=maps.dtype, device=maps.device))
        if origin is None:
            origin = float(maps[valid].min()) if bool(valid.any()) else 0.0
        self.origin = float(origin)
        gid, ginv, counts = torch.unique(group, return_inverse=True, return_counts=True)
        G, n = int(gid.numel()), int(counts.max())
        order = torch.argsort(ginv, stable=True)  # rows sorted by group
        starts = torch.cumsum(counts, 0) - counts  # [G]
        slot = torch.empty(M, dtype=torch.long, device=maps.device)
        slot[order] = torch.arange(M, device=maps.device) - starts[ginv[order]]
        dt = torch.float32 if maps.dtype != torch.float64 else torch.float64
        self.x = torch.zeros(G, n, K, dtype=dt, device=maps.device)  # [G,n,K] origin-shifted maps
        self.m = torch.zeros(G, n, K, dtype=dt, device=maps.device)  # [G,n,K] 1 where valid
        self.x[ginv, slot] = (x - self.origin).to(dt)
        self.m[ginv, slot] = valid.to(dt)
        self.x = self.x * self.m
        self.u = torch.zeros(G, n, dtype=torch.long, device=maps.device)  # [G,n] unit of each slot
        self.u[ginv, slot] = unit
        self.cnt = self.m.sum(1)  # [G,K] rows valid per group pixel
        self.seen = (self.cnt > 0).to(dt)  # [G,K]
        self.inv_cnt = torch.where(self.cnt > 0, 1.0 / self.cnt.clamp(min=1), torch.zeros_like(self.cnt))
        self.npix = self.seen.sum(1).clamp(min=1)  # [G]
        L = n if layers is None else int(layers)
        self.norm = 1.0 / (L * G * K)  # the reference's mean over [L, T, K]
        self.n_units = n_units

    def aligned(self, s, t):
        """a [G,n,K] for origin-shifted (s, t) [U]."""
        su = s.to(self.x.dtype).to(self.x.device)[self.u].unsqueeze(-1)  # [G,n,1] cast on the CPU, then moved
        tu = t.to(self.x.dtype).to(self.x.device)[self.u].unsqueeze(-1)
        return (su * self.x).add_(tu).mul_(self.m)

    def centred(self, a):
        """(residual to the group's mean, the mean, its normaliser 1/mean|mean|) of masked values a [G,n,K]."""
        mean = a.sum(1) * self.inv_cnt  # [G,K] (0 where no row is valid)
        nu = mean.abs().sum(1) / self.npix  # [G]
        inv_nu = torch.where(nu > 0, 1.0 / nu.clamp(min=1e-30), torch.zeros_like(nu))
        return (a - mean.unsqueeze(1)).mul_(self.m), mean, inv_nu

    def recip(self, a):
        """The reference's depth 1/clip(a, 1e-3), masked."""
        return a.clamp(min=CLIP).reciprocal_().mul_(self.m)


HOST = torch.device("cpu")  # where the unknowns and the 2U×2U system live, in float64 (MPS has none: no float64
# on the maps' device, see tests/test_no_float64_on_device.py); the per-pixel work stays on the maps' device


def _wide(device: torch.device | None = None) -> torch.dtype:
    """The unknowns' dtype: float64, on the CPU."""
    return torch.float64


def _exact(v: torch.Tensor) -> torch.Tensor:
    """A device tensor as float64 on the CPU: moved, then cast."""
    return v.to(HOST).double()


def _penalty(s, t, pw, ls, lt):
    return (pw * (ls * torch.relu(1 - s) ** 2 + lt * t ** 2)).sum()


def _evaluate(R: _Rows, s, t, pw, ls, lt, depth_weight):
    """The exact objective at origin-shifted (s, t), and what the normal equations reuse: per data term
    (derivative factor [G,n,K], residual e [G,n,K], 1/normaliser [G], weight)."""
    a = R.aligned(s, t)  # [G,n,K]
    e, _, inv_nu = R.centred(a)
    val = float((_exact(e.abs().sum((1, 2))) * _exact(inv_nu)).sum()) * R.norm
    terms = [(R.m, e, inv_nu, 1.0)]
    if depth_weight:
        d = R.recip(a)
        ed, _, inv_nud = R.centred(d)
        val += depth_weight * float((_exact(ed.abs().sum((1, 2))) * _exact(inv_nud)).sum()) * R.norm
        dd = torch.where(a > CLIP, -d * d, torch.zeros_like(d))  # ∂d/∂a, 0 where clipped (and where masked)
        terms.append((dd, ed, inv_nud, float(depth_weight)))
    return val + float(_penalty(s, t, pw, ls, lt)), terms


def _value(R: _Rows, s, t, pw, ls, lt, depth_weight) -> float:
    return _evaluate(R, s, t, pw, ls, lt, depth_weight)[0]


def _assemble(R: _Rows, cm, e, w, H, g):
    """Add one IRLS/Gauss–Newton term to the normal equations H [2U,2U], g [2U].

    Per group pixel, the residual is e = P·v with P = I − 1·mᵀ/n (centring on the mean of the valid rows); its
    linearisation in the slots' unknowns is P·Φ·Δ with Φ = diag(φ_r), φ_r = c_r·(x_r, 1) (c = ∂v/∂a, masked);
    the surrogate is ½ Σ w_r e_r², so H += Φᵀ Pᵀ W P Φ and g += Φᵀ Pᵀ W e. With Pᵀ W P = W − (w mᵀ + m wᵀ)/n +
    S m mᵀ/n² (S = Σ w), the off-diagonal part is D Vᵀ + V Dᵀ with V_r = c_r/n·(x_r, 1) and
    D_r = c_r (S/(2n) − w_r)·(x_r, 1): one batched matmul per term over [G, 2n, K].
    """
    G, n, K = R.x.shape
    x, ic = R.x, R.inv_cnt.unsqueeze(1)  # [G,n,K], [G,1,K]
    S = w.sum(1, keepdim=True)  # [G,1,K]
    z = cm * ic  # [G,n,K]
    y = cm * (S * ic * 0.5 - w)
    V = torch.cat([z * x, z], 1)  # [G,2n,K]
    D = torch.cat([y * x, y], 1)
    X = torch.bmm(D, V.transpose(1, 2))  # [G,2n,2n]
    blocks = X + X.transpose(1, 2)
    wc2 = w * cm * cm
    wc2x = wc2 * x
    dxx, dx1, d11 = (wc2x * x).sum(-1), wc2x.sum(-1), wc2.sum(-1)  # [G,n]
    i = torch.arange(n, device=x.device)
    blocks[:, i, i] += dxx
    blocks[:, i, n + i] += dx1
    blocks[:, n + i, i] += dx1
    blocks[:, n + i, n + i] += d11
    we = w * e  # [G,n,K]
    cp = cm * (we - R.m * (we.sum(1, keepdim=True) * ic))  # c · Pᵀ W e
    grad = torch.cat([(cp * x).sum(-1), cp.sum(-1)], 1)  # [G,2n]
    pidx = torch.cat([2 * R.u, 2 * R.u + 1], 1)  # [G,2n]
    pidx = pidx.to(H.device)  # the system is on the CPU: the [G,2n,2n] blocks go there (small), then widen
    H.index_put_((pidx.unsqueeze(2).expand(G, 2 * n, 2 * n), pidx.unsqueeze(1).expand(G, 2 * n, 2 * n)),
                 blocks.to(H.device).to(H.dtype), accumulate=True)
    g.index_add_(0, pidx.reshape(-1), grad.reshape(-1).to(g.device).to(g.dtype))


def _best_common_scale(s, t, pw, ls, lt):
    """argmin over c > 0 of Σ π (ls·relu(1 − c s)² + lt·(c t)²): convex, its derivative is increasing."""
    def d(c):
        return float((pw * (-2 * ls * s * torch.relu(1 - c * s) + 2 * lt * c * t ** 2)).sum())
    lo, hi = 1e-3, 1e3
    if d(lo) >= 0 or d(hi) <= 0:
        return 1.0
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if d(mid) < 0 else (lo, mid)
    return math.sqrt(lo * hi)


def _check(maps, unit, group, n_units, mask, fixed, init):
    if not torch.is_tensor(maps) or maps.ndim != 2 or not maps.is_floating_point():
        raise InputError(f"maps: expected a float tensor [M,K], got {getattr(maps, 'shape', type(maps))}")
    M = maps.shape[0]
    for name, v in (("unit", unit), ("group", group)):
        if not torch.is_tensor(v) or v.shape != (M,) or v.is_floating_point():
            raise InputError(f"{name}: expected an integer tensor [{M}], got {getattr(v, 'shape', type(v))}")
    if M and (int(unit.min()) < 0 or int(unit.max()) >= n_units):
        raise InputError(f"unit: values must lie in 0..{n_units - 1} (n_units={n_units})")
    if mask is not None and (not torch.is_tensor(mask) or mask.shape != maps.shape):
        raise InputError(f"mask: expected a bool tensor of shape {tuple(maps.shape)}")
    if fixed is not None and (not torch.is_tensor(fixed) or fixed.shape != (n_units,)):
        raise InputError(f"fixed: expected a bool tensor [{n_units}]")
    if init is not None:
        if not (isinstance(init, (tuple, list)) and len(init) == 2
                and all(torch.is_tensor(v) and v.shape == (n_units,) for v in init)):
            raise InputError(f"init: expected a pair (scale [{n_units}], shift [{n_units}])")
    if fixed is not None and bool(fixed.any()) and init is None:
        raise InputError("fixed: fixed units keep their init values, so init=(scale, shift) is required")


def solve(maps: torch.Tensor, unit: torch.Tensor, group: torch.Tensor, n_units: int, *,
          mask: torch.Tensor | None = None, fixed: torch.Tensor | None = None,
          init: tuple[torch.Tensor, torch.Tensor] | None = None, depth_weight: float = 1.0,
          scale_penalty: float = 0.1, shift_penalty: float = 10.0, penalty_weight: torch.Tensor | None = None,
          origin: float | None = None, layers: int | None = None, max_iter: int = 60, tol: float = 3e-6,
          eps: float = 1e-6, damping: float = 1e-3, info: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit (scale [U], shift [U]) minimising RollingDepth's co-alignment objective (module docstring).

    ``depth_weight`` weighs the reciprocal (depth) term (the reference's ``depth_loss_weight``, 1); 0 leaves the
    L1 term in the maps' own space alone. ``scale_penalty``/``shift_penalty`` are the reference's ``lmda2``
    (0.1) and ``lmda3`` (10); ``penalty_weight [U]`` weighs each unit's penalty (default 1/U). ``eps`` floors
    the IRLS residuals, relative to the group normaliser. ``info`` (a dict) receives ``iterations``,
    ``objective`` (the exact objective at the answer) and ``history`` (its value after each iteration).
    Returns float32 tensors on the maps' device.
    """
    U = int(n_units)
    _check(maps, unit, group, U, mask, fixed, init)
    if penalty_weight is not None and (not torch.is_tensor(penalty_weight) or penalty_weight.shape != (U,)):
        raise InputError(f"penalty_weight: expected a float tensor [{U}]")
    mdev, dev = maps.device, HOST  # the maps' device; the unknowns' (and the answer's until returned)
    f64 = _wide()
    s0 = torch.ones(U, dtype=f64, device=dev)
    t0 = torch.zeros(U, dtype=f64, device=dev)
    if init is not None:
        s0 = torch.nan_to_num(_exact(init[0]), nan=1.0, posinf=1.0, neginf=1.0)
        t0 = torch.nan_to_num(_exact(init[1]), nan=0.0, posinf=0.0, neginf=0.0)
    fixed_ = torch.zeros(U, dtype=torch.bool, device=dev) if fixed is None else fixed.to(dev, torch.bool)
    if maps.shape[0] == 0 or U == 0:
        return s0.float().to(mdev), t0.float().to(mdev)
    R = _Rows(maps, unit.to(mdev), group.to(mdev), None if mask is None else mask.to(mdev), origin, layers, U)
    pw = (torch.full((U,), 1.0 / U, dtype=f64, device=dev) if penalty_weight is None
          else _exact(penalty_weight))
    ls, lt = float(scale_penalty), float(shift_penalty)
    # origin-shifted unknowns: s·x + t = s·(x − origin) + (t + s·origin)
    if init is None:  # the reference's start: s = 1, t' = 0 (shift −origin in the caller's coordinates)
        t0 = t0 - R.origin
    s, t = s0.clone(), t0 + s0 * R.origin
    free = ~fixed_
    fidx = torch.cat([2 * free.nonzero().squeeze(1), 2 * free.nonzero().squeeze(1) + 1]).sort().values
    anchored = bool(fixed_.any())
    rescale = not anchored and ls > 0 and lt > 0
    # Without anchors, a penalty set to 0 leaves a degenerate direction (all scales → 0, or all shifts → ∞, make
    # every relative residual vanish): hold mean scale 1 / mean shift' 0 over the units that see another unit.
    informed = torch.zeros(U, dtype=torch.bool, device=dev)
    informed[R.u[((R.m > 0) & (R.cnt.unsqueeze(1) >= 2)).any(-1)].to(dev)] = True
    cons = []
    if not anchored and bool(informed.any()):
        k = informed.to(f64)
        if ls == 0:
            s = torch.where(informed, s / float(s[informed].mean()), s)
            t = torch.where(informed, t / float(s0[informed].mean()), t)
            cons.append(torch.stack([k, torch.zeros_like(k)], 1).reshape(-1))
        if lt == 0:
            t = torch.where(informed, t - float(t[informed].mean()), t)
            cons.append(torch.stack([torch.zeros_like(k), k], 1).reshape(-1))
    C = torch.stack(cons, 1)[fidx] if cons else None  # [F,c] the gauge constraints on the steps
    # the warm start always holds mean scale and mean shift' (least squares alone would shrink every scale)
    k = informed.to(f64)
    Cw = (torch.stack([torch.stack([k, 0 * k], 1).reshape(-1), torch.stack([0 * k, k], 1).reshape(-1)], 1)[fidx]
          if not anchored and bool(informed.any()) else None)

    def normal_equations(s, t, terms, least_squares):
        """H, g of the IRLS / Gauss–Newton surrogate at (s, t), restricted to the free unknowns."""
        H = torch.zeros(2 * U, 2 * U, dtype=f64, device=dev)
        g = torch.zeros(2 * U, dtype=f64, device=dev)
        for cm, e, inv_nu, wt in terms[:1] if least_squares else terms:
            w = R.m * (wt * R.norm * inv_nu).view(-1, 1, 1)
            if not least_squares:  # |e| ≈ e²/(2|e0|) + |e0|/2
                w = w / torch.maximum(e.abs(), (eps / inv_nu.clamp(min=1e-30)).view(-1, 1, 1))
            _assemble(R, cm, e, w, H, g)
        # penalties: lt·π·t'² and ls·π·relu(1 − s)² (its curvature where active)
        ar = torch.arange(U, device=dev)
        H.view(U, 2, U, 2)[ar, 1, ar, 1] += 2 * lt * pw
        g[1::2] += 2 * lt * pw * t
        H.view(U, 2, U, 2)[ar, 0, ar, 0] += 2 * ls * pw * (s < 1).to(f64)
        g[0::2] += -2 * ls * pw * torch.relu(1 - s)
        return H[fidx][:, fidx], g[fidx]

    def trial(s, t, Hf, gf, mu, C=C):
        """The damped (and gauge-constrained) step from (s, t), the exact objective there and the decrease the
        surrogate predicted."""
        dg = Hf.diagonal().abs()
        A, b = Hf + torch.diag(dg * mu + 1e-9 * float(dg.mean().clamp(min=1e-30))), -gf
        if C is not None:  # KKT: [[A, C], [Cᵀ, 0]]
            c = C.shape[1]
            A = torch.cat([torch.cat([A, C], 1), torch.cat([C.T, torch.zeros(c, c, dtype=A.dtype, device=dev)], 1)])
            b = torch.cat([b, torch.zeros(c, dtype=b.dtype, device=dev)])
        try:
            step = torch.linalg.solve(A, b)
        except RuntimeError:
            step = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
        step = torch.nan_to_num(step[: gf.shape[0]])
        predicted = -float(gf @ step + 0.5 * step @ (Hf @ step))
        full = torch.zeros(2 * U, dtype=f64, device=dev)
        full[fidx] = step
        s1, t1 = s + full[0::2], t + full[1::2]
        if rescale:
            c = _best_common_scale(s1, t1, pw, ls, lt)
            s1, t1 = s1 * c, t1 * c
        return s1, t1, *_evaluate(R, s1, t1, pw, ls, lt, depth_weight), predicted

    f, terms = _evaluate(R, s, t, pw, ls, lt, depth_weight)
    # warm start: the closed-form least-squares solution of the term in the maps' own space (uniform weights)
    s1, t1, f1, terms1, _ = trial(s, t, *normal_equations(s, t, terms, True), 0.0, Cw)
    if math.isfinite(f1) and f1 < f:
        s, t, f, terms = s1, t1, f1, terms1
    it, mu, calm, history = 0, float(damping), 0, [f]
    for it in range(1, max_iter + 1):
        Hf, gf = normal_equations(s, t, terms, False)
        accepted = False
        for _ in range(12):  # Levenberg–Marquardt: damp more until the exact objective decreases
            s1, t1, f1, terms1, predicted = trial(s, t, Hf, gf, mu)
            if math.isfinite(f1) and f1 <= f:
                accepted = True
                gain = (f - f1) / predicted if predicted > 0 else 0.0
                mu = max(mu / 3, 1e-9) if gain > 0.5 else mu * 2 if gain < 0.1 else mu
                break
            mu *= 4
        if not accepted:
            break
        small = f - f1 <= tol * abs(f)
        s, t, f, terms = s1, t1, f1, terms1
        history.append(f)
        calm = calm + 1 if small else 0
        if calm >= 2:
            break
    shift = t - s * R.origin
    s = torch.where(fixed_, s0, s)
    shift = torch.where(fixed_, t0, shift)
    if info is not None:
        info["iterations"] = it
        info["objective"] = f
        info["history"] = history  # the exact objective after the warm start and after each iteration
    return s.float().to(mdev), shift.float().to(mdev)


def objective(maps: torch.Tensor, unit: torch.Tensor, group: torch.Tensor, n_units: int,
              scale: torch.Tensor, shift: torch.Tensor, *, mask: torch.Tensor | None = None,
              depth_weight: float = 1.0, scale_penalty: float = 0.1, shift_penalty: float = 10.0,
              penalty_weight: torch.Tensor | None = None, origin: float | None = None,
              layers: int | None = None) -> float:
    """The exact objective :func:`solve` minimises, at (scale, shift) in the caller's coordinates."""
    U = int(n_units)
    _check(maps, unit, group, U, mask, None, None)
    f64 = _wide()
    R = _Rows(maps, unit, group, mask, origin, layers, U)
    pw = (torch.full((U,), 1.0 / U, dtype=f64) if penalty_weight is None else _exact(penalty_weight))
    s = _exact(scale)
    t = _exact(shift) + s * R.origin
    return _value(R, s, t, pw, float(scale_penalty), float(shift_penalty), depth_weight)


def snippet_rows(snippets: list[torch.Tensor], indices: list[torch.Tensor], *, border: int = 2,
                 factor: int = 10) -> dict:
    """RollingDepth's rows: per dilation, ``snippets[d] [N_d, n, H, W]`` (a snippet's n frames) and
    ``indices[d] [N_d, n]`` (their frame numbers). As ``DepthAligner.run`` does: ``border`` pixels cropped,
    subsampled ``factor``× by striding, origin = the minimum of all snippet values; penalty weight ``1/N_d`` and
    ``layers = Σ n`` as ``DepthAligner.optimize``. Units are numbered through the dilations in order. Returns
    the keyword arguments of :func:`solve`: ``solve(**snippet_rows(...))``."""
    if len(snippets) != len(indices) or not snippets:
        raise InputError("snippets, indices: expected one [N,n,H,W] tensor and one [N,n] tensor per dilation")
    maps, unit, group, pw = [], [], [], []
    base, origin = 0, float("inf")
    for x, idx in zip(snippets, indices):
        if x.ndim != 4 or idx.shape != x.shape[:2]:
            raise InputError(f"snippets, indices: expected [N,n,H,W] and [N,n], got {tuple(x.shape)} and "
                             f"{tuple(idx.shape)}")
        N, n = idx.shape
        finite = x[torch.isfinite(x)]
        if finite.numel():
            origin = min(origin, float(finite.min()))
        y = x[:, :, border:x.shape[2] - border, border:x.shape[3] - border][:, :, ::factor, ::factor]  # [N,n,h,w]
        maps.append(y.reshape(N * n, -1))
        unit.append((base + torch.arange(N, device=x.device)).repeat_interleave(n))
        group.append(idx.reshape(-1).to(x.device, torch.long))
        pw.append(torch.full((N,), 1.0 / N, device=x.device))
        base += N
    return {"maps": torch.cat(maps), "unit": torch.cat(unit), "group": torch.cat(group), "n_units": base,
            "penalty_weight": torch.cat(pw), "origin": origin if origin < float("inf") else 0.0,
            "layers": sum(int(i.shape[1]) for i in indices)}


def merge(values: torch.Tensor, unit: torch.Tensor, group: torch.Tensor, n_groups: int, scale: torch.Tensor,
          shift: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the aligned rows of each group: values [M,...] → [n_groups,...] (the reference's
    ``merge_scaled_triplets``); a group pixel no valid row sees is 0."""
    shape = values.shape[1:]
    v = values.reshape(values.shape[0], -1)
    m = torch.ones_like(v) if mask is None else mask.reshape(v.shape).to(v.dtype)
    a = scale.to(v)[unit].unsqueeze(1) * v + shift.to(v)[unit].unsqueeze(1)  # [M,P]
    a = torch.where(m > 0, a, torch.zeros_like(a))
    num = torch.zeros(n_groups, v.shape[1], dtype=v.dtype, device=v.device).index_add_(0, group, a)
    den = torch.zeros_like(num).index_add_(0, group, m)
    return (num / den.clamp(min=1)).reshape(n_groups, *shape)
