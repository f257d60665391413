"""Stereo 3D from depth: exact against a second rendered camera, no ghosts, one normalisation per clip, clear
messages on bad input (the library; the CLI's --stereo is in test_stereo_cli.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from marigold import InputError
from marigold.geometry.stereo import StereoVideoWriter, compose, disparity, forward_warp, stereo
from train.data.synthetic import focal_px, render, render_video

H, W = 96, 128


def _t(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float()  # [1,3,H,W]


def _pair(seed: int, divergence: float, texture: str, supersample: int) -> dict:
    """Scene ``seed`` from two cameras a baseline apart that gives ``divergence`` (percent of the width, nearest
    to farthest depth), the second camera's sensor shifted so that the farthest depth has no parallax
    (convergence 1); the view synthesised from the first camera's exact depth; which pixels both cameras see."""
    left = render(seed, H, W, supersample=supersample, texture=texture)
    z = left.depth.astype(np.float64)  # [H,W]
    z_near, z_far = z.min(), z.max()
    f = focal_px(seed, W)
    baseline = divergence / 100 * W / (f * (1 / z_near - 1 / z_far))
    right = render(seed, H, W, supersample=supersample, texture=texture, camera_x=baseline,
                   shift_px=f * baseline / z_far)
    depth01 = torch.from_numpy(((z - z_near) / (z_far - z_near)).astype(np.float32))
    p = stereo(_t(left.rgb), depth01, divergence=divergence, convergence=1.0, far_over_near=z_far / z_near,
               balance=1.0)
    assert torch.equal(p.left, _t(left.rgb).clamp(0, 1))  # balance 1: the input is the left eye
    # the right camera's pixels the left camera saw too: project them back with the right camera's exact depth
    zr = right.depth.astype(np.float64)
    u = np.arange(W)[None, :] + f * baseline * (1 / zr - 1 / z_far)  # [H,W] column in the left view
    ui = np.round(u).astype(int)
    inside = (ui >= 0) & (ui < W)
    seen = inside & (np.abs(np.take_along_axis(z, ui.clip(0, W - 1), 1) - zr) < 0.01 * zr)
    # pixels next to an occlusion edge mix both sides' colours (antialiasing): neither set's
    near_seen = F.max_pool2d(torch.from_numpy(seen).float()[None, None], 3, 1, 1)[0, 0].numpy() > 0
    near_hole = F.max_pool2d(torch.from_numpy(~seen).float()[None, None], 3, 1, 1)[0, 0].numpy() > 0
    # the baselines: a plain backward warp (sample the input where the shift points), and a smear fill
    img = _t(left.rgb)
    xs = torch.arange(W).float() + p.shift[0, 0]
    grid = torch.stack([xs / (W - 1) * 2 - 1, torch.linspace(-1, 1, H)[:, None].expand(H, W)], -1)[None]
    _, covered = forward_warp(img, -p.shift, torch.from_numpy(z).float()[None, None])
    out = p.right[0].permute(1, 2, 0).numpy()  # [H,W,3]
    return dict(ours=out, truth=right.rgb, both=seen & ~near_hole, disoccluded=inside & ~seen & ~near_seen,
                backward=F.grid_sample(img, grid, align_corners=True)[0].permute(1, 2, 0).numpy(),
                smear=_smear_fill(out, covered[0, 0].numpy()), shift=p.shift)


def _sq_err(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, int]:
    return float(((a - b) ** 2)[mask].sum()), int(mask.sum()) * 3


def test_second_view_matches_a_second_camera():
    """Photo textures, supersampled 4× (band-limited enough for a sub-pixel warp to be compared at 35 dB),
    divergence 2 % (iw3's default); PSNR over the pixels both cameras see, six scenes pooled."""
    err, count = 0.0, 0
    for seed in range(6):
        p = _pair(seed, 2.0, "photo", 4)
        assert p["shift"].abs().max() > 2.0  # pixels of parallax, not a sub-pixel nudge
        e, c = _sq_err(p["ours"], p["truth"], p["both"])
        err, count = err + e, count + c
    assert 10 * np.log10(count / err) >= 35.0


def test_disoccluded_pixels_beat_backward_warp_and_smear():
    """Flat-coloured surfaces (what fills a hole is then a matter of which surface, not of guessing a hidden
    texture), divergence 6 % for holes several pixels wide; squared error over the pixels only the second
    camera sees, twelve scenes pooled."""
    totals = {"ours": 0.0, "backward": 0.0, "smear": 0.0}
    n = 0
    for seed in range(12):
        p = _pair(seed, 6.0, "flat", 2)
        n += int(p["disoccluded"].sum())
        for k in totals:
            totals[k] += _sq_err(p[k], p["truth"], p["disoccluded"])[0]
    assert n > 300
    assert totals["ours"] < totals["backward"] and totals["ours"] < totals["smear"], totals


def _smear_fill(view: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """The covered pixels of ``view``; each run of holes interpolated between its two sides (both edges smeared
    in, the foreground's included): what fills that ignore depth do."""
    out = view.copy()
    for y in range(view.shape[0]):
        cols = np.flatnonzero(covered[y])
        if len(cols) and len(cols) < view.shape[1]:
            for c in range(3):
                out[y, :, c] = np.interp(np.arange(view.shape[1]), cols, view[y, cols, c])
    return out


@pytest.mark.parametrize("soft", [False, True])
def test_no_foreground_in_disoccluded_pixels(soft):
    """A bright box before a dark wall: wherever either eye sees behind the box, it sees wall."""
    img = torch.full((1, 3, 40, 80), 0.1)
    img[..., 10:30, 30:50] = 1.0
    depth = torch.ones(1, 1, 40, 80)
    depth[..., 10:30, 30:50] = 0.0
    if soft:  # a predicted depth edge ramps over a few pixels
        depth = F.avg_pool2d(F.pad(depth, (2, 2, 2, 2), mode="replicate"), 5, 1)
    p = stereo(img, depth, divergence=8.0, convergence=1.0)
    for view, sign in ((p.left, 1), (p.right, -1)):
        _, covered = forward_warp(img, p.shift * sign / 2, 1.0 + depth * 2)
        holes = ~covered[0, 0]
        assert holes.sum() >= 20 * 2  # the box moved by more than two pixels: background uncovered
        # all wall, no bright ghost; a soft edge's box corners (where the ramp is too gentle to cut) leave a few
        # hole pixels a tenth of the way to the box's brightness at most
        assert view[0, :, holes].max() <= (0.2 if soft else 0.1 + 1e-6)
        assert view[0, :, holes].mean() <= 0.105
        assert view[0, 0, 20].max() == 1.0  # and the box is still there


def test_divergence_zero_is_the_input_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 17, 23, generator=g)
    depth = torch.rand(2, 1, 17, 23, generator=g)
    depth[0, 0, 3, 4] = float("nan")
    for balance in (-1.0, 0.0, 0.3, 1.0):
        p = stereo(img, depth, divergence=0.0, balance=balance)
        assert torch.equal(p.left, img) and torch.equal(p.right, img)


def test_shift_follows_divergence_and_convergence():
    depth = torch.linspace(0, 1, 11).view(1, 1, 1, 11)
    shift, dist = disparity(depth, 1000, divergence=2.0, convergence=0.5, far_over_near=3.0)
    assert float(shift[..., 0] - shift[..., -1]) == pytest.approx(20.0)  # 2 % of 1000 px, nearest to farthest
    assert float(shift[..., 5]) == pytest.approx(0.0, abs=1e-5)  # the convergence depth is on the screen
    assert torch.all(shift[..., :-1] > shift[..., 1:]) and torch.all(dist[..., 1:] > dist[..., :-1])
    # a disparity map (near = 1) is affine in inverse distance already: its shift is linear, whatever R
    s1, _ = disparity(1 - depth, 1000, 2.0, 0.5, far_over_near=3.0, space="disparity")
    s2, _ = disparity(1 - depth, 1000, 2.0, 0.5, far_over_near=50.0, space="disparity")
    assert torch.allclose(s1, s2) and torch.allclose(s1[0, 0, 0], torch.linspace(10, -10, 11), atol=1e-4)


def test_compositions():
    left, right = torch.zeros(1, 3, 10, 16), torch.ones(1, 3, 10, 16)
    assert compose(left, right, "sbs").shape == (1, 3, 10, 32) and compose(left, right, "sbs")[..., 16:].min() == 1
    assert compose(left, right, "cross")[..., :16].min() == 1  # cross-eyed: the right view on the left
    assert compose(left, right, "tb").shape == (1, 3, 20, 16) and compose(left, right, "tb")[..., 10:, :].min() == 1
    assert compose(left, right, "hsbs").shape == (1, 3, 10, 16)
    a = compose(right, left, "anaglyph")  # white left eye, black right eye: red only
    assert a.shape == (1, 3, 10, 16) and a[0, 0].min() > 0.8 and a[0, 1:].max() < 0.05
    a = compose(left, right, "anaglyph")  # white right eye: cyan (green and blue), no red
    assert a[0, 0].max() < 0.05 and a[0, 1:].min() > 0.8
    with pytest.raises(InputError, match="layout"):
        compose(left, right, "vr360")


def test_bad_inputs_have_clear_messages():
    img = torch.rand(1, 3, 20, 30)
    for bad in (-1.0, 11.0, float("nan")):
        with pytest.raises(InputError, match="`divergence`"):
            stereo(img, torch.rand(1, 1, 20, 30), divergence=bad)
    with pytest.raises(InputError, match="`convergence`"):
        stereo(img, torch.rand(1, 1, 20, 30), convergence=1.5)
    with pytest.raises(InputError, match="too small"):
        stereo(torch.rand(1, 3, 1, 1), torch.rand(1, 1, 1, 1))
    with pytest.raises(InputError, match="aspect ratio"):
        stereo(img, torch.rand(1, 1, 20, 20))
    # half the size, same aspect ratio: resized, with a note
    depth = torch.linspace(0, 1, 15).view(1, 1, 1, 15).expand(1, 1, 10, 15)
    p = stereo(img, depth)
    assert p.left.shape == img.shape and any("resized" in n for n in p.notes)
    # NaN is the farthest depth
    depth = torch.rand(1, 1, 20, 30)
    depth[0, 0, 5, 5] = float("nan")
    p = stereo(img, depth)
    far, _ = disparity(torch.ones(1, 1, 1, 1), 30)
    assert float(p.shift[0, 0, 5, 5]) == pytest.approx(float(far)) and any("NaN" in n for n in p.notes)


def test_video_shift_does_not_pump_with_one_normalisation(tmp_path):
    """A dolly clip: with one normalisation for the clip the shift of every frame is one affine function of
    the true inverse distance (the 3D strength follows the camera); normalised per frame, it jumps."""
    av = pytest.importorskip("av")
    clip = render_video(500_007, 24, 24, 32, path="dolly")
    z = np.where(clip.valid, clip.depth, np.nan)  # [T,H,W]
    lo, hi = np.nanmin(z), np.nanmax(z)
    stats = {}
    for mode in ("clip", "frame"):
        path = tmp_path / f"{mode}.mp4"
        with StereoVideoWriter(path, 12, "sbs", far_over_near=float(hi / lo)) as sv:
            for k in range(len(z)):
                a, b = (lo, hi) if mode == "clip" else (np.nanmin(z[k]), np.nanmax(z[k]))
                sv.write((clip.rgb[k] * 255).astype(np.uint8), torch.from_numpy((z[k] - a) / (b - a))[None])
        stats[mode] = np.array([m for m, _ in sv.shift_stats])
        with av.open(str(path)) as c:
            frames = list(c.decode(video=0))
        assert len(frames) == 24 and (frames[0].width, frames[0].height) == (64, 24)
    q = np.array([np.nanmean(lo / zk) for zk in z])  # mean inverse distance of each frame (relative)
    resid = {m: np.abs(s - np.polyval(np.polyfit(q, s, 1), q)).max() for m, s in stats.items()}
    jumps = {m: np.abs(np.diff(s, 2)).max() for m, s in stats.items()}  # frame-to-frame change of the change
    assert resid["clip"] < 1e-3 < resid["frame"]
    assert jumps["clip"] * 3 < jumps["frame"]
