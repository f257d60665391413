"""Optical flow rows for Marigold's video mode (marigold/flow.py) on a synthetic translating texture."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from marigold.core import coalign
from marigold.video import flow

H, W, PAD = 64, 96, 12


def texture(seed=0, channels=3):
    """A smooth random texture [C, H+2·PAD, W+2·PAD] in 0..1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, H + 2 * PAD, W + 2 * PAD, generator=g)
    for _ in range(2):
        x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    x = (x - x.min()) / (x.max() - x.min())
    return x[0]


def crop(big, dx, dy):
    """The frame whose content at p + (dx, dy) is frame (0, 0)'s content at p."""
    return big[..., PAD - dy:PAD - dy + H, PAD - dx:PAD - dx + W]


def test_dis_flow_recovers_a_translation():
    big = texture()
    a, b = crop(big, 0, 0), crop(big, 3, 2)
    f = flow.dis_flow(a, b)  # [2,H,W]
    inner = f[:, 10:-10, 10:-10]
    assert f.shape == (2, H, W)
    assert abs(float(inner[0].median()) - 3) < 0.25 and abs(float(inner[1].median()) - 2) < 0.25
    warped, inside = flow.warp(b, f)
    assert float((warped - a)[:, 10:-10, 10:-10].abs().mean()) < 0.02  # b warped by the flow is a


def test_consistency_mask_rejects_inconsistent_flow():
    fwd = torch.zeros(2, H, W)
    fwd[0] = 3.0
    bwd = torch.zeros(2, H, W)
    bwd[0] = -3.0
    ok = flow.consistent(fwd, bwd)
    assert ok[:, : W - 3].all() and not ok[:, W - 2:].any()  # points that leave the frame are dropped
    bwd[:, 20:30, 20:30] = 5.0  # an occlusion: the backward flow disagrees there
    ok = flow.consistent(fwd, bwd)
    assert not ok[20:30, 17:27].any() and ok[40:50, 40:50].all()


def test_flow_rows_let_coalign_recover_per_frame_scales():
    rgb, depth = texture(0), texture(1, channels=1)[0] + 0.5
    shifts = [(0, 0), (2, 1), (4, 2)]
    alpha, beta = torch.tensor([1.0, 1.7, 0.6]), torch.tensor([0.0, -0.3, 0.2])
    frames = torch.stack([crop(rgb, dx, dy) for dx, dy in shifts])  # [3,3,H,W]
    maps = torch.stack([alpha[i] * crop(depth, dx, dy) + beta[i] for i, (dx, dy) in enumerate(shifts)])  # [3,H,W]
    rows, unit, group, mask = flow.flow_rows(frames, maps)
    assert rows.shape == (4, H * W) and unit.tolist() == [0, 1, 1, 2] and group.tolist() == [0, 0, 1, 1]
    assert mask.float().mean() > 0.7
    s, t = coalign.solve(rows, unit, group, 3, mask=mask, scale_penalty=0, shift_penalty=0, depth_weight=0)
    gain, offset = s * alpha, s * beta + t  # every frame mapped onto the same affine map of the depth
    assert float(gain.std() / gain.mean()) < 0.03 and float(offset.std() / gain.mean()) < 0.03


def _affine_pair(h: int, w: int, m: torch.Tensor, noise: float = 0.0, seed: int = 5):
    """Grey frames a [h,w] and b with b(m·p) = a(p) (m: 2×3, pixel coordinates), b darker, both noisy."""
    g = torch.Generator().manual_seed(seed)
    big = torch.rand(1, 1, h // 4, w // 4, generator=g)
    a = F.interpolate(big, size=(h, w), mode="bicubic", align_corners=False)[0, 0].clamp(0, 1)  # [h,w]
    inv = torch.linalg.inv(torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]])]))[:2]  # b(q) = a(m⁻¹·q)
    b, _ = flow.warp(a[None], flow.affine_flow(inv, (h, w)))
    b = 0.8 * b[0] + 0.05  # an exposure change between the frames
    a = a + noise * torch.randn(h, w, generator=g)
    b = b + noise * torch.randn(h, w, generator=g)
    return a.clamp(0, 1), b.clamp(0, 1)


def test_global_flow_recovers_an_affine_camera_motion_through_exposure_and_noise():
    m = torch.tensor([[1.01, 0.004, 1.5], [-0.004, 1.01, -0.8]])  # a small zoom, roll and pan
    for h, w in ((96, 128), (480, 640)):  # the second is estimated at GLOBAL_SIZE and scaled back
        a, b = _affine_pair(h, w, m, noise=0.02)
        f = flow.global_flow(a, b)  # [2,h,w]
        true = flow.affine_flow(m, (h, w))
        assert f.shape == (2, h, w)
        # measured 0.004 px (full size) and 0.02 px (estimated small) against a mean motion of 2.4 and 5.9 px
        assert float((f - true).norm(dim=0).mean()) < 0.1, (h, float((f - true).norm(dim=0).mean()))
