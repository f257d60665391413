"""Inference-only speed-ups for the diffusers UNet and VAE that Marigold runs; the answer stays the same.

Each one was measured on a 2-core AVX-512-BF16 CPU at 768×576 (see bench/RESULTS.md); they are applied to the
loaded modules only (instance attributes, never diffusers' classes), and each falls back to diffusers' own code
whenever autograd is on or a module is configured in a way the fast path does not cover:

* **channels-last** memory format: oneDNN's convolutions and group norms run faster in NHWC on the CPU.
* **ResNet blocks without temporaries**: SiLU and the residual add in place, no division by an
  ``output_scale_factor`` of 1, no dropout call. (The VAE decoder's blocks are configured with
  ``time_embedding_norm="group"`` and no time embedding, which runs the same code path as "default".) The VAE
  decoder at full resolution spends a fifth of its time allocating (page-faulting) and streaming through such
  temporaries.
* **Sub-pixel upsampling**: a 3×3 convolution of a 2× nearest-upsampled map equals four 2×2 convolutions of
  the map itself, one per output phase (their kernels are sums of the 3×3 taps). That is 16 instead of 36 taps
  per input pixel and no upsampled copy of the input: 44 % of the FLOPs of the VAE decoder's three
  upsampling convolutions, which are 29 % of its FLOPs. Run as one convolution with 4× the output channels.
* **Attention a block of query rows at a time, by plain matmuls**: torch's CPU flash-attention kernel runs
  its own blocked loop at a fraction of the matmul rate. In bf16 the scores are computed minus their row maxima
  (see :func:`chunked_attention`), which keeps flash attention's accuracy: the UNet's self-attention at 768 px
  (6912 tokens, 5 heads of 64) takes 0.24 s instead of 0.33 s per layer, the VAE's one head of width 512
  ~3× less. fp32 multi-head attention keeps the flash kernel (0.33 s per such layer; fp32 matmuls take 0.78).
  Above 8192 tokens (a 768×768 tile, processing resolutions over 768) the flash kernel runs everything: there
  blocks of few query rows lose to it 1.6–3.6×. On a second AVX-512 machine the blocks merely tied with it at 768 px
  (bench/RESULTS.md, "Tiled inference"): which one pays below the threshold depends on the machine.

* **Winograd F(4×4, 3×3) for the VAE's wide 3×3 convolutions, fp32 on the CPU only** (:mod:`.winograd`): fewer
  multiplies where the direct convolution already runs at the CPU's peak.

fp32 results agree with diffusers' to float rounding (tests/test_parity.py keeps them within 1e-4).
"""

from __future__ import annotations

import math
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import winograd
from .devices import LEVERS, POLICY, enabled  # noqa: F401 (re-exported)

SCORE_BLOCK = 1 << 22  # attention scores computed at a time (8 MB in bf16; 2–8 MB measured best at 768 px)
# Above this many tokens torch's flash kernel wins by far (bench/RESULTS.md, "Tiled inference": one layer of 5 heads
# at 24 576 tokens 1.6× faster, one head of 512 at 49 152 tokens 3.6×; a 2048-px pass took 534 s with blocks,
# diffusers' 366): few query rows fit a block there, and each block pays two passes over all keys.
CHUNKED_MAX_TOKENS = 8192


# Which levers run on which device: marigold.core.devices (POLICY), re-exported here for the benches.


def apply(model, *, channels_last: bool | None = None) -> None:
    """Apply the speed-ups to ``model.unet`` and ``model.vae`` in place (idempotent); each one runs where
    :data:`POLICY` lets it (checked per call; channels-last, a weight layout, is set here for the model's device)."""
    if channels_last is None:
        channels_last = enabled("channels_last", model.device)
    for part in (model.unet, model.vae):
        if channels_last:
            part.to(memory_format=torch.channels_last)
        # sub-pixel upsampling only in the VAE: at latent resolution the UNet's upsamplers gain nothing measurable
        # (3.59 vs 3.64 s per 768 px step) and their four-phase kernels would hold 117 MB more
        patch_module(part, subpixel=part is model.vae)
    # Winograd convolutions (fp32 on the CPU only, chosen per call) in the VAE only: the UNet's convolutions run at
    # latent resolution, where a layer has too few tiles for the transforms to pay and its transformed kernels
    # (4× the weights, made per call) would cost more than they save
    winograd.patch_module(model.vae)


def patch_module(root: nn.Module, subpixel: bool = True, attention: bool = True, blocks: bool = True) -> int:
    """Give every ResnetBlock2D (with ``blocks``), Upsample2D (with ``subpixel``) and self-attention (with
    ``attention``) under ``root`` its fast forward."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.upsampling import Upsample2D

    n = 0
    for mod in root.modules():
        if getattr(mod, "_marigold_fast", False):
            continue
        if isinstance(mod, ResnetBlock2D) and blocks:
            mod.forward = types.MethodType(_resnet_forward, mod)
        elif isinstance(mod, Upsample2D) and subpixel:
            mod.forward = types.MethodType(_upsample_forward, mod)
        elif isinstance(mod, Attention) and isinstance(mod.processor, AttnProcessor2_0) and attention:
            mod.set_processor(ChunkedAttnProcessor(mod.processor))
        else:
            continue
        mod._marigold_fast = True
        n += 1
    return n


def unpatch_module(root: nn.Module) -> int:
    """Undo :func:`patch_module` under ``root`` (diffusers' forwards and attention processors again) → how many
    modules were patched."""
    n = 0
    for mod in root.modules():
        if getattr(mod, "_marigold_fast", False):
            mod.__dict__.pop("forward", None)
            if isinstance(getattr(mod, "processor", None), ChunkedAttnProcessor):
                mod.set_processor(mod.processor.fallback)
            mod._marigold_fast = False
            n += 1
    return n


# ---------------------------------------------------------------------------------------------------------------
# ResNet blocks


def _resnet_forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None = None, *args, **kwargs):
    cls_forward = type(self).forward
    if (torch.is_grad_enabled() or self.training or args or kwargs or self.upsample is not None
            or not enabled("blocks", input_tensor.device)
            or self.downsample is not None or self.time_embedding_norm == "scale_shift"
            or (temb is not None and self.time_emb_proj is None)  # diffusers would add temb as it is
            or not isinstance(self.nonlinearity, nn.SiLU)):
        return cls_forward(self, input_tensor, temb, *args, **kwargs)
    h = F.silu(self.norm1(input_tensor), inplace=True)
    h = self.conv1(h)
    if self.time_emb_proj is not None and temb is not None:
        t = temb if self.skip_time_act else F.silu(temb)
        h = h + self.time_emb_proj(t)[:, :, None, None]  # broadcast add: same as diffusers, new tensor
    h = F.silu(self.norm2(h), inplace=True)
    h = self.conv2(h)
    x = self.conv_shortcut(input_tensor) if self.conv_shortcut is not None else input_tensor
    h = h.add_(x) if h.dtype == x.dtype and h.shape == x.shape else h + x
    if self.output_scale_factor != 1.0:
        h = h.div_(self.output_scale_factor)
    return h


# ---------------------------------------------------------------------------------------------------------------
# Sub-pixel upsampling

# a 3×3 kernel's rows (offsets -1, 0, +1 in the upsampled map) → a 2-tap kernel on the original map:
# output phase 0 reads original rows (i-1, i), phase 1 reads (i, i+1)
_PHASE = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                       [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)  # [phase,tap,row]


def _subpixel_weight(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = conv.weight
    # inference tensors (a model loaded under torch.inference_mode, as ComfyUI runs nodes) have no version
    # counter; they cannot be changed in place outside inference mode, so their storage identifies them
    key = (w.data_ptr(), w.dtype, w.device, None if w.is_inference() else w._version)
    cached = getattr(conv, "_marigold_subpixel", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    a = _PHASE
    co, ci = w.shape[:2]
    k = torch.empty((2, 2, co, ci, 2, 2), dtype=w.dtype, device=w.device)  # [a,b,Co,Ci,2,2]
    step = max(1, (1 << 22) // (ci * 9))  # output channels per chunk: the float64 temporaries stay ~100 MB
    for o in range(0, co, step):
        # k[a,b,o,i,p,q] = sum_{r,c} A[a,p,r] W[o,i,r,c] A[b,q,c], exact in float64 before the one rounding.
        # Done once per layer on the CPU (MPS has no float64): moved there, summed, rounded, moved back.
        part = torch.einsum("apr,oirc,bqc->aboipq", a, w[o:o + step].detach().to("cpu").double(), a)
        k[:, :, o:o + step] = part.to(w.dtype).to(w.device)
    k = k.view(4 * co, ci, 2, 2)  # [(a,b,Co),Ci,2,2]
    if conv.weight.is_contiguous(memory_format=torch.channels_last):
        k = k.contiguous(memory_format=torch.channels_last)
    b = conv.bias.repeat(4) if conv.bias is not None else None  # [4Co]
    conv._marigold_subpixel = (key, k, b)
    return k, b


def _upsample_forward(self, hidden_states: torch.Tensor, output_size=None, *args, **kwargs):
    cls_forward = type(self).forward
    conv = getattr(self, "conv", None) if self.name == "conv" else getattr(self, "Conv2d_0", None)
    n, c, h, w = hidden_states.shape
    if (torch.is_grad_enabled() or args or kwargs or self.norm is not None or self.use_conv_transpose
            or not enabled("subpixel", hidden_states.device)
            or not self.interpolate or not self.use_conv or not isinstance(conv, nn.Conv2d)
            or conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1)
            or conv.dilation != (1, 1) or conv.groups != 1 or conv.padding_mode != "zeros"
            or (output_size is not None and tuple(output_size) != (2 * h, 2 * w))):
        return cls_forward(self, hidden_states, output_size, *args, **kwargs)
    k, b = _subpixel_weight(conv)
    co = conv.out_channels
    y = F.conv2d(hidden_states, k, b, padding=1)  # [N,4Co,H+1,W+1]; phase (a,b) at offset (a,b)
    nhwc = hidden_states.is_contiguous(memory_format=torch.channels_last) and not hidden_states.is_contiguous()
    if nhwc:
        out = torch.empty((n, h, 2, w, 2, co), dtype=y.dtype, device=y.device)
        view = out.permute(0, 5, 1, 2, 3, 4)  # [N,Co,H,2,W,2] over NHWC memory
    else:
        out = torch.empty((n, co, h, 2, w, 2), dtype=y.dtype, device=y.device)
        view = out
    for pa in (0, 1):
        for pb in (0, 1):
            j = (2 * pa + pb) * co
            view[:, :, :, pa, :, pb] = y[:, j:j + co, pa:pa + h, pb:pb + w]
    if nhwc:
        return out.view(n, 2 * h, 2 * w, co).permute(0, 3, 1, 2)  # channels-last [N,Co,2H,2W]
    return out.view(n, co, 2 * h, 2 * w)


# ---------------------------------------------------------------------------------------------------------------
# Attention


def chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(q kᵀ · scale) v for ``q [N,h,L,d]``, ``k, v [N,h,S,d]``, a block of query rows at a time.

    In fp32 the scores are one plain matmul. In bf16/fp16 a matmul rounds its output to the dtype, and rounding
    raw scores (up to ~20 in the UNet) would cost softmax several times flash attention's error, which keeps
    them in fp32. So each block first finds its rows' maxima, then computes the scores *minus* those maxima in
    the same fp32-accumulating matmul (an extra column: q's is the negated maximum, k's is 1). Softmax is
    shift-invariant, and the scores that carry the weight now sit near 0, where the rounding is fine: on
    random q, k, v with maxima of 10–20 the mean error is 1.5× flash attention's (without the shift, 8×), at
    about three quarters of its time on this CPU (two K=d matmuls cost less than the flash kernel's blocked loop).
    """
    n, heads, length, d = q.shape
    # heads split off a linear layer's output are strided views; matmul would copy k and v once per block
    k, v = k.contiguous(), v.contiguous()  # [N,h,S,d]
    if math.frexp(scale)[0] == 0.5:  # a power of two (d = 64: 1/8) scales q exactly: no pass over the scores
        q, scale = q * scale, 1.0
    out = q.new_empty((n, length, heads, d)).transpose(1, 2)  # [N,h,L,d] over [N,L,h,d]: the caller's layout
    rows = max(16, SCORE_BLOCK // (heads * k.shape[2]))  # query rows per block: ~SCORE_BLOCK scores at a time
    kt = k.transpose(-1, -2)  # [N,h,d,S]
    shifted = q.dtype != torch.float32
    if shifted:
        ka = torch.cat([k, k.new_ones(*k.shape[:-1], 1)], dim=-1).transpose(-1, -2)  # [N,h,d+1,S]
    for b in range(n):
        for s in range(0, length, rows):
            qb = q[b:b + 1, :, s:s + rows]  # [1,h,l,d]
            if shifted:
                top = torch.matmul(qb, kt[b:b + 1]).amax(dim=-1, keepdim=True)  # [1,h,l,1] row maxima, rounded
                scores = torch.matmul(torch.cat([qb, top.neg_()], dim=-1), ka[b:b + 1])  # [1,h,l,S] (s - max)
            else:
                scores = torch.matmul(qb, kt[b:b + 1])  # [1,h,l,S]
            probs = torch.softmax(scores.mul_(scale) if scale != 1.0 else scores, dim=-1)  # fp32 inside
            out[b:b + 1, :, s:s + rows] = torch.matmul(probs, v[b:b + 1])  # [1,h,l,d]
    return out


def _tokens(hidden_states: torch.Tensor) -> int:
    """Sequence length of ``[N,L,C]`` tokens or of an image ``[N,C,H,W]``."""
    return hidden_states.shape[1] if hidden_states.ndim == 3 else hidden_states.shape[-2] * hidden_states.shape[-1]


class ChunkedAttnProcessor:
    """diffusers' AttnProcessor2_0 for self-attention without masks (the UNet's ``attn1``, the VAE's mid-block),
    with :func:`chunked_attention` in place of torch's CPU flash kernel where that measured faster: bf16/fp16
    (any head width) and single-head fp32 (the VAE's one head of width 512, ~3× faster than the flash kernel).
    Everything else goes to diffusers' processor."""

    def __init__(self, fallback):
        self.fallback = fallback

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 *args, **kwargs):
        if (args or kwargs or attention_mask is not None or encoder_hidden_states is not None
                or attn.spatial_norm is not None or attn.norm_q is not None or attn.norm_k is not None
                or hidden_states.ndim not in (3, 4) or torch.is_grad_enabled()
                or not enabled("attention", hidden_states.device) or hidden_states.device.type != "cpu"
                or (hidden_states.dtype == torch.float32 and attn.heads != 1)
                or _tokens(hidden_states) > CHUNKED_MAX_TOKENS):
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        image = hidden_states.ndim == 4
        if image:
            n, c, hh, ww = hidden_states.shape
            x = hidden_states.reshape(n, c, hh * ww).transpose(1, 2)  # [N,L,C]
        else:
            x = hidden_states  # [N,L,C]
            n = x.shape[0]
        if attn.group_norm is not None:
            x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)  # [N,L,C']
        heads = attn.heads
        d = k.shape[-1] // heads
        q, k, v = (t.view(n, -1, heads, d).transpose(1, 2) for t in (q, k, v))  # [N,h,L,d]
        x = chunked_attention(q, k, v, d ** -0.5)  # [N,h,L,d]; the scale SDPA uses in AttnProcessor2_0
        x = x.transpose(1, 2).reshape(n, -1, heads * d)  # [N,L,C']
        x = attn.to_out[1](attn.to_out[0](x))
        if image:
            x = x.transpose(-1, -2).reshape(n, c, hh, ww)
        if attn.residual_connection:
            x = x + residual
        return x / attn.rescale_output_factor if attn.rescale_output_factor != 1.0 else x
