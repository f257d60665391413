"""Snippet attention: the UNet's self-attention spanning the frames of a video snippet (RollingDepth).

RollingDepth (Ke et al., CVPR 2025, arXiv 2411.19189, Sec. 3.2) runs Marigold's UNet on snippets of n frames at
once. Its weights are the plain SD2 UNet's; what changes is that every self-attention layer (``attn1`` in each
transformer block) attends over the tokens of all n frames of a snippet, while everything else (convolutions,
norms, the cross-attention to the text embedding) stays per frame. The reference does this in its diffusers
fork by rearranging ``(b n) hw c -> b (n hw) c`` before the attention and back after it, in self-attention only
(prs-eth/RollingDepth, ``diffusers/src/diffusers/models/attention_processor.py``: ``AttnProcessor2_0.__call__`` and
``XFormersAttnProcessor.__call__``, the blocks marked "Modified in RollingDepth").

Here the same rearrangement wraps whatever processor a self-attention layer already has (diffusers' own, or
:class:`marigold.core.fast.ChunkedAttnProcessor`), so no copy of diffusers' attention code is needed::

    enable_snippet_attention(model.unet)          # once; idempotent
    with snippet_frames(model.unet, 3):           # batch [S·3, …] = S snippets of 3 consecutive frames
        out = model.unet(x, t, encoder_hidden_states=text)

Outside the ``with`` block (or with n = 1) the wrapped UNet is exactly the per-frame UNet: the wrapper calls
the inner processor with the same arguments. The tokens of a frame keep their order, so inside an attention
layer nothing but the key/value set changes; the wrapper is exact in fp32 and in bf16.

Autograd: the rearrangement is two reshapes, so gradients flow as through the reference. With gradient
checkpointing (``unet.enable_gradient_checkpointing()``) the forward pass is recomputed during ``backward()``;
run the backward inside the same ``with snippet_frames(...)`` block then, so the recomputation sees the same n.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

_STATE_ATTR = "_marigold_snippet_state"


class _SnippetState:
    """Frames per snippet, shared by all wrapped processors of one UNet (a plain attribute, not thread-local:
    autograd may recompute a checkpointed forward on another thread)."""

    def __init__(self) -> None:
        self.n = 1


class SnippetAttnProcessor:
    """Wraps a self-attention processor: with n > 1 frames per snippet, ``[S·n,L,C]`` tokens are attended as
    ``[S,n·L,C]`` (RollingDepth's ``(b n) hw c -> b (n hw) c``) and handed back as ``[S·n,L,C]``."""

    def __init__(self, inner, state: _SnippetState) -> None:
        self.inner = inner
        self.state = state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args, **kwargs) -> torch.Tensor:
        n = self.state.n
        if n == 1 or encoder_hidden_states is not None:  # per frame; cross-attention always (reference: same)
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        if hidden_states.ndim != 3 or attention_mask is not None or attn.group_norm is not None \
                or attn.spatial_norm is not None:
            # a group norm or spatial norm would mix the frames' statistics once they share a batch row
            raise ValueError("snippet attention covers token self-attention without masks or norms (the UNet's "
                             f"attn1); got input of shape {tuple(hidden_states.shape)}"
                             f"{', a mask' if attention_mask is not None else ''}"
                             f"{', a group norm' if attn.group_norm is not None else ''}.")
        b, length, c = hidden_states.shape
        if b % n:
            raise ValueError(f"snippet attention with {n} frames per snippet needs a batch that is a multiple of "
                             f"{n}; the UNet got a batch of {b}.")
        x = hidden_states.reshape(b // n, n * length, c)  # [S,n·L,C]: frame-major, as (b n) hw c -> b (n hw) c
        out = self.inner(attn, x, None, None, temb, *args, **kwargs)  # [S,n·L,C']
        return out.reshape(b, length, out.shape[-1])  # [S·n,L,C']


def _self_attentions(unet: torch.nn.Module):
    from diffusers.models.attention_processor import Attention

    for mod in unet.modules():
        if isinstance(mod, Attention) and not mod.is_cross_attention:
            yield mod


def enable_snippet_attention(unet: torch.nn.Module) -> None:
    """Wrap every self-attention processor of ``unet`` with :class:`SnippetAttnProcessor` (idempotent).

    Until :func:`snippet_frames` says otherwise the UNet computes exactly what it computed before. Processors
    set later with ``unet.set_attn_processor`` replace the wrappers; call this again afterwards.
    """
    state = getattr(unet, _STATE_ATTR, None)
    if state is None:
        state = _SnippetState()
        setattr(unet, _STATE_ATTR, state)
    for mod in _self_attentions(unet):
        proc = mod.processor
        if isinstance(proc, SnippetAttnProcessor):
            if proc.state is state:
                continue
            proc = proc.inner  # wrapped for another UNet (a copy): rewrap for this one
        # assigned directly: set_processor would also drop diffusers' cached processor lists, which is harmless,
        # but it logs when the module is in training mode
        mod.processor = SnippetAttnProcessor(proc, state)


def snippet_attention_enabled(unet: torch.nn.Module) -> bool:
    """True when every self-attention of ``unet`` is wrapped (``enable_snippet_attention`` ran and stuck)."""
    state = getattr(unet, _STATE_ATTR, None)
    mods = list(_self_attentions(unet))
    return state is not None and bool(mods) and all(
        isinstance(m.processor, SnippetAttnProcessor) and m.processor.state is state for m in mods)


@contextmanager
def snippet_frames(unet: torch.nn.Module, n: int) -> Iterator[None]:
    """While inside, the UNet reads its batch ``[S·n,…]`` as S snippets of n consecutive frames whose
    self-attention spans all n frames' tokens. Nests; restores the previous n on exit."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"frames per snippet must be a positive integer; got {n!r}.")
    if not snippet_attention_enabled(unet):
        raise ValueError("this UNet's self-attention is not snippet-aware: call "
                         "marigold.core.snippet.enable_snippet_attention(unet) first (again after set_attn_processor).")
    state: _SnippetState = getattr(unet, _STATE_ATTR)
    previous = state.n
    state.n = n
    try:
        yield
    finally:
        state.n = previous
