"""The video instrument's clips flicker as real footage does: a ball that moves on its own, per-frame appearance
changes, and the temporal error on static and moving pixels apart, and Video Depth Anything's TAE."""

from __future__ import annotations

import numpy as np
import pytest

from train.data.synthetic import render_video
from train.video_eval import FLICKER_KINDS, appearance_flicker
from train.video_metrics import evaluate_video, tae

SEED = 1_500_003  # a held-out video scene


@pytest.fixture(scope="module")
def clips():
    kw = dict(seed=SEED, frames=8, height=48, width=64, texture="flat")
    return render_video(**kw), render_video(**kw, moving=True)


def test_the_ball_moves_and_leaves_the_room_and_camera_as_they_were(clips):
    plain, ball = clips
    assert plain.moving is None and ball.moving.shape == ball.depth.shape
    counts = ball.moving.sum((1, 2))
    assert (counts > 20).all()  # on screen in every frame
    assert np.abs(ball.motion[:-1]).sum(1).min() > 0 and not ball.motion[-1].any()
    # pixels off the ball are the plain clip's, where the ball does not hide them
    np.testing.assert_array_equal(plain.poses, ball.poses)
    off = ~ball.moving & (ball.depth == plain.depth)
    assert off.mean() > 0.8
    # the ball's pixels are nearer than what they hide
    assert (ball.depth[ball.moving] <= plain.depth[ball.moving] + 1e-6).all() or not plain.valid[ball.moving].all()


def test_truth_scores_zero_on_static_and_moving_pixels(clips):
    _, ball = clips
    m = evaluate_video(ball.depth, ball.depth, ball.valid, intrinsics=ball.intrinsics, poses=ball.poses,
                       moving=ball.moving, motion=ball.motion, with_tae=True)
    assert m["temporal_error"] < 1e-12 and m["temporal_error_static"] < 1e-12
    assert m["temporal_error_moving"] < 1e-12
    # TAE rounds to the nearest pixel (as VDA's): the truth's floor is small but not 0
    assert 0 <= m["tae"] < 0.02


def test_a_prediction_that_lags_on_the_ball_shows_on_moving_pixels_only(clips):
    _, ball = clips
    lag = ball.depth.copy()
    lag[1:][ball.moving[1:]] *= 1.3  # wrong only where the ball is, differently in frame 0
    m = evaluate_video(lag, ball.depth, ball.valid, intrinsics=ball.intrinsics, poses=ball.poses,
                       moving=ball.moving, motion=ball.motion)
    assert m["temporal_error_static"] < 1e-3 < m["temporal_error_moving"]


def test_tae_grows_with_per_frame_scale_jitter(clips):
    plain, _ = clips
    mask = plain.valid & (plain.depth > 0)
    base = tae(plain.depth, mask, plain.intrinsics, plain.poses)
    jit = plain.depth * np.random.default_rng(0).uniform(0.9, 1.1, (len(plain.depth), 1, 1))
    assert tae(jit, mask, plain.intrinsics, plain.poses) > base + 0.02


def test_appearance_flicker_kinds_are_switchable(clips):
    plain, _ = clips
    outs = {k: appearance_flicker(plain.rgb, [k], seed=3) for k in FLICKER_KINDS}
    for k, x in outs.items():
        assert x.shape == plain.rgb.shape and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        assert np.abs(x - plain.rgb).mean() > 1e-3, k
    assert np.array_equal(appearance_flicker(plain.rgb, [], seed=3), plain.rgb)
    # exposure: one gain per frame; white balance: red/blue move against green
    ratio = outs["exposure"].mean((1, 2, 3)) / plain.rgb.mean((1, 2, 3))
    assert ratio.std() > 0.03
    wb = outs["white balance"].mean((1, 2)) / plain.rgb.mean((1, 2))  # [T,3]
    assert np.allclose(wb[:, 1], 1, atol=1e-3) and wb[:, 0].std() > 0.01
    # each kind draws from its own stream: adding noise leaves the exposure draws as they were
    both = appearance_flicker(plain.rgb, ["exposure", "noise"], seed=3)
    assert abs((both - outs["exposure"]).mean()) < 0.01
    with pytest.raises(ValueError, match="flicker kinds"):
        appearance_flicker(plain.rgb, ["rain"])
