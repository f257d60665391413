"""marigold.core.snippet: self-attention spanning a snippet's frames, as RollingDepth's diffusers fork does it
((b n) hw c -> b (n hw) c around self-attention only; prs-eth/RollingDepth diffusers/src/diffusers/models/attention_processor.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from marigold.core import fast
from marigold.core.snippet import SnippetAttnProcessor, enable_snippet_attention, snippet_attention_enabled, \
    snippet_frames


def _attention(dtype=torch.float32) -> Attention:
    torch.manual_seed(0)
    return Attention(48, heads=3, dim_head=16, bias=False, out_bias=True).to(dtype).eval()  # as the UNet's attn1


def _reference(attn: Attention, x: torch.Tensor, n: int) -> torch.Tensor:
    """The plain definition: concatenate the n frames' tokens, one SDPA over them, split back per frame."""
    b, length, c = x.shape
    tokens = x.reshape(b // n, n * length, c)  # [S,n·L,C]
    h = attn.heads
    q, k, v = (p(tokens).view(b // n, n * length, h, -1).transpose(1, 2)
               for p in (attn.to_q, attn.to_k, attn.to_v))  # [S,h,n·L,d]
    y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b // n, n * length, -1)  # [S,n·L,C]
    return attn.to_out[0](y).reshape(b, length, -1)  # [S·n,L,C]


def _tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)  # the tiny layout of shared/tools/make_marigold_checkpoint.py (8 input channels)
    return UNet2DConditionModel(
        sample_size=8, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        attention_head_dim=(2, 4), cross_attention_dim=32, use_linear_projection=True, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).eval().requires_grad_(False)


def _unet_inputs(batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 8, 6, 8, generator=g)  # [B,8,h,w]
    text = torch.randn(1, 2, 32, generator=g).expand(batch, -1, -1)  # [B,2,D]
    return x, text


@pytest.mark.parametrize("n", [1, 2, 3])
def test_attention_module_equals_concatenated_tokens(n):
    attn = _attention()
    x = torch.randn(2 * n, 35, 48)  # two snippets of n frames, 35 tokens each
    expected_per_frame = attn(x)
    enable_snippet_attention_on = torch.nn.Sequential(attn)  # a container holding it, as the UNet does
    enable_snippet_attention(enable_snippet_attention_on)
    assert isinstance(attn.processor, SnippetAttnProcessor)
    with snippet_frames(enable_snippet_attention_on, n):
        got = attn(x)
    ref = _reference(attn, x, n)
    assert got.shape == x.shape
    assert (got - ref).abs().max().item() <= 1e-6
    if n == 1:
        assert torch.equal(got, expected_per_frame)  # exactly the per-frame module
    else:
        assert (got - expected_per_frame).abs().max().item() > 1e-3  # the frames really see each other
    assert torch.equal(attn(x), expected_per_frame)  # outside the block: per frame again


def test_cross_attention_stays_per_frame():
    torch.manual_seed(0)
    cross = Attention(48, cross_attention_dim=32, heads=3, dim_head=16).eval()
    holder = torch.nn.Sequential(cross)
    enable_snippet_attention(holder)
    assert not isinstance(cross.processor, SnippetAttnProcessor)  # only self-attention is wrapped
    with pytest.raises(ValueError, match="not snippet-aware"):  # nothing to switch in this container
        with snippet_frames(holder, 3):
            pass
    holder = torch.nn.Sequential(_attention(), cross)
    enable_snippet_attention(holder)
    x, text = torch.randn(6, 35, 48), torch.randn(6, 2, 32)
    expected = cross(x, encoder_hidden_states=text)
    with snippet_frames(holder, 3):
        assert torch.equal(cross(x, encoder_hidden_states=text), expected)


def test_autograd_gradients_equal_the_reference():
    attn = _attention()
    holder = torch.nn.Sequential(attn)
    enable_snippet_attention(holder)
    x = torch.randn(6, 20, 48)
    weight = torch.randn(6, 20, 48)
    grads = []
    for use_wrapper in (True, False):
        attn.zero_grad()
        xi = x.clone().requires_grad_(True)
        if use_wrapper:
            with snippet_frames(holder, 3):
                y = attn(xi)
        else:
            y = _reference(attn, xi, 3)
        (y * weight).sum().backward()
        grads.append((xi.grad.clone(), attn.to_q.weight.grad.clone(), attn.to_v.weight.grad.clone()))
    for a, b in zip(*grads):
        assert a.abs().max() > 0
        assert (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def test_inference_mode_with_fast_chunked_processor_fp32_and_bf16(monkeypatch):
    monkeypatch.setattr(fast, "SCORE_BLOCK", 1 << 12)  # several blocks per row set
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 0.03)):
        attn = Attention(48, heads=1, dim_head=48, bias=False, out_bias=True).to(dtype).eval()  # 1 head: fast in fp32
        holder = torch.nn.Sequential(attn)
        x = torch.randn(6, 40, 48, dtype=dtype)
        with torch.inference_mode():
            assert fast.patch_module(holder) == 1 and isinstance(attn.processor, fast.ChunkedAttnProcessor)
            per_frame = attn(x)
            enable_snippet_attention(holder)
            assert isinstance(attn.processor.inner, fast.ChunkedAttnProcessor)
            assert torch.equal(attn(x), per_frame)  # n = 1: bitwise the fast path
            with snippet_frames(holder, 3):
                got = attn(x).float()
            ref = _reference(attn, x.float(), 3) if dtype == torch.float32 else None
        if ref is None:
            attn32 = attn.float()
            ref = _reference(attn32, x.float(), 3)
        assert (got - ref).abs().max().item() <= tol
        assert (got - per_frame.float()).abs().max().item() > 1e-3


def test_enable_is_idempotent_and_validates():
    unet = _tiny_unet()
    enable_snippet_attention(unet)
    enable_snippet_attention(unet)
    selfs = [m for m in unet.modules() if isinstance(m, Attention) and not m.is_cross_attention]
    crosses = [m for m in unet.modules() if isinstance(m, Attention) and m.is_cross_attention]
    assert selfs and crosses and snippet_attention_enabled(unet)
    assert all(isinstance(m.processor.inner, AttnProcessor2_0) for m in selfs)  # wrapped once
    assert all(isinstance(m.processor, AttnProcessor2_0) for m in crosses)
    with pytest.raises(ValueError, match="positive integer"):
        with snippet_frames(unet, 0):
            pass
    x, text = _unet_inputs(4)
    with pytest.raises(ValueError, match="multiple of 3"), snippet_frames(unet, 3):
        unet(x, 999, encoder_hidden_states=text)
    with snippet_frames(unet, 3):
        with snippet_frames(unet, 2):
            pass
        assert unet._marigold_snippet_state.n == 3  # nesting restores
    assert unet._marigold_snippet_state.n == 1


def test_whole_unet_length_one_is_the_per_frame_unet_and_frames_interact():
    unet = _tiny_unet()
    x, text = _unet_inputs(3)
    with torch.inference_mode():
        plain = unet(x, 999, encoder_hidden_states=text).sample  # [3,4,h,w]
        enable_snippet_attention(unet)
        assert torch.equal(unet(x, 999, encoder_hidden_states=text).sample, plain)
        with snippet_frames(unet, 1):
            assert torch.equal(unet(x, 999, encoder_hidden_states=text).sample, plain)
        x2 = x.clone()
        x2[1] += torch.randn_like(x2[1])  # change frame 1 only
        with snippet_frames(unet, 1):  # per frame: frame 0 cannot see frame 1
            assert torch.equal(unet(x2, 999, encoder_hidden_states=text).sample[0], plain[0])
        with snippet_frames(unet, 3):
            a = unet(x, 999, encoder_hidden_states=text).sample
            b = unet(x2, 999, encoder_hidden_states=text).sample
        assert (a[0] - plain[0]).abs().max() > 1e-4  # frame 0 now attends to frames 1 and 2
        assert (b[0] - a[0]).abs().max() > 1e-4  # and follows what frame 1 shows
        # n identical frames: attending over n copies of the same keys is the per-frame softmax
        same = x[:1].expand(3, -1, -1, -1).contiguous()
        with snippet_frames(unet, 3):
            c = unet(same, 999, encoder_hidden_states=text).sample
        assert (c - plain[:1]).abs().max().item() < 1e-5


def test_whole_unet_backward_with_gradient_checkpointing():
    unet = _tiny_unet()
    enable_snippet_attention(unet)
    x, text = _unet_inputs(6)
    grads = []
    for checkpointing in (False, True):
        unet.train()  # diffusers checkpoints only in training mode
        unet.enable_gradient_checkpointing() if checkpointing else unet.disable_gradient_checkpointing()
        unet.requires_grad_(True)
        unet.zero_grad(set_to_none=True)
        with snippet_frames(unet, 3):  # backward inside: the recomputed forward sees n = 3 too
            unet(x, 999, encoder_hidden_states=text).sample.square().mean().backward()
        grads.append([p.grad.clone() for p in unet.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    worst = max((a - b).abs().max().item() / (b.abs().max().item() + 1e-12) for a, b in zip(*grads))
    assert worst < 1e-5
