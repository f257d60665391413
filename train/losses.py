"""Losses: Marigold's latent MSE, and the task losses of the end-to-end single-step mode."""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean squared error over the latent pixels in ``mask`` ([B,1,h,w] bool); all pixels when None."""
    err = (pred.float() - target.float()) ** 2  # [B,C,h,w]
    if mask is None:
        return err.mean()
    m = mask.expand_as(err).float()
    return (err * m).sum() / m.sum().clamp(min=1.0)


def target_weights(weights: dict[str, float] | None, names: list[str]) -> torch.Tensor | None:
    """``e2e.target_weights`` (``{target name: weight}``, a missing name weighs 1) → ``[T]`` weights of mean 1 over
    the task's targets, so that the loss keeps its scale (and gradient clipping its meaning); None when all are
    equal. A name the task lacks is refused with the task's names."""
    if not weights:
        return None
    if not isinstance(weights, dict):
        raise SystemExit(f"e2e.target_weights is a mapping of target names to weights ({', '.join(names)}); "
                         f"got {weights!r}.")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise SystemExit(f"e2e.target_weights names {', '.join(unknown)}: the task's targets are {', '.join(names)}.")
    w = torch.tensor([float(weights.get(n, 1.0)) for n in names])  # [T]
    if (w <= 0).any() or not torch.isfinite(w).all():
        raise SystemExit(f"e2e.target_weights must be positive numbers; got {weights}.")
    return None if bool((w == w[0]).all()) else w / w.mean()


def weighted_target_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                        weights: torch.Tensor) -> torch.Tensor:
    """:func:`masked_mse` of B samples' T decoded targets ``[B·T,C,H,W]`` (target-major per sample), each target's
    error weighed by ``weights`` ``[T]`` (mean 1): equal weights give :func:`masked_mse` itself. Why: one MSE over
    all targets prices each by its own spread, so a target of small variance (the lighting residual) is learned
    last; weights of 1 / (its mean map's error) price each against the constant it must beat."""
    t = weights.numel()
    err = (pred.float() - target.float()) ** 2  # [B·T,C,H,W]
    m = torch.ones_like(err[:, :1]) if mask is None else mask.float()  # [B·T,1,H,W]
    per_target = (err * m).unflatten(0, (-1, t)).transpose(0, 1).flatten(1).sum(1)  # [T]
    count = m.expand_as(err).unflatten(0, (-1, t)).transpose(0, 1).flatten(1).sum(1).clamp(min=1.0)  # [T]
    return (weights.to(err.device) * per_target / count).mean()


def latent_mask(valid: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Pixel validity ``[B,1,H,W]`` → latent validity ``[B,1,H/8,W/8]``: a latent pixel counts only when its
    whole 8 × 8 footprint is valid (Marigold's rule)."""
    return ~(torch.nn.functional.max_pool2d((~valid).float(), factor, factor).bool())


def least_squares_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample (s, t) minimising Σ_mask (s·pred + t − target)², ``[B,1,H,W]`` inputs → ``[B]``, ``[B]``."""
    m = mask.float()
    p, g = pred.float() * m, target.float() * m
    n = m.sum((1, 2, 3))
    a00, a01 = (p * p).sum((1, 2, 3)), p.sum((1, 2, 3))
    b0, b1 = (p * g).sum((1, 2, 3)), g.sum((1, 2, 3))
    det = a00 * n - a01 * a01
    ok = det > 1e-12
    safe = torch.where(ok, det, torch.ones_like(det))
    s = torch.where(ok, (n * b0 - a01 * b1) / safe, torch.zeros_like(det))
    t = torch.where(ok, (a00 * b1 - a01 * b0) / safe, b1 / n.clamp(min=1))
    return s, t


def affine_invariant_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                        grad_weight: float = 0.0) -> torch.Tensor:
    """L1 after the least-squares scale and shift (the affine-invariant depth loss of Garcia et al. 2024), with
    the scale kept positive: an unconstrained fit turns an upside-down map (near = 1) the right way up for free,
    and models trained from scratch kept whatever sign they started with (every e2e model we trained came out
    inverted: train/README.md, "The small model"). A negative fit is replaced by its magnitude, with the shift
    that goes with it, so an inverted map costs as much as it is wrong and its gradient turns it over.
    ``grad_weight`` > 0 adds :func:`gradient_matching` of the aligned residual, that many times."""
    s, t = least_squares_scale_shift(pred, target, mask)
    m = mask.float()
    neg = s < 0
    if bool(neg.any()):
        n = m.sum((1, 2, 3)).clamp(min=1.0)
        mean_p = (pred.float() * m).sum((1, 2, 3)) / n  # [B]
        mean_g = (target.float() * m).sum((1, 2, 3)) / n  # [B]
        t = torch.where(neg, mean_g + s * mean_p, t)  # the least-squares shift for the scale −s
        s = torch.where(neg, -s, s)
    aligned = pred.float() * s.view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1)
    l1 = ((aligned - target.float()).abs() * m).sum() / m.sum().clamp(min=1.0)
    if grad_weight <= 0:
        return l1
    return l1 + grad_weight * gradient_matching(aligned - target.float(), mask)


def gradient_matching(residual: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching of an aligned residual ``[B,1,H,W]`` (MiDaS, Ranftl et al. 2020, eq. 11): the
    mean |x- and y-gradient| of the residual over ``mask`` at ``scales`` scales (each subsampled by 2), so a
    depth step predicted soft or in the wrong place costs along its whole length, where L1 only sees the few
    pixels beside it. A gradient counts where both its pixels are valid."""
    total = residual.new_zeros(())
    r, m = residual.float(), mask.float()
    for k in range(scales):
        if min(r.shape[-2:]) < 2:
            break
        mx = m[..., :, 1:] * m[..., :, :-1]  # [B,1,h,w-1]
        my = m[..., 1:, :] * m[..., :-1, :]  # [B,1,h-1,w]
        gx = (r[..., :, 1:] - r[..., :, :-1]).abs() * mx
        gy = (r[..., 1:, :] - r[..., :-1, :]).abs() * my
        total = total + (gx.sum() + gy.sum()) / (mx.sum() + my.sum()).clamp(min=1.0)
        r, m = r[..., ::2, ::2], m[..., ::2, ::2]
    return total / scales


def angular(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean angle (radians) between predicted and true unit normals ``[B,3,H,W]`` over ``mask`` ``[B,1,H,W]``."""
    p = torch.nn.functional.normalize(pred.float(), dim=1, eps=1e-6)
    cos = (p * target.float()).sum(1, keepdim=True).clamp(-1 + 1e-6, 1 - 1e-6)
    m = mask.float()
    return (torch.acos(cos) * m).sum() / m.sum().clamp(min=1.0)
