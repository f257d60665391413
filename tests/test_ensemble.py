"""Ensembling: same arguments as diffusers' ensemble_depth; recovers the truth at least as well."""

from __future__ import annotations

import functools

import pytest
import scipy.optimize
import torch
from diffusers import MarigoldDepthPipeline, MarigoldIntrinsicsPipeline, MarigoldNormalsPipeline

import marigold
from marigold.core.ensemble import AlignmentObjective, solve_alignment


def synthetic_members(seed: int, e: int = 10, h: int = 96, w: int = 128, clamp: bool = False):
    """A known depth map under random scales, shifts and (scale-proportional) noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    truth = 0.3 + 0.5 * yy + 0.1 * torch.sin(6 * xx) + 0.05 * (xx > 0.6).float()
    s = torch.rand(e, generator=g) * 1.5 + 0.5
    t = torch.rand(e, generator=g) * 0.4 - 0.2
    m = truth * s.view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1)
    m = m + 0.03 * torch.randn(e, 1, h, w, generator=g) * s.view(-1, 1, 1, 1)
    return truth, (m.clamp(0, 1.2) if clamp else m)


def affine_error(pred: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean absolute error after the best least-squares scale and shift."""
    p, g = pred.flatten().double(), truth.flatten().double()
    a = torch.stack([p, torch.ones_like(p)], 1)
    x = torch.linalg.lstsq(a, g[:, None]).solution
    return ((a @ x).squeeze() - g).abs().mean().item()


def reference_cost(depth: torch.Tensor, s, t, reg: float = 0.02) -> float:
    """diffusers' objective, written out independently: pairwise RMS + regulariser of the median."""
    a = depth * torch.as_tensor(s).float().view(-1, 1, 1, 1) + torch.as_tensor(t).float().view(-1, 1, 1, 1)
    cost = sum(((a[i] - a[j]) ** 2).mean().sqrt().item() for i, j in torch.combinations(torch.arange(len(a))))
    m = a.median(0).values
    return cost + reg * (abs(m.min().item()) + abs(1 - m.max().item()))


def gauge_fixed_cost(depth: torch.Tensor, s, t) -> float:
    """The objective after the one affine map (common to all members) that puts the median on 0..1.

    The ensemble's output is invariant to that map, and the raw objective can be lowered without limit
    towards the regulariser alone by shrinking all scales together (without changing the output), so
    solutions are compared in this gauge."""
    s, t = torch.as_tensor(s).double(), torch.as_tensor(t).double()
    m = (depth * s.float().view(-1, 1, 1, 1) + t.float().view(-1, 1, 1, 1)).median(0).values
    lo, hi = m.min().item(), m.max().item()
    return reference_cost(depth, s / (hi - lo), (t - lo) / (hi - lo))


def diffusers_solution(depth: torch.Tensor, monkeypatch):
    captured = {}
    real = scipy.optimize.minimize

    def spy(*a, **k):
        captured["res"] = real(*a, **k)
        return captured["res"]

    monkeypatch.setattr(scipy.optimize, "minimize", spy)
    pred, _ = MarigoldDepthPipeline.ensemble_depth(depth)
    x = torch.as_tensor(captured["res"].x)
    return pred, x[: len(depth)], x[len(depth):]


@pytest.mark.parametrize("seed,clamp", [(0, False), (1, True), (2, False), (3, True)])
def test_objective_at_least_as_good_as_diffusers(seed, clamp, monkeypatch):
    truth, members = synthetic_members(seed, clamp=clamp)
    _, ref_s, ref_t = diffusers_solution(members, monkeypatch)
    pred, _ = marigold.ensemble_depth(members)
    s, t, value = solve_alignment(members)
    assert pred.shape == (1, 1, 96, 128) and pred.min() == 0 and pred.max() == 1
    ours_obj = reference_cost(members, s, t)
    assert value == pytest.approx(ours_obj, rel=1e-4)  # our objective is diffusers' objective
    assert ours_obj <= gauge_fixed_cost(members, ref_s, ref_t)  # a better alignment in the common gauge


def test_recovers_truth_at_least_as_well_as_diffusers():
    """Per scene either may win by a hair (clipped members distort both); over scenes we must not lose."""
    ours, ref = [], []
    for seed in range(8):
        truth, members = synthetic_members(seed, clamp=seed % 2 == 1)
        ours.append(affine_error(marigold.ensemble_depth(members)[0], truth))
        ref.append(affine_error(MarigoldDepthPipeline.ensemble_depth(members)[0], truth))
    assert sum(ours) <= sum(ref)
    assert max(o / r for o, r in zip(ours, ref)) < 1.08


def test_scale_only_and_mean_reduction_and_uncertainty():
    truth, members = synthetic_members(4)
    members = members - members.amin(dim=(1, 2, 3), keepdim=True) + 0.1  # positive, scale-only data
    pred, unc = marigold.ensemble_depth(members, shift_invariant=False, reduction="mean", output_uncertainty=True)
    assert pred.min() >= 0 and pred.max() == pytest.approx(1.0)
    assert unc is not None and unc.shape == pred.shape and (unc >= 0).all()
    ref, ref_unc = MarigoldDepthPipeline.ensemble_depth(members, shift_invariant=False, reduction="mean",
                                                        output_uncertainty=True)
    assert affine_error(pred, truth) <= affine_error(ref, truth) * 1.05


def test_metric_depth_is_not_aligned():
    members = torch.rand(3, 1, 8, 8) * 5
    pred, _ = marigold.ensemble_depth(members, scale_invariant=False, shift_invariant=False)
    assert torch.allclose(pred, members.median(0, keepdim=True).values)


def test_ensemble_depth_on_large_maps_is_solved_downsampled():
    truth, members = synthetic_members(5, e=4, h=600, w=1100)
    pred, unc = marigold.ensemble_depth(members, output_uncertainty=True, max_res=256)
    assert pred.shape == unc.shape == (1, 1, 600, 1100)
    assert affine_error(pred, truth) < 0.02


def test_objective_pair_term_matches_pixel_loop():
    _, members = synthetic_members(6, e=5, h=20, w=30)
    obj = AlignmentObjective(members, 0.02, "median")
    s, t = torch.rand(5).double() + 0.5, torch.rand(5).double() - 0.5
    assert float(obj(s, t)) == pytest.approx(reference_cost(members, s, t), rel=1e-6)


def test_normals_and_intrinsics_match_diffusers():
    n = torch.nn.functional.normalize(torch.randn(5, 3, 16, 16), dim=1)
    for reduction in ("closest", "mean"):
        ours = marigold.ensemble_normals(n, True, reduction)
        ref = MarigoldNormalsPipeline.ensemble_normals(n.clone(), True, reduction)
        assert torch.allclose(ours[0], ref[0], atol=1e-6) and torch.allclose(ours[1], ref[1], atol=1e-6)
    x = torch.rand(5, 2, 3, 8, 8)
    for reduction in ("median", "mean"):
        ours = marigold.ensemble_intrinsics(x, True, reduction)
        ref = MarigoldIntrinsicsPipeline.ensemble_intrinsics(x, True, reduction)
        assert torch.allclose(ours[0], ref[0]) and torch.allclose(ours[1], ref[1])


@pytest.mark.parametrize("call", [
    functools.partial(marigold.ensemble_depth, torch.rand(3, 2, 4, 4)),
    functools.partial(marigold.ensemble_depth, torch.rand(3, 1, 4, 4), reduction="mode"),
    functools.partial(marigold.ensemble_depth, torch.rand(3, 1, 4, 4), scale_invariant=False),
    functools.partial(marigold.ensemble_depth, torch.full((3, 1, 4, 4), float("nan"))),
    functools.partial(marigold.ensemble_normals, torch.rand(3, 1, 4, 4)),
])
def test_bad_ensemble_input_is_a_clear_error(call):
    with pytest.raises(marigold.InputError):
        call()


@pytest.mark.parametrize("e", [1, 2, 3, 5, 10, 11, 16, 17])
def test_median_network_picks_the_element_torch_median_picks(e):
    from marigold.core.ensemble import median_rows

    x = torch.randn(e, 3, 70001)  # more pixels than one chunk
    x[:, :, :100] = 0.25  # ties
    x[: e // 2, :, 100:200] = -x[: e // 2, :, 100:200].abs()
    assert torch.equal(median_rows(x)[0], x.median(dim=0).values)
    s, t = torch.rand(e) + 0.5, torch.randn(e)
    aligned = x * s.view(-1, 1, 1) + t.view(-1, 1, 1)
    med, dev = median_rows(x, s, t, deviation=True)
    assert torch.equal(med, aligned.median(dim=0).values)
    assert torch.equal(dev, (aligned - med).abs().median(dim=0).values)


@pytest.mark.parametrize("reduction", ["median", "mean"])
def test_windowed_extremes_equal_a_full_evaluation_with_the_same_gradient(reduction):
    _, members = synthetic_members(5, e=7, h=64, w=80)
    obj = AlignmentObjective(members, 0.02, reduction)
    g = torch.Generator().manual_seed(0)
    s, t = torch.ones(7, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    windowed = 0
    for step in range(30):  # a random walk: small steps stay on one centre, large ones force new centres
        size = 0.002 if step % 7 else 0.2
        s = s + size * torch.randn(7, generator=g, dtype=torch.float64)
        t = t + size * torch.randn(7, generator=g, dtype=torch.float64)
        x = torch.cat([s, t]).requires_grad_(True)
        before = obj.full_evaluations
        lo, hi = obj.extremes(x[:7], x[7:])
        windowed += obj.full_evaluations == before
        (lo + 2 * hi).backward()
        y = torch.cat([s, t]).requires_grad_(True)
        a = members.reshape(7, -1) * y[:7, None].float() + y[7:, None].float()
        full = a.mean(0) if reduction == "mean" else a.median(0).values
        (full.min() + 2 * full.max()).backward()
        tol = 0 if reduction == "median" else 1e-6  # a mean over fewer columns may round differently
        assert abs(lo.item() - full.min().item()) <= tol and abs(hi.item() - full.max().item()) <= tol
        torch.testing.assert_close(x.grad, y.grad, atol=1e-6, rtol=1e-5)
    assert windowed >= 20  # most evaluations used the windows, not the full median
