"""Co-alignment: one scale and one shift per unit (a snippet, or a frame) so that all units seeing a frame agree.

The rows
--------
``maps [M,K]`` are low-resolution observations, one row per (unit, comparison group): ``unit [M]`` says which
unit made the row, ``group [M]`` which rows are compared pixel by pixel (the rows of one frame, or a frame and
its flow-warped neighbour), ``mask [M,K]`` which pixels are valid. The aligned value of a row is
``scale[unit] · map + shift[unit]``.

What RollingDepth minimises (``reference/depth_aligner.py``, ``DepthAligner.run`` and ``DepthAligner.optimize``)
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

How: iteratively reweighted least squares (the L1 terms as weighted squares, weights ``1/|residual|``) with a
Gauss–Newton linearisation of the reciprocal term, the target's dependence on ``(s, t)`` kept exactly (the
residual of a row is ``P·a`` with ``P`` the group's centring operator), and the normalisers held at the current
iterate. Each step solves the 2U×2U normal equations, assembled per group with batched matmuls and scattered with
``index_put_``; a step is kept only if the exact objective decreases (else halved). The first step with uniform
weights is the closed-form least-squares solution. Because holding the normalisers makes the surrogate prefer
smaller scales, every step is followed by the exact minimisation over a common scale ``c`` (the data terms are
invariant to it, the penalties are convex in it); with ``fixed`` units there is no such freedom and no such step.

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

from .errors import InputError

__all__ = ["solve", "objective", "merge"]

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
        """a [G,n,K] for origin-shifted (s, t) [U] (float64)."""
        su = s.to(self.x.dtype)[self.u].unsqueeze(-1)  # [G,n,1]
        tu = t.to(self.x.dtype)[self.u].unsqueeze(-1)
        return (su * self.x + tu) * self.m

    def centred(self, a):
        """(residual to the group's mean, the mean, its normaliser 1/mean|mean|)."""
        mean = (a * self.m).sum(1) * self.inv_cnt  # [G,K]
        nu = (mean.abs() * self.seen).sum(1) / self.npix  # [G]
        inv_nu = torch.where(nu > 0, 1.0 / nu.clamp(min=1e-30), torch.zeros_like(nu))
        return (a - mean.unsqueeze(1)) * self.m, mean, inv_nu

    def recip(self, a):
        return torch.where(self.m > 0, 1.0 / a.clamp(min=CLIP), torch.zeros_like(a))


def _penalty(s, t, pw, ls, lt):
    return (pw * (ls * torch.relu(1 - s) ** 2 + lt * t ** 2)).sum()


def _value(R: _Rows, s, t, pw, ls, lt, depth_weight) -> float:
    a = R.aligned(s, t)
    e, _, inv_nu = R.centred(a)
    val = float((e.abs().sum((1, 2)) * inv_nu.to(e.dtype)).double().sum()) * R.norm
    if depth_weight:
        ed, _, inv_nud = R.centred(R.recip(a))
        val += depth_weight * float((ed.abs().sum((1, 2)) * inv_nud.to(e.dtype)).double().sum()) * R.norm
    return val + float(_penalty(s, t, pw, ls, lt))


def _assemble(R: _Rows, phi, e, w, H, g):
    """Add one IRLS/Gauss–Newton term to the normal equations H [2U,2U], g [2U].

    Per group pixel, the residual is e = P·a with P = I − 1·mᵀ/n (centring on the mean of the valid rows), its
    linearisation in the slot unknowns is P·Φ·Δ with Φ = diag(φ_r) (φ_r [2] per row); the surrogate is
    ½ Σ w_r e_r², so H += Φᵀ Pᵀ W P Φ and g += Φᵀ Pᵀ W e, with Pᵀ W P = W − (w mᵀ + m wᵀ)/n + S m mᵀ/n².
    """
    G, n, K = R.x.shape
    m, ic = R.m, R.inv_cnt.unsqueeze(1)  # [G,n,K], [G,1,K]
    S = w.sum(1, keepdim=True)  # [G,1,K]
    wp = (w.unsqueeze(2) * phi).reshape(G, 2 * n, K)  # [G,2n,K]
    mp = (m.unsqueeze(2) * phi * ic.unsqueeze(2)).reshape(G, 2 * n, K)  # [G,2n,K]
    sp = (m.unsqueeze(2) * phi * (ic * S.sqrt()).unsqueeze(2)).reshape(G, 2 * n, K)
    cross = wp @ mp.transpose(1, 2)  # [G,2n,2n]
    blocks = sp @ sp.transpose(1, 2) - cross - cross.transpose(1, 2)
    diag = torch.einsum("gnak,gnbk->gnab", phi * w.unsqueeze(2), phi)  # [G,n,2,2]
    idx = torch.arange(n, device=phi.device)
    b5 = blocks.reshape(G, n, 2, n, 2)
    b5[:, idx, :, idx, :] += diag.permute(1, 0, 2, 3)
    we = w * e  # [G,n,K]
    pwe = we - m * (we.sum(1, keepdim=True) * ic)  # Pᵀ W e
    grad = (phi * pwe.unsqueeze(2)).sum(-1).reshape(G, 2 * n)  # [G,2n]
    pidx = (2 * R.u.unsqueeze(-1) + torch.arange(2, device=phi.device)).reshape(G, 2 * n)  # [G,2n]
    H.index_put_((pidx.unsqueeze(2).expand(G, 2 * n, 2 * n), pidx.unsqueeze(1).expand(G, 2 * n, 2 * n)),
                 b5.reshape(G, 2 * n, 2 * n).to(H.dtype), accumulate=True)
    g.index_add_(0, pidx.reshape(-1), grad.reshape(-1).to(g.dtype))


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
          origin: float | None = None, layers: int | None = None, max_iter: int = 60, tol: float = 1e-7,
          eps: float = 1e-6, damping: float = 1e-3, info: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit (scale [U], shift [U]) minimising RollingDepth's co-alignment objective (module docstring).

    ``depth_weight`` weighs the reciprocal (depth) term (the reference's ``depth_loss_weight``, 1); 0 leaves the
    L1 term in the maps' own space alone. ``scale_penalty``/``shift_penalty`` are the reference's ``lmda2``
    (0.1) and ``lmda3`` (10); ``penalty_weight [U]`` weighs each unit's penalty (default 1/U). ``eps`` floors
    the IRLS residuals, relative to the group normaliser. ``info`` (a dict) receives ``iterations`` and
    ``objective`` (the exact objective at the answer). Returns float32 tensors on the maps' device.
    """
    U = int(n_units)
    _check(maps, unit, group, U, mask, fixed, init)
    dev = maps.device
    s0 = torch.ones(U, dtype=torch.float64, device=dev)
    t0 = torch.zeros(U, dtype=torch.float64, device=dev)
    if init is not None:
        s0 = torch.nan_to_num(init[0].to(dev, torch.float64), nan=1.0, posinf=1.0, neginf=1.0)
        t0 = torch.nan_to_num(init[1].to(dev, torch.float64), nan=0.0, posinf=0.0, neginf=0.0)
    fixed_ = torch.zeros(U, dtype=torch.bool, device=dev) if fixed is None else fixed.to(dev, torch.bool)
    if maps.shape[0] == 0 or U == 0:
        return s0.float(), t0.float()
    R = _Rows(maps, unit.to(dev), group.to(dev), None if mask is None else mask.to(dev), origin, layers, U)
    pw = (torch.full((U,), 1.0 / U, dtype=torch.float64, device=dev) if penalty_weight is None
          else penalty_weight.to(dev, torch.float64))
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
    informed[R.u[((R.m > 0) & (R.cnt.unsqueeze(1) >= 2)).any(-1)]] = True
    cons = []
    if not anchored and bool(informed.any()):
        k = informed.double()
        if ls == 0:
            s = torch.where(informed, s / float(s[informed].mean()), s)
            t = torch.where(informed, t / float(s0[informed].mean()), t)
            cons.append(torch.stack([k, torch.zeros_like(k)], 1).reshape(-1))
        if lt == 0:
            t = torch.where(informed, t - float(t[informed].mean()), t)
            cons.append(torch.stack([torch.zeros_like(k), k], 1).reshape(-1))
    C = torch.stack(cons, 1)[fidx] if cons else None  # [F,c] the gauge constraints on the steps
    # the warm start always holds mean scale and mean shift' (least squares alone would shrink every scale)
    k = informed.double()
    Cw = (torch.stack([torch.stack([k, 0 * k], 1).reshape(-1), torch.stack([0 * k, k], 1).reshape(-1)], 1)[fidx]
          if not anchored and bool(informed.any()) else None)

    def value(s_, t_):
        return _value(R, s_, t_, pw, ls, lt, depth_weight)

    def normal_equations(s, t, least_squares):
        """H, g of the IRLS / Gauss–Newton surrogate at (s, t), restricted to the free unknowns."""
        a = R.aligned(s, t)  # [G,n,K]
        H = torch.zeros(2 * U, 2 * U, dtype=torch.float64, device=dev)
        g = torch.zeros(2 * U, dtype=torch.float64, device=dev)
        terms = [(a, R.x, torch.ones_like(R.x), 1.0)]
        if depth_weight and not least_squares:
            d = R.recip(a)
            dd = torch.where(a > CLIP, -d * d, torch.zeros_like(d)) * R.m  # ∂d/∂a
            terms.append((d, R.x * dd, dd, float(depth_weight)))
        for val, dphi_s, dphi_t, wt in terms:
            e, _, inv_nu = R.centred(val)
            phi = torch.stack([dphi_s, dphi_t], 2)  # [G,n,2,K]
            w = R.m * (wt * R.norm * inv_nu.view(-1, 1, 1))
            if not least_squares:  # |e| ≈ e²/(2|e0|) + |e0|/2
                w = w / torch.maximum(e.abs(), (eps / inv_nu.clamp(min=1e-30)).view(-1, 1, 1))
            _assemble(R, phi, e, w, H, g)
        # penalties: lt·π·t'² and ls·π·relu(1 − s)² (its curvature where active)
        ar = torch.arange(U, device=dev)
        H.view(U, 2, U, 2)[ar, 1, ar, 1] += 2 * lt * pw
        g[1::2] += 2 * lt * pw * t
        H.view(U, 2, U, 2)[ar, 0, ar, 0] += 2 * ls * pw * (s < 1).double()
        g[0::2] += -2 * ls * pw * torch.relu(1 - s)
        return H[fidx][:, fidx], g[fidx]

    def trial(s, t, Hf, gf, mu, C=C):
        """The damped (and gauge-constrained) step from (s, t), and the exact objective there."""
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
        full = torch.zeros(2 * U, dtype=torch.float64, device=dev)
        full[fidx] = torch.nan_to_num(step[: gf.shape[0]])
        s1, t1 = s + full[0::2], t + full[1::2]
        if rescale:
            c = _best_common_scale(s1, t1, pw, ls, lt)
            s1, t1 = s1 * c, t1 * c
        return s1, t1, value(s1, t1)

    f = value(s, t)
    # warm start: the closed-form least-squares solution of the term in the maps' own space (uniform weights)
    s1, t1, f1 = trial(s, t, *normal_equations(s, t, True), 0.0, Cw)
    if math.isfinite(f1) and f1 < f:
        s, t, f = s1, t1, f1
    it, mu, calm = 0, float(damping), 0
    for it in range(1, max_iter + 1):
        Hf, gf = normal_equations(s, t, False)
        accepted = False
        for _ in range(12):  # Levenberg–Marquardt: damp more until the exact objective decreases
            s1, t1, f1 = trial(s, t, Hf, gf, mu)
            if math.isfinite(f1) and f1 <= f:
                accepted = True
                mu = max(mu / 3, 1e-9)
                break
            mu *= 4
        if not accepted:
            break
        small = f - f1 <= tol * abs(f)
        s, t, f = s1, t1, f1
        calm = calm + 1 if small else 0
        if calm >= 2:
            break
    shift = t - s * R.origin
    s = torch.where(fixed_, s0, s)
    shift = torch.where(fixed_, t0, shift)
    if info is not None:
        info["iterations"] = it
        info["objective"] = f
    return s.float(), shift.float()


def objective(maps: torch.Tensor, unit: torch.Tensor, group: torch.Tensor, n_units: int,
              scale: torch.Tensor, shift: torch.Tensor, *, mask: torch.Tensor | None = None,
              depth_weight: float = 1.0, scale_penalty: float = 0.1, shift_penalty: float = 10.0,
              penalty_weight: torch.Tensor | None = None, origin: float | None = None,
              layers: int | None = None) -> float:
    """The exact objective :func:`solve` minimises, at (scale, shift) in the caller's coordinates."""
    U = int(n_units)
    _check(maps, unit, group, U, mask, None, None)
    R = _Rows(maps, unit, group, mask, origin, layers, U)
    pw = (torch.full((U,), 1.0 / U, dtype=torch.float64, device=maps.device) if penalty_weight is None
          else penalty_weight.to(maps.device, torch.float64))
    s = scale.to(maps.device, torch.float64)
    t = shift.to(maps.device, torch.float64) + s * R.origin
    return _value(R, s, t, pw, float(scale_penalty), float(shift_penalty), depth_weight)


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
