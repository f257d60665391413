"""3×3 convolutions by Winograd's minimal filtering F(4×4, 3×3): the fp32 lever for CPUs (issue #23).

A direct 3×3 convolution spends 9 multiply-adds per output value and input channel, and oneDNN runs it at the
CPU's peak already (bench/RESULTS.md, "fp32 on the CPU"), so in fp32 the only way to run the VAE faster is fewer
multiplies. Winograd's F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
computes each 4×4 output tile from a 6×6 input tile with 36 products per channel pair instead of 144: the 6×6
tiles and the kernels are transformed (``Bᵀ d B``, ``G g Gᵀ``), multiplied elementwise, which across channels is 36
independent matrix products ``[tiles, C] @ [C, K]``, and transformed back (``Aᵀ m A``). The transforms are small
matrix products on bands of tile rows, so the temporaries stay a few MB whatever the image size.

It pays where the matrix products dominate the transforms: 256 and more channels on both sides (the VAE's inner
levels, about 73 % of its convolution FLOPs at 768 px). Measured per layer at 768×576 (2 cores of an AMD EPYC with
AVX-512, fp32, best of two): 512 channels 0.57–0.60× the direct convolution's time (at 144×192 and 72×96), 256
channels 0.78× (288×384); 128 channels 1.13–1.18× (576×768), so those stay direct. With oneDNN limited to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``), as on CPUs without AVX-512, an earlier version measured 0.57–0.60× and 0.67×.

Only fp32: the transforms' coefficients (up to 25 in, 64 out) would amplify bf16 rounding ~17× (mean error
1.1e-2 against 6.5e-4 for the direct bf16 convolution per layer). In fp32 the error per layer is 3e-5 at most
against 1e-5 for the direct convolution on unit-variance inputs; the whole VAE's answer moves by far less than
the parity bounds (tests/test_winograd.py, bench/RESULTS.md).
"""

from __future__ import annotations

import types

import torch
import torch.nn as nn

from .devices import enabled

MIN_CHANNELS = 256  # below this on either side the transforms cost more than the products save
BAND_BYTES = 8 << 20  # transformed input tiles held at a time (~8 MB: measured flat between 2 and 16 MB)

# F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞ (Lavin & Gray, 2016, section 4.2), in float64
_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)
_IN = torch.kron(_BT, _BT)  # [36,36]: a flattened 6×6 tile d → Bᵀ d B, flattened
_OUT = torch.kron(_AT, _AT)  # [16,36]: a flattened 6×6 product m → Aᵀ m A (the 4×4 outputs), flattened
_KERNEL = torch.kron(_G, _G)  # [36,9]: a flattened 3×3 kernel g → G g Gᵀ, flattened


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[K,C,3,3]`` kernels → ``[36,C,K]``: ``G g Gᵀ`` of each, flattened, channels ready for ``[P,C] @ [C,K]``.
    One matrix product ``[36,9] @ [9,K·C]``, returned as a transposed view (the batched product reads it as it is):
    made per call, since keeping them would hold 4× the VAE's wide kernels (1.1 GB in fp32)."""
    k, c = weight.shape[:2]
    u = _KERNEL.to(weight.device, weight.dtype) @ weight.reshape(k * c, 9).t()  # [36,K*C]
    return u.view(36, k, c).transpose(1, 2)  # [36,C,K]


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for ``x [N,C,H,W]``, ``weight [K,C,3,3]``, by F(4×4, 3×3).

    Returns ``[N,K,H,W]`` in channels-last memory (the layout the fast path runs the VAE in)."""
    n, c, h, w = x.shape
    k = weight.shape[0]
    u = transform_weight(weight)  # [36,C,K]
    kin, kout = _IN.to(x.device, x.dtype), _OUT.to(x.device, x.dtype)
    th, tw = (h + 3) // 4, (w + 3) // 4  # output tiles
    xh = x.permute(0, 2, 3, 1)  # [N,H,W,C] (a view for channels-last input)
    out = x.new_empty((n, th, 4, tw, 4, k))  # [N,th,4,tw,4,K] = NHWC of the output, rounded up to whole tiles
    band = max(1, BAND_BYTES // (n * tw * c * 36 * x.element_size()))  # tile rows per step
    # one band of the zero-padded input at a time (padding=1, and zeros past the edge to whole 6×6 tiles): padding
    # the whole map would be one more pass over it in memory
    buf = x.new_zeros((n, 4 * band + 2, 4 * tw + 2, c))  # [N,4b+2,4tw+2,C]
    for r0 in range(0, th, band):
        b = min(th, r0 + band) - r0
        p = n * b * tw  # tiles in this band
        lo, hi = 4 * r0 - 1, 4 * (r0 + b) + 1  # the input rows under this band (row -1 is the padding)
        a0, a1 = max(lo, 0), min(hi, h)
        xb = buf[:, :4 * b + 2]
        if a0 > lo or a1 < hi:
            xb.zero_()  # the first and last bands reach past the image
        xb[:, a0 - lo:a1 - lo, 1:1 + w] = xh[:, a0:a1]
        d = xb.unfold(1, 6, 4).unfold(2, 6, 4)  # [N,b,tw,C,6,6] overlapping tiles (a view)
        v = kin @ d.reshape(p * c, 36).t()  # [36,P*C]
        m = torch.bmm(v.view(36, p, c), u)  # [36,P,K]
        y = kout @ m.view(36, p * k)  # [16,P*K]
        if bias is not None:
            y.view(16, p, k).add_(bias)
        out[:, r0:r0 + b].copy_(y.view(4, 4, n, b, tw, k).permute(2, 3, 0, 4, 1, 5))
    y = out.view(n, 4 * th, 4 * tw, k)[:, :h, :w]  # [N,H,W,K]
    if (4 * th, 4 * tw) != (h, w):
        y = y.contiguous()
    return y.permute(0, 3, 1, 2)  # [N,K,H,W] channels-last


def applies(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Where the lever runs: inference (no autograd), fp32 on the CPU, a plain 3×3 convolution, wide enough."""
    return (not torch.is_grad_enabled() and x.dtype == torch.float32 and x.device.type == "cpu" and x.ndim == 4
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and min(conv.in_channels, conv.out_channels) >= MIN_CHANNELS and conv.weight.dtype == torch.float32)


def _forward(self, x: torch.Tensor) -> torch.Tensor:
    if applies(self, x) and enabled("winograd", x.device):
        return conv3x3(x, self.weight, self.bias)
    return type(self).forward(self, x)


def patch_module(root: nn.Module) -> int:
    """Give every wide 3×3 ``nn.Conv2d`` under ``root`` a forward that takes F(4×4, 3×3) where :func:`applies`
    (checked per call: the dtype and device may change after loading) and the module's own forward elsewhere."""
    n = 0
    for mod in root.modules():
        if (type(mod) is nn.Conv2d and not getattr(mod, "_marigold_winograd", False)
                and mod.kernel_size == (3, 3) and min(mod.in_channels, mod.out_channels) >= MIN_CHANNELS):
            mod.forward = types.MethodType(_forward, mod)
            mod._marigold_winograd = True
            n += 1
    return n


def unpatch_module(root: nn.Module) -> int:
    """Undo :func:`patch_module` under ``root`` (the modules' own forwards again) → how many were patched."""
    n = 0
    for mod in root.modules():
        if getattr(mod, "_marigold_winograd", False):
            mod.__dict__.pop("forward", None)
            mod._marigold_winograd = False
            n += 1
    return n
