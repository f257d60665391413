"""marigold.core.snap: a metric map made to pass through its measurements, along surfaces."""

import numpy as np
import pytest
import torch

import marigold
from marigold.core import snap as snap_mod
from marigold.core.snap import snap_to_points
from marigold.errors import InputError


def _points(h, w, k, seed=0):
    rng = np.random.default_rng(seed)
    m = torch.zeros(h, w, dtype=torch.bool)
    m.view(-1)[torch.from_numpy(rng.choice(h * w, k, replace=False))] = True
    return m


def test_a_constant_offset_is_removed_everywhere():
    truth = torch.linspace(2.0, 6.0, 40)[None, :].expand(30, 40).clone()[None, None]  # [1,1,30,40] a slanted wall
    pts = _points(30, 40, 25)
    sparse = torch.where(pts, truth[0, 0], 0.0)[None, None]
    out = snap_to_points(truth + 0.7, sparse)
    assert (out - truth).abs().max() < 1e-4
    assert (out[0, 0][pts] - sparse[0, 0][pts]).abs().max() < 1e-4  # through every point


def test_a_residual_stays_on_its_surface():
    """Two surfaces at different depths, each off by its own amount: each gets its own correction (a plain
    spatial interpolation of the residuals would mix them along the boundary)."""
    h, w = 32, 48
    truth = torch.full((h, w), 2.0)
    truth[:, 24:] = 5.0  # a step: near left, far right
    pred = truth.clone()
    pred[:, :24] += 0.3
    pred[:, 24:] -= 0.5
    pts = _points(h, w, 60, seed=1)
    sparse = torch.where(pts, truth, 0.0)[None, None]
    out = snap_to_points(pred[None, None], sparse)[0, 0]
    assert (out - truth).abs().max() < 1e-3
    plain = snap_to_points(pred[None, None], sparse, depth_sigma=1e6)[0, 0]  # no depth term: bleeds at the step
    assert (plain - truth).abs().max() > 0.05


def test_colour_keeps_surfaces_apart_where_depth_cannot():
    """Same depth both sides, different colours and different errors: only the photo tells them apart."""
    h, w = 24, 32
    truth = torch.full((h, w), 3.0)
    pred = truth.clone()
    pred[:, 16:] += 0.4
    photo = torch.zeros(1, 3, h, w)
    photo[:, 0, :, 16:] = 1.0  # red right half
    pts = _points(h, w, 40, seed=2)
    sparse = torch.where(pts, truth, 0.0)[None, None]
    with_photo = snap_to_points(pred[None, None], sparse, photo)[0, 0]
    without = snap_to_points(pred[None, None], sparse)[0, 0]
    assert (with_photo - truth).abs().mean() < 0.5 * (without - truth).abs().mean()


def test_chunks_give_the_same_answer(monkeypatch):
    g = torch.Generator().manual_seed(0)
    d = 2 + torch.rand(2, 1, 20, 30, generator=g)
    sparse = torch.where(torch.rand(2, 1, 20, 30, generator=g) < 0.1, 2 + torch.rand(2, 1, 20, 30, generator=g), 0.0)
    img = torch.rand(2, 3, 20, 30, generator=g)
    whole = snap_to_points(d, sparse, img)
    monkeypatch.setattr(snap_mod, "_CHUNK", 97)
    assert torch.allclose(snap_to_points(d, sparse, img), whole, atol=1e-6)


def test_a_big_photo_gets_its_field_worked_out_smaller(monkeypatch):
    truth = torch.linspace(2.0, 6.0, 80)[None, :].expand(60, 80).clone()
    truth[:, 40:] += 1.0  # a step
    pred = truth + torch.linspace(0.0, 0.5, 60)[:, None]  # a smooth error the points show
    pts = _points(60, 80, 120, seed=4)
    sparse = torch.where(pts, truth, 0.0)[None, None]
    full = snap_to_points(pred[None, None], sparse)
    monkeypatch.setattr(snap_mod, "MAX_PIXELS", 60 * 80 // 4)  # half the size each way
    half = snap_to_points(pred[None, None], sparse)
    err_full, err_half, err_raw = ((x[0, 0] - truth).abs().mean() for x in (full, half, pred[None, None]))
    assert err_full < 0.2 * err_raw and err_half < 0.3 * err_raw


def test_pixels_with_no_point_in_reach_keep_the_map():
    d = torch.full((1, 1, 40, 40), 3.0)
    sparse = torch.zeros_like(d)
    sparse[0, 0, :6, :6] = 4.0  # a corner measured densely, the rest not at all
    out = snap_to_points(d, sparse)
    assert torch.allclose(out[0, 0, :6, :6], torch.tensor(4.0)) and torch.equal(out[0, 0, 30:, 30:], d[0, 0, 30:, 30:])


def test_no_points_leaves_the_map_and_bad_input_is_one_line():
    d = torch.rand(1, 1, 8, 8) + 1
    assert torch.equal(snap_to_points(d, torch.zeros_like(d)), d)
    with pytest.raises(InputError, match="one shape"):
        snap_to_points(d, torch.zeros(1, 1, 8, 9))
    with pytest.raises(InputError, match="image"):
        snap_to_points(d, torch.zeros_like(d), torch.zeros(1, 3, 4, 4))
    with pytest.raises(InputError, match="positive"):
        snap_to_points(d, torch.zeros_like(d), spatial=0)


def test_fit_metric_snaps_on_request():
    truth = torch.linspace(1.0, 4.0, 32)[None, :].expand(24, 32).clone()
    truth[:, 20:] += 0.5  # the prediction misses this step
    pred = (torch.linspace(0.0, 1.0, 32)[None, :].expand(24, 32))[None, None]
    pts = _points(24, 32, 50, seed=3)
    sparse = torch.where(pts, truth, 0.0)
    fit = marigold.fit_metric(pred, sparse)
    photo = torch.zeros(3, 24, 32)
    photo[1, :, 20:] = 1.0  # the step is where the colour changes
    snapped = marigold.fit_metric(pred, sparse, snap=True, image=photo)
    assert fit.scale == snapped.scale and fit.shift == snapped.shift  # the same fit, then corrected
    assert (snapped.depth[0, 0][pts] - truth[pts]).abs().max() < (fit.depth[0, 0][pts] - truth[pts]).abs().max()
    assert (snapped.depth[0, 0] - truth).abs().mean() < 0.5 * (fit.depth[0, 0] - truth).abs().mean()


def test_fit_metric_snap_takes_any_photo_and_refuses_a_wrong_count():
    from PIL import Image

    pred = torch.rand(2, 1, 12, 16)
    sparse = torch.zeros(2, 1, 12, 16)
    sparse[:, 0, 3, 4], sparse[:, 0, 8, 12], sparse[:, 0, 6, 2] = 2.0, 3.0, 2.5
    photo = Image.fromarray(np.zeros((24, 32, 3), np.uint8))  # twice the map's size: resized to it
    out = marigold.fit_metric(pred, sparse, snap=True, image=photo)
    assert out.depth.shape == (2, 1, 12, 16) and torch.isfinite(out.depth).all()
    with pytest.raises(InputError, match="one photo or 2"):
        marigold.fit_metric(pred, sparse, snap=True, image=torch.rand(3, 3, 12, 16))
