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
