"""Lotus checkpoints (He et al., "Lotus: Diffusion-based Visual Foundation Model for High-quality Dense Prediction",
ICLR 2025; EnVision-Research/Lotus): a Stable Diffusion 2 UNet fine-tuned to predict the target's latent itself
(x0) in one step at t = 999, told the task by a class embedding. They run on Marigold's one path: the wrapper below
gives the UNet the inputs Lotus trained it on, and a one-step DDIM scheduler with ``prediction_type`` "sample"
returns that x0 unchanged.

What their pipeline does (pipeline.py, LotusGPipeline / LotusDPipeline; infer.py): the photo in -1..1 encoded,
``latent_dist.sample()`` times the scaling factor; the empty prompt; ``class_labels`` = the task switcher
``[sin 1, sin 0, cos 1, cos 0]`` (1, 0: dense prediction; 0, 1 would be reconstruction); one UNet call at t = 999;
the output decoded, ``(x / 2 + 0.5).clamp(0, 1)`` per channel, and for depth the mean of the three channels.
Lotus-G's UNet takes 8 channels, the photo's latent then Gaussian noise (drawn as Marigold draws it); Lotus-D's
takes the photo's latent alone (4 channels) and is deterministic. What we do differently, and why: the photo's
latent is the posterior's mode, as Marigold's (their ``sample()`` draws it from the unseeded global generator, so
two of their runs differ by the posterior's spread); resizing and padding are Marigold's (theirs: no padding, the
answer resized back with "nearest").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError

# The published checkpoints (EnVision-Research/Lotus README, "Model weights"): what each predicts. Their files do
# not say; a folder of another name must name it in its model_index.json ("prediction_type").
LOTUS_REPOS = {
    "jingheya/lotus-depth-g-v1-0": "depth",
    "jingheya/lotus-depth-d-v1-0": "depth",
    "jingheya/lotus-depth-g-v2-0-disparity": "disparity",
    "jingheya/lotus-depth-g-v2-1-disparity": "disparity",
    "jingheya/lotus-depth-d-v2-0-disparity": "disparity",
    "jingheya/lotus-normal-g-v1-1": "normals",
    "jingheya/lotus-normal-d-v1-1": "normals",
}
DEFAULT_PROCESSING_RESOLUTION = 768  # LotusGPipeline / LotusDPipeline.default_processing_resolution
# DDIM at one trailing step, t = 999 (the one timestep Lotus trains and infers at: train_lotus_*.py, infer.py
# --timestep 999), with the final alpha 1: the step returns the UNet's x0 exactly
SCHEDULER = {"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
             "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": True,
             "steps_offset": 0, "prediction_type": "sample", "timestep_spacing": "trailing"}


def lotus_kind(unet_config: dict[str, Any]) -> str | None:
    """"g" (8 input channels: photo latent + noise), "d" (4: the photo latent alone) for a Lotus UNet (a projection
    class embedding of 4 inputs, the task switcher), else None."""
    if unet_config.get("class_embed_type") != "projection" or \
            unet_config.get("projection_class_embeddings_input_dim") != 4:
        return None
    return {8: "g", 4: "d"}.get(unet_config.get("in_channels"))


def lotus_prediction_type(name: str, index: dict[str, Any]) -> str:
    """What a Lotus checkpoint predicts: its model_index.json's ``prediction_type`` (for a published repo, filled
    from :data:`LOTUS_REPOS`), else its name's ("...-normal-..." normals, "...-disparity" disparity, "...-depth-..."
    depth); refused when none says."""
    ptype = index.get("prediction_type")
    if ptype is None:
        low = name.lower()
        ptype = next((p for word, p in (("normal", "normals"), ("disparity", "disparity"), ("depth", "depth"))
                      if word in low), None)
    if ptype not in ("depth", "disparity", "normals"):
        raise CheckpointError(
            f"{name} is a Lotus checkpoint, but neither its name nor its model_index.json says what it predicts; "
            f'add "prediction_type": "depth", "disparity" or "normals" to its model_index.json.')
    return ptype


class LotusUNet(nn.Module):
    """A Lotus UNet behind Marigold's call: ``unet(cat([photo latent, noise]), t, encoder_hidden_states=...)``.
    Lotus-D drops the noise half; both get the task switcher as ``class_labels``. Everything else (config, dtype,
    attention processors) is the wrapped UNet's."""

    def __init__(self, unet: nn.Module, kind: str) -> None:
        super().__init__()
        if kind not in ("g", "d"):
            raise ValueError(f"kind must be 'g' or 'd'; got {kind!r}")
        self.inner = unet
        self.kind = kind
        switch = torch.tensor([1.0, 0.0])  # dense prediction (0, 1: reconstruction)
        self.register_buffer("task_embedding", torch.cat([torch.sin(switch), torch.cos(switch)])[None],
                             persistent=False)  # [1,4]

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("inner"), name)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor, *args, **kwargs):
        if self.kind == "d":
            sample = sample[:, :4]  # [B,4,h,w]: the photo's latent alone
        labels = self.task_embedding.to(sample.dtype).expand(sample.shape[0], -1)  # [B,4]
        return self.inner(sample, timestep, encoder_hidden_states, *args, class_labels=labels, **kwargs)
