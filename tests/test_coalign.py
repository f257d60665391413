"""The co-alignment solver (marigold/coalign.py) on synthetic snippets with known per-snippet affine maps.

The snippets come from bench/coalign.py: a smooth random disparity video, snippets of 3 frames with the dilations
[1, 2, 5], preprocessed as RollingDepth does (minimum subtracted, border cropped, subsampled 10×).
"""

from __future__ import annotations

import pytest
import torch

from bench.coalign import (ours, preprocess, reference_adam, reference_objective, synthetic_snippets, to_rows)
from marigold.core import coalign
from marigold.errors import InputError

T, H, W, DIL = 40, 64, 96, [1, 2, 5]


def rows(noise=0.0, model="affine", seed=0):
    snippets, indices, affine, _ = synthetic_snippets(T, H, W, DIL, 3, noise, seed=seed, model=model)
    small, mn = preprocess(snippets)
    maps, unit, group, U, pw, opts = to_rows(small, indices, mn)
    alpha = torch.cat([a for a, _ in affine]).double()
    beta = torch.cat([b for _, b in affine]).double()
    return maps, unit, group, U, pw, opts, alpha, beta, (small, indices, mn)


def spread(s, t, alpha, beta):
    """How far the recovered maps are from one common affine map of the truth: snippet u's aligned value is
    (s·alpha)·truth + (s·beta + t), so both must be the same for every u."""
    gain, offset = s.double() * alpha, s.double() * beta + t.double()
    return float(gain.std() / gain.mean()), float(offset.std() / gain.mean())


@pytest.mark.parametrize("depth_weight", [0.0, 1.0])
def test_recovers_affine_maps_exactly_without_noise(depth_weight):
    maps, unit, group, U, pw, opts, alpha, beta, _ = rows()
    s, t = coalign.solve(maps, unit, group, U, depth_weight=depth_weight, scale_penalty=0, shift_penalty=0, **opts)
    g, o = spread(s, t, alpha, beta)
    assert g < 1e-5 and o < 1e-5, (g, o)
    # no penalties, no anchors: the gauge is mean scale 1, mean origin-shifted shift 0
    assert abs(float(s.mean()) - 1) < 1e-5 and abs(float((t + s * opts["origin"]).mean())) < 1e-5


def test_recovers_affine_maps_with_noise():
    maps, unit, group, U, pw, opts, alpha, beta, _ = rows(noise=0.02)
    s, t = coalign.solve(maps, unit, group, U, scale_penalty=0, shift_penalty=0, **opts)
    g, o = spread(s, t, alpha, beta)
    assert g < 0.02 and o < 0.02, (g, o)
    s0, t0 = torch.ones(U), torch.zeros(U)
    assert spread(s0, t0, alpha, beta)[0] > 0.2  # the snippets did need aligning


def test_objective_is_the_reference_loss():
    maps, unit, group, U, pw, opts, *_, (small, indices, mn) = rows(noise=0.02, model="normalised")
    g = torch.Generator().manual_seed(3)
    s = 0.8 + 0.4 * torch.rand(U, generator=g, dtype=torch.float64)
    t = 0.1 * torch.randn(U, generator=g, dtype=torch.float64)  # the reference's (min-subtracted) coordinates
    sizes = [y.shape[0] for y in small]
    ref = reference_objective(small, indices, T, list(s.split(sizes)), list(t.split(sizes)))
    got = coalign.objective(maps, unit, group, U, s, t - s * mn, penalty_weight=pw, **opts)
    assert got == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("model", ["normalised", "affine"])
def test_no_worse_than_the_reference_adam(model):
    *_, (small, indices, mn) = rows(noise=0.02, model=model)
    s, t = ours(small, indices, mn)
    ref_s, ref_t = reference_adam(small, indices, T, steps=2000)
    mine, theirs = reference_objective(small, indices, T, s, t), reference_objective(small, indices, T, ref_s, ref_t)
    start = reference_objective(small, indices, T, [torch.ones_like(x) for x in s], [torch.zeros_like(x) for x in t])
    assert theirs < start  # the reference did make progress: the comparison means something
    assert mine <= theirs, (mine, theirs)


def test_fixed_anchors_are_kept_and_the_rest_align_to_them():
    maps, unit, group, U, pw, opts, alpha, beta, _ = rows()
    true_s, true_t = 1 / alpha, -beta / alpha  # maps every snippet back onto the truth
    fixed = torch.zeros(U, dtype=torch.bool)
    fixed[:5] = True
    init = (torch.where(fixed, true_s, torch.ones(U)).float(), torch.where(fixed, true_t, torch.zeros(U)).float())
    s, t = coalign.solve(maps, unit, group, U, fixed=fixed, init=init, scale_penalty=0, shift_penalty=0, **opts)
    assert torch.equal(s[fixed], init[0][fixed]) and torch.equal(t[fixed], init[1][fixed])
    assert torch.allclose(s.double(), true_s, atol=1e-4) and torch.allclose(t.double(), true_t, atol=1e-4)


def test_masked_pixels_are_ignored():
    maps, unit, group, U, pw, opts, alpha, beta, _ = rows()
    g = torch.Generator().manual_seed(1)
    bad = torch.rand(maps.shape, generator=g) < 0.1
    corrupt = torch.where(bad, maps + 5 * torch.rand(maps.shape, generator=g), maps)
    kw = dict(scale_penalty=0, shift_penalty=0, **opts)
    s, t = coalign.solve(corrupt, unit, group, U, mask=~bad, **kw)
    assert max(spread(s, t, alpha, beta)) < 1e-4
    s, t = coalign.solve(corrupt, unit, group, U, **kw)
    assert max(spread(s, t, alpha, beta)) > 1e-3  # the mask is what made the difference


def test_degenerate_inputs_give_finite_answers():
    maps, unit, group, U, pw, opts, alpha, beta, _ = rows()
    maps = maps.clone()
    # an extra unit alone in its own group, one with a constant map, and NaNs in a row
    lone = torch.rand(1, maps.shape[1])
    const = torch.full((1, maps.shape[1]), 0.5)
    maps[7, :10] = float("nan")
    maps = torch.cat([maps, lone, const])
    unit = torch.cat([unit, torch.tensor([U, U + 1])])
    group = torch.cat([group, torch.tensor([T + 3, 0])])
    init = (torch.ones(U + 2), torch.zeros(U + 2))
    init[0][U], init[1][U] = 2.0, 0.25
    s, t = coalign.solve(maps, unit, group, U + 2, init=init, scale_penalty=0.1, shift_penalty=0, **opts)
    assert torch.isfinite(s).all() and torch.isfinite(t).all()
    assert float(s[U]) == pytest.approx(2.0) and float(t[U]) == pytest.approx(0.25)  # nothing moves it
    g, o = spread(s[:U], t[:U], alpha, beta)
    assert g < 1e-3 and o < 1e-3, (g, o)
    # all rows masked, all rows NaN, nothing at all
    for m in (torch.zeros_like(maps, dtype=torch.bool), None):
        x = maps if m is not None else torch.full_like(maps, float("nan"))
        s, t = coalign.solve(x, unit, group, U + 2, mask=m)
        assert torch.isfinite(s).all() and torch.isfinite(t).all()
    s, t = coalign.solve(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3)
    assert torch.equal(s, torch.ones(3)) and torch.equal(t, torch.zeros(3))


def test_bad_arguments_are_named():
    maps, unit, group = torch.rand(4, 6), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    with pytest.raises(InputError, match="maps"):
        coalign.solve(maps[0], unit, group, 2)
    with pytest.raises(InputError, match="unit"):
        coalign.solve(maps, unit, group, 1)
    with pytest.raises(InputError, match="group"):
        coalign.solve(maps, unit, group.float(), 2)
    with pytest.raises(InputError, match="mask"):
        coalign.solve(maps, unit, group, 2, mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="init"):
        coalign.solve(maps, unit, group, 2, fixed=torch.tensor([True, False]))
    with pytest.raises(InputError, match="penalty_weight"):
        coalign.solve(maps, unit, group, 2, penalty_weight=torch.ones(3))


def test_merge_is_the_mean_of_aligned_rows():
    values = torch.tensor([[1.0, 2.0], [3.0, float("nan")], [5.0, 6.0]])
    mask = torch.tensor([[True, True], [True, False], [True, True]])
    out = coalign.merge(values, torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1]), 2, torch.tensor([2.0, 1.0]),
                        torch.tensor([0.0, 1.0]), mask=mask)
    assert torch.equal(out, torch.tensor([[3.0, 4.0], [6.0, 7.0]]))


def test_snippet_rows_are_the_references_preprocessing():
    snippets, indices, _, _ = synthetic_snippets(T, H, W, DIL, 3, 0.02)
    small, mn = preprocess(snippets)
    maps, unit, group, U, pw, opts = to_rows(small, indices, mn)
    rows = coalign.snippet_rows([x[:, :, 0] for x in snippets], indices)
    assert rows["n_units"] == U and rows["layers"] == opts["layers"] and rows["origin"] == pytest.approx(mn)
    assert torch.allclose(rows["maps"], maps, atol=1e-6)
    assert torch.equal(rows["unit"], unit) and torch.equal(rows["group"], group)
    assert torch.allclose(rows["penalty_weight"], pw)
    s, t = coalign.solve(**rows, max_iter=2)
    assert s.shape == (U,) and torch.isfinite(t).all()
