"""The loaded model: :class:`MarigoldModel`, the parts of a Marigold checkpoint ready for prediction (UNet, VAE,
scheduler config, empty-text embedding, the checkpoint's defaults and its modality entry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .devices import resolve_device, resolve_dtype
from .modality import Modality, for_checkpoint


@dataclass
class MarigoldModel:
    """The loaded parts of a Marigold checkpoint, ready for :mod:`marigold.predict`."""

    path: Path
    task: str  # "depth" | "normals" | "intrinsics" | "segmentation"
    unet: torch.nn.Module
    vae: torch.nn.Module
    scheduler_config: dict[str, Any]
    empty_text_embedding: torch.Tensor  # [1,T,D] float32, on the CPU
    prediction_type: str = "depth"  # "depth" | "disparity" | "normals" | "intrinsics"
    default_denoising_steps: int | None = None
    default_processing_resolution: int | None = None
    scale_invariant: bool = True
    shift_invariant: bool = True
    use_full_z_range: bool = True
    target_properties: dict[str, Any] | None = None
    video_model: bool = False  # a RollingDepth checkpoint: frames in snippets, self-attention across them
    lotus: str | None = None  # a Lotus checkpoint: "g" or "d" (marigold.core.lotus); one step, its UNet wrapped
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    modality: Modality | None = None  # the entry of marigold.modality; found from the fields above when None
    # prompt models only: the prompts' embeddings computed so far, ``[1,77,D]`` float32 on the CPU (see marigold.prompts)
    prompt_embeddings: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    cache_dir: Path | None = None  # where embeddings are cached when the checkpoint folder is read-only

    def __post_init__(self) -> None:
        if self.modality is None:
            self.modality = for_checkpoint({"prediction_type": self.prediction_type,
                                            "target_properties": self.target_properties}, self.task)

    @property
    def takes_prompt(self) -> bool:
        """True for models conditioned on a text prompt (segmentation); the others take the empty prompt only."""
        return self.modality.conditioning == "prompt"

    @property
    def n_targets(self) -> int:
        return self.modality.n_targets

    @property
    def target_names(self) -> list[str]:
        # depth-like models name their one target after the task (what Prediction.target_names always said)
        return [self.task] if self.modality.task in ("depth", "normals") else self.modality.target_names

    @property
    def vae_scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def make_scheduler(self):
        """A fresh scheduler per call, so that concurrent predictions never share step state."""
        import diffusers

        name = self.scheduler_config.get("_class_name", "DDIMScheduler")
        cls = getattr(diffusers, name, None)
        if cls is None:
            raise CheckpointError(f"{self.path}/scheduler: unknown scheduler class {name!r}.")
        return cls.from_config(self.scheduler_config)

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> "MarigoldModel":
        """Move (and cast) the UNet and VAE in place; returns self."""
        device = resolve_device(device) if device is not None else self.device
        dtype = resolve_dtype(dtype, device) if dtype is not None else self.dtype
        for part in (self.unet, self.vae):
            # casting only when needed keeps diffusers from warning about modules it would keep in fp32
            part.to(device=device, dtype=dtype) if part.dtype != dtype else part.to(device=device)
        self.device, self.dtype = device, dtype
        return self

    def __repr__(self) -> str:
        return f"MarigoldModel({str(self.path)!r}, task={self.task!r}, device={self.device}, dtype={self.dtype})"
