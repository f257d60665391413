"""Temporal fusion of per-frame depth with the frames (marigold/video/fusion.py) on synthetic sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from marigold.errors import InputError
from marigold.video import fusion

H, W = 64, 96


def texture(seed: int, h: int = H, w: int = W) -> torch.Tensor:
    """A smooth random RGB texture [3,h,w] in 0..1 (something for the optical flow to track)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h, w, generator=g)
    for _ in range(2):
        x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    return ((x - x.min()) / (x.max() - x.min()))[0]


def static_clip(t: int = 12, seed: int = 0):
    """A static scene: frames [T,3,H,W] (the same picture, each frame at its own exposure), the true depth [H,W]
    and per-frame predictions [T,H,W] = random gain · depth + random offset + noise (what flickers)."""
    rng = np.random.default_rng(seed)
    img = texture(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    depth = 1.0 + 2.0 * yy + 0.5 * torch.sin(6 * xx)  # [H,W]
    gain = torch.from_numpy(rng.uniform(0.8, 1.2, (t, 1, 1))).float()
    offset = torch.from_numpy(rng.uniform(-0.3, 0.3, (t, 1, 1))).float()
    noise = 0.05 * torch.from_numpy(rng.standard_normal((t, H, W))).float()
    preds = gain * depth + offset + noise  # [T,H,W]
    frames = (img[None] * torch.from_numpy(rng.uniform(0.8, 1.2, (t, 1, 1, 1))).float()).clamp(0, 1)
    return frames, depth, preds


def temporal_error(pred: torch.Tensor, depth: torch.Tensor) -> float:
    """Mean |change between consecutive frames| of the clip aligned to the truth by one scale and shift."""
    x = pred.reshape(-1).double()
    y = depth.expand_as(pred).reshape(-1).double()
    a = torch.stack([x, torch.ones_like(x)], 1)
    s = torch.linalg.lstsq(a, y[:, None]).solution[:, 0]
    aligned = (s[0] * pred.double() + s[1])  # [T,H,W]
    return float((aligned[1:] - aligned[:-1]).abs().mean() / depth.mean())


def test_dense_fusion_lowers_the_temporal_error_of_a_flickering_static_scene():
    """The dense method fits each frame's scale and shift: per-frame affine jumps (any model's maps) go too."""
    frames, depth, preds = static_clip()
    before = temporal_error(preds, depth)
    fused = fusion.fuse_depth(frames, preds, 1.0, method="dense")
    after = temporal_error(fused, depth)
    assert fused.shape == preds.shape
    assert after < 0.4 * before, (before, after)
    half = temporal_error(fusion.fuse_depth(frames, preds, 0.5, method="dense"), depth)
    assert after < half < before  # the strength is a dial


def panning_clip(t: int = 12, seed: int = 4):
    """A camera panning 1 px per frame over a textured scene whose depth also changes with the motion (a tilt and
    an approach, the 6-parameter family a rigid motion gives): frames [T,3,H,W], truth [T,H,W], predictions =
    truth + fresh noise each frame (flicker that no scale and shift removes)."""
    rng = np.random.default_rng(seed)
    big = texture(seed, H, W + t)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W + t), indexing="ij")
    scene = 2.0 + yy + 0.3 * torch.sin(8 * xx)  # [H,W+t] depth, in scene coordinates
    u = torch.linspace(-1, 1, W)[None]  # [1,W]
    frames, truth = [], []
    for k in range(t):
        frames.append(big[:, :, k:k + W])
        truth.append(scene[:, k:k + W] * (1 - 0.01 * k) * (1 + 0.005 * k * u) - 0.02 * k)  # [H,W]
    truth = torch.stack(truth)
    preds = truth + 0.05 * torch.from_numpy(rng.standard_normal((t, H, W))).float()
    return torch.stack(frames), truth, preds


def test_transport_fusion_removes_noise_and_follows_the_depth_change_of_a_moving_camera():
    frames, truth, preds = panning_clip()
    fused = fusion.fuse_depth(frames, preds, 1.0)  # the default method: "transport"
    inner = (slice(None), slice(4, -4), slice(4, -4))  # away from the border the pan uncovers
    before = (preds - truth)[inner].abs().mean()
    err = (fused - truth)[inner]  # [T,h,w]
    # the running transport starts at "no motion" and catches up with the camera within about ten frames
    # (TRANSPORT_SMOOTHING 0.9): from then on the noise is averaged away and nothing trails the truth
    assert err[-3:].abs().mean() < 0.6 * before, (float(before), float(err[-3:].abs().mean()))
    # no lag: the depth change under the motion is carried (a plain warp of depth values would trail the approach,
    # 0.04 per frame, by several frames of memory)
    assert err[-3:].mean().abs() < 0.015, float(err[-3:].mean())
    lat = fusion.TemporalFusion(1.0)
    for fr, p in zip(frames, preds):
        lat.push(fr, p)
    assert lat.last_weight > 0.5  # the history is kept where it agrees, not dropped


def test_strength_zero_is_the_input_exactly():
    frames, _, preds = static_clip(t=4)
    assert torch.equal(fusion.fuse_depth(frames, preds, 0.0), preds)
    f = fusion.TemporalFusion(0.0)
    assert all(torch.equal(f.push(fr, p), p) for fr, p in zip(frames, preds))
    img = frames.permute(0, 2, 3, 1)  # [T,H,W,3]
    dimg = preds[..., None].expand(-1, -1, -1, 3).clamp(0, 1)
    assert torch.equal(fusion.fuse_image_batch(img, dimg, 0.0), dimg)


def moving_square(t: int = 10, step: int = 2, size: int = 16, jumps: bool = True):
    """A textured square sliding right by ``step`` px per frame over a static textured background; depth 0.3
    on the square, 0.8 behind; predictions = truth + per-frame gain and offset (``jumps``) + noise. → frames,
    truth, preds."""
    rng = np.random.default_rng(1)
    bg, fg = texture(2), texture(3)
    frames, truth = [], []
    for k in range(t):
        img, d = bg.clone(), torch.full((H, W), 0.8)
        x0, y0 = 10 + step * k, 24
        img[:, y0:y0 + size, x0:x0 + size] = fg[:, y0:y0 + size, 10:10 + size]  # the square's texture moves with it
        d[y0:y0 + size, x0:x0 + size] = 0.3
        frames.append(img)
        truth.append(d)
    truth = torch.stack(truth)  # [T,H,W]
    gain = torch.from_numpy(rng.uniform(0.9, 1.1, (t, 1, 1))).float()
    offset = torch.from_numpy(rng.uniform(-0.05, 0.05, (t, 1, 1))).float()
    if not jumps:
        gain, offset = torch.ones_like(gain), torch.zeros_like(offset)
    preds = gain * truth + offset + 0.01 * torch.from_numpy(rng.standard_normal((t, H, W))).float()
    return torch.stack(frames), truth, preds


@pytest.mark.parametrize("method", fusion.METHODS)
def test_a_moving_object_moves_with_its_depth_no_lag(method):
    # "transport" takes frames already in one affine frame (video mode's aligner runs first): per-frame jumps of
    # ±10 % in scale inflate its residual spread until a trail of a few pixels survives (measured: 30 px at frame 2)
    frames, truth, preds = moving_square(jumps=method == "dense")
    fused = fusion.fuse_depth(frames, preds, 1.0, method=method)  # [T,H,W]
    # the output lies in the first frame's affine frame: threshold halfway between its square and background
    lo, hi = 0.3 * 1.0, 0.8 * 1.0
    for k in range(1, len(frames)):
        a = fusion._fit(fused[k].reshape(-1), truth[k].reshape(-1))  # back to the truth's frame
        est = fused[k] * a[0] + a[1]
        near = est < (lo + hi) / 2  # [H,W] where the fused depth puts the square
        wrong = near ^ (truth[k] < 0.5)
        # a wrong pixel may only sit on the square's true border (a pixel of slack), never a trail behind it
        border = F.max_pool2d((truth[k] < 0.5).float()[None, None], 3, 1, 1)[0, 0].bool() & \
            ~(-F.max_pool2d(-(truth[k] < 0.5).float()[None, None], 3, 1, 1)[0, 0]).bool()
        assert not (wrong & ~border).any(), (k, int((wrong & ~border).sum()))


def test_memory_is_flat_in_the_clip_length():
    frames, _, preds = static_clip(t=12)

    def held(f: fusion.TemporalFusion) -> int:
        total = 0
        for v in vars(f).values():
            assert not isinstance(v, (list, dict, set)), "nothing that grows with T"
            if isinstance(v, torch.Tensor):
                total += v.numel()
        return total

    f = fusion.TemporalFusion(1.0)
    sizes = []
    for fr, p in zip(frames, preds):
        f.push(fr, p)
        sizes.append(held(f))
    assert sizes[1] == sizes[-1] == 2 * H * W  # the previous grey frame and fused map, nothing else


def test_image_batch_is_a_depth_image_in_the_input_range():
    frames, _, preds = static_clip(t=5)
    img = frames.permute(0, 2, 3, 1)  # [T,H,W,3]
    d = ((preds - preds.min()) / (preds.max() - preds.min()))[..., None].expand(-1, -1, -1, 3)  # [T,H,W,3]
    out = fusion.fuse_image_batch(img, d, 1.0)
    assert out.shape == d.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(out.max() - out.min()) > 0.5  # one map for the clip, not squashed
    assert torch.equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize("bad", [-0.1, 1.5, "1", True, float("nan")])
def test_bad_strength_is_a_clear_error(bad):
    with pytest.raises(InputError, match="temporal strength"):
        fusion.TemporalFusion(bad)


def test_mismatched_batches_are_clear_errors():
    frames, _, preds = static_clip(t=3)
    with pytest.raises(InputError, match="depth"):
        fusion.fuse_image_batch(frames.permute(0, 2, 3, 1), preds[:2, ..., None], 1.0)
    with pytest.raises(InputError, match="frames"):
        fusion.fuse_depth(frames[:, :2], preds, 1.0)
    with pytest.raises(InputError, match="method"):
        fusion.TemporalFusion(1.0, method="optical")
