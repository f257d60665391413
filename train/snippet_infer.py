"""Run a live (or loaded) UNet on snippets of frames: RollingDepth's snippet step, for validation and benchmarks.

Each snippet of n frames is predicted jointly (self-attention across its frames, :mod:`marigold.core.snippet`) from
one shared noise, as RollingDepth's initial snippet inference does (reference ``rollingdepth_pipeline.py``,
``init_snippet_infer``: one noise repeated over the frames, ``init_infer_steps`` DDIM steps, 1 by default). The
output is the decoded value per frame, in the model's space and NOT normalised per frame, so that a snippet's
frames keep the scale they share. With n = 1 this is the per-frame image path.
"""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def predict_snippets(unet: torch.nn.Module, vae: torch.nn.Module, text: torch.Tensor, scheduler_config: dict,
                     rgb: torch.Tensor, *, steps: int = 1, seed: int = 0) -> torch.Tensor:
    """``rgb`` ``[S,n,3,H,W]`` in 0..1 (H, W multiples of 8) → ``[S,n,H,W]`` decoded values (channel mean)."""
    from diffusers import DDIMScheduler

    from marigold.core.snippet import enable_snippet_attention, snippet_frames

    s, n, _, h, w = rgb.shape
    dev = next(unet.parameters()).device
    dt = next(unet.parameters()).dtype
    sf = float(vae.config.scaling_factor)
    enable_snippet_attention(unet)
    x = rgb.reshape(s * n, 3, h, w).to(dev, dt) * 2 - 1  # [S·n,3,H,W]
    lat = vae.encode(x).latent_dist.mode() * sf  # [S·n,4,h,w]
    gen = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn((s, 1) + tuple(lat.shape[1:]), generator=gen).repeat(1, n, 1, 1, 1)  # [S,n,4,h,w]: shared
    y = noise.reshape(lat.shape).to(dev, dt)  # [S·n,4,h,w]
    sched = DDIMScheduler.from_config(scheduler_config)
    sched.set_timesteps(steps)
    emb = text.to(dev, dt).expand(s * n, -1, -1)  # [S·n,T,D]
    with snippet_frames(unet, n):
        for t in sched.timesteps:
            pred = unet(torch.cat([lat, y], 1), t.to(dev), encoder_hidden_states=emb).sample  # [S·n,4,h,w]
            y = sched.step(pred, t, y).prev_sample
    out = vae.decode((y / sf).to(dt)).sample.float().mean(1)  # [S·n,H,W]
    return out.reshape(s, n, h, w).cpu()


def snippet_clips(num_frames: int, n: int, dilation: int, count: int) -> list[list[int]]:
    """``count`` evenly spread snippets ``[k, k+g, …]`` of a video of ``num_frames`` frames."""
    span = (n - 1) * dilation
    if span >= num_frames:
        raise ValueError(f"a snippet of {n} frames at dilation {dilation} needs more than {num_frames} frames")
    starts = np.linspace(0, num_frames - 1 - span, count).round().astype(int)
    return [[int(k) + i * dilation for i in range(n)] for k in starts]
