"""The fp32 Winograd lever (marigold/core/winograd.py, issue #23): same answer as the direct convolution, taken only
where it applies."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from marigold.core import winograd


@pytest.mark.parametrize("size", [(16, 24), (13, 22), (5, 7)])
def test_winograd_conv_equals_the_direct_convolution(size):
    torch.manual_seed(0)
    x = torch.randn(2, 256, *size).contiguous(memory_format=torch.channels_last)  # [N,C,H,W]
    conv = nn.Conv2d(256, 260, 3, padding=1)
    with torch.no_grad():
        exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
        got = winograd.conv3x3(x, conv.weight, conv.bias)
        direct = conv(x)
    assert got.shape == exact.shape == (2, 260, *size)
    assert got.is_contiguous(memory_format=torch.channels_last)
    err, ref = (got.double() - exact).abs(), (direct.double() - exact).abs()
    # F(4×4, 3×3) in fp32: a few times the direct convolution's rounding, far below the parity bounds (1e-4)
    assert err.max() < 1e-4 and err.mean() < 4 * ref.mean() + 1e-7


def test_winograd_bands_give_the_same_answer(monkeypatch):
    torch.manual_seed(1)
    x, w = torch.randn(1, 256, 20, 12), torch.randn(256, 256, 3, 3) / 48
    whole = winograd.conv3x3(x, w)
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)  # one row of tiles at a time
    banded = winograd.conv3x3(x, w)  # the matrix products' blocking differs with the band: rounding only
    exact = F.conv2d(x.double(), w.double(), padding=1)
    for got in (whole, banded):
        assert (got.double() - exact).abs().max() < 3e-5 * exact.abs().max()


def test_winograd_runs_only_where_it_applies():
    conv = nn.Conv2d(256, 256, 3, padding=1)
    assert winograd.patch_module(nn.Sequential(conv, nn.Conv2d(128, 128, 3, padding=1), nn.Conv2d(256, 256, 1))) == 1
    x = torch.randn(1, 256, 8, 8)
    with torch.no_grad():
        assert winograd.applies(conv, x)
        assert not winograd.applies(conv, x.bfloat16())  # bf16 rounding would be amplified by the transforms
        assert not winograd.applies(nn.Conv2d(256, 256, 3, padding=1, stride=2), x)
        assert not winograd.applies(nn.Conv2d(256, 256, 3, padding=0), x)
        # a bf16 call falls back to the module's own convolution: the same bits
        conv_bf16 = nn.Conv2d(256, 256, 3, padding=1).bfloat16()
        winograd.patch_module(conv_bf16)
        assert torch.equal(conv_bf16(x.bfloat16()), F.conv2d(x.bfloat16(), conv_bf16.weight, conv_bf16.bias, padding=1))
    assert not winograd.applies(conv, x)  # autograd on: training keeps diffusers' modules
    y = conv(x.requires_grad_())
    y.sum().backward()
    assert x.grad is not None
