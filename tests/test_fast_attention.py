"""marigold.core.fast's chunked attention: the same answer as torch's SDPA, block by block, in fp32 and in bf16."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from marigold.core import fast


def _qkv(n, heads, length, d, amp=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    # as the processor receives them: heads split off a linear layer's [N,L,h·d] output (strided views)
    q, k, v = (torch.randn(n, length, heads * d, generator=g).view(n, length, heads, d).transpose(1, 2)
               for _ in range(3))
    return q * amp, k, v


@pytest.mark.parametrize("block", [1 << 12, 1 << 22])  # many blocks with a ragged last one; one block
def test_fp32_equals_sdpa(monkeypatch, block):
    monkeypatch.setattr(fast, "SCORE_BLOCK", block)
    q, k, v = _qkv(2, 3, 203, 40)  # d = 40: a scale that is not a power of two
    got = fast.chunked_attention(q, k, v, 40 ** -0.5)
    assert got.shape == (2, 3, 203, 40)
    assert (got - F.scaled_dot_product_attention(q, k, v)).abs().max().item() < 1e-5


def test_bf16_shifted_scores_keep_flash_attentions_accuracy(monkeypatch):
    """Scores up to ~20 (as in the UNet): rounding them to bf16 unshifted would cost ~8x the flash kernel's error;
    shifted by the row maxima, ours stays within 2x of it."""
    monkeypatch.setattr(fast, "SCORE_BLOCK", 1 << 16)
    q, k, v = (t.bfloat16() for t in _qkv(1, 2, 1024, 64, amp=5.0))
    exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
    assert (q.double() @ k.double().transpose(-1, -2) / 8).amax(-1).mean() > 15  # the regime that matters
    with torch.inference_mode():
        flash = (F.scaled_dot_product_attention(q, k, v).double() - exact).abs().mean().item()
        ours = (fast.chunked_attention(q, k, v, 64 ** -0.5).double() - exact).abs().mean().item()
        plain = (torch.softmax(q @ k.transpose(-1, -2) / 8, -1) @ v).double()
    unshifted = (plain - exact).abs().mean().item()
    assert ours < 2 * flash and unshifted > 4 * ours


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 0.03)])
def test_processor_matches_diffusers_on_unet_and_vae_attention(monkeypatch, dtype, tol):
    monkeypatch.setattr(fast, "SCORE_BLOCK", 1 << 14)
    torch.manual_seed(0)
    # the UNet's self-attention: 5 heads of 64 on [N,L,C] tokens (fp32 keeps the flash kernel there)
    unet_attn = Attention(320, heads=5, dim_head=64, bias=False, out_bias=True).to(dtype).eval()
    # the VAE's mid-block: one head of 512 on an image, group norm in front, residual added
    vae_attn = Attention(64, heads=1, dim_head=64, norm_num_groups=8, residual_connection=True, bias=True,
                         upcast_softmax=True, _from_deprecated_attn_block=True).to(dtype).eval()
    inputs = [(unet_attn, torch.randn(2, 150, 320, dtype=dtype)), (vae_attn, torch.randn(1, 64, 9, 13, dtype=dtype))]
    for attn, x in inputs:
        assert isinstance(attn.processor, AttnProcessor2_0)
        with torch.inference_mode():
            expected = attn(x).float()
            assert fast.patch_module(attn) == 1 and isinstance(attn.processor, fast.ChunkedAttnProcessor)
            got = attn(x).float()
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < tol
        with torch.enable_grad():  # autograd (training) takes diffusers' own processor, answer unchanged
            assert (attn(x).float() - expected).abs().max().item() < tol


def test_long_sequences_go_to_torchs_flash_kernel(monkeypatch):
    """Above CHUNKED_MAX_TOKENS the processor hands over to diffusers' (torch's flash kernel, measured faster there);
    below it the blocks run. The answer is the same either way."""
    monkeypatch.setattr(fast, "CHUNKED_MAX_TOKENS", 100)
    calls = []
    real = fast.chunked_attention
    monkeypatch.setattr(fast, "chunked_attention", lambda *a: calls.append(a[0].shape[2]) or real(*a))
    torch.manual_seed(0)
    attn = Attention(320, heads=5, dim_head=64, bias=False, out_bias=True).to(torch.bfloat16).eval()
    short, long = torch.randn(1, 90, 320, dtype=torch.bfloat16), torch.randn(1, 150, 320, dtype=torch.bfloat16)
    with torch.inference_mode():
        expected = attn(long).float()
        fast.patch_module(attn)
        attn(short)
        got = attn(long).float()
    assert calls == [90]  # the 150-token call never reached the blocks
    assert (got - expected).abs().max().item() == 0.0
