"""Reading and checking a checkpoint folder's configs without loading weights: its task, modality, UNet channels
and the defaults ``load`` reads (:func:`inspect`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .files import published_repo, read_json
from .lotus import DEFAULT_PROCESSING_RESOLUTION as LOTUS_DEFAULT_RESOLUTION
from .lotus import SCHEDULER as LOTUS_SCHEDULER
from .lotus import lotus_kind, lotus_prediction_type
from .modality import for_checkpoint
from .published import PIPELINE_TASKS, PUBLISHED_FACTS, UNSUPPORTED, UNSUPPORTED_CLASSES, VIDEO_MODELS


def inspect(folder: str | os.PathLike, repo_id: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint folder's configs without loading weights. Returns a description.

    ``repo_id``: the hub repo the folder came from (found from the hub cache layout when not given); the facts
    in :data:`PUBLISHED_FACTS` fill what its model_index.json leaves out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"Checkpoint folder {folder} does not exist.")
    index = read_json(folder / "model_index.json")
    facts = PUBLISHED_FACTS.get(repo_id or published_repo(folder) or "", {})
    index = {**{k: v for k, v in facts.items() if k != "task"}, **{k: v for k, v in index.items() if v is not None}}
    cls = index.get("_class_name", "")
    if cls in UNSUPPORTED_CLASSES:
        raise CheckpointError(f"{folder}: " + UNSUPPORTED[UNSUPPORTED_CLASSES[cls]])
    lotus = _inspect_lotus(folder, index, repo_id or published_repo(folder))
    if lotus is not None:
        return lotus
    task = PIPELINE_TASKS.get(cls) or facts.get("task")
    named = index.get("modality")  # a checkpoint our trainer wrote names its entry of marigold.modality
    if named:
        task = for_checkpoint(index).task
    if task is None:
        ptype = index.get("prediction_type")
        task = {"depth": "depth", "disparity": "depth", "normals": "normals", "intrinsics": "intrinsics",
                "segmentation": "segmentation"}.get(ptype)
    if task is None:
        raise CheckpointError(
            f"{folder} is a {cls or 'unknown'} checkpoint, not a Marigold one (model_index.json names no Marigold "
            f"pipeline). To make a Marigold model from a Stable Diffusion 2 checkpoint, fine-tune it with "
            f"`python -m train.finetune --base {folder}`."
        )
    unet_cfg = read_json(folder / "unet" / "config.json")
    read_json(folder / "vae" / "config.json")
    sched = read_json(folder / "scheduler" / "scheduler_config.json")
    video = VIDEO_MODELS.get(cls)
    modality = for_checkpoint({**(video or {}), **index}, task)
    n_targets = modality.n_targets
    want = modality.unet_in_channels
    got = unet_cfg.get("in_channels")
    if got != want:
        hint = (" This is a Stable Diffusion UNet, which sees only the noisy latent; fine-tune it into a Marigold "
                "model with `python -m train.finetune --base …`." if got == 4 else "")
        raise CheckpointError(f"{folder}/unet has {got} input channels, but a Marigold {task} model needs {want} "
                              f"(image latent + {n_targets} target latent{'s' if n_targets > 1 else ''}).{hint}")
    if unet_cfg.get("out_channels", 4) != modality.unet_out_channels:
        raise CheckpointError(f"{folder}/unet has {unet_cfg.get('out_channels')} output channels, but a Marigold "
                              f"{modality.name} model needs {modality.unet_out_channels} (4 per target: "
                              f"{', '.join(modality.target_names)}).")
    return {"folder": folder, "index": index, "task": task, "unet": unet_cfg, "scheduler": sched,
            "modality": modality, "n_targets": n_targets, "video_model": video is not None, "lotus": None,
            # what load() reads from model_index.json: a video model's defaults stand in for the missing keys
            "config": {**(video or {}), **{k: v for k, v in index.items() if not k.startswith("_")}}}


def _inspect_lotus(folder: Path, index: dict[str, Any], repo_id: str | None) -> dict[str, Any] | None:
    """A Lotus checkpoint's description (see :mod:`marigold.core.lotus`), or None when the UNet is not Lotus's."""
    unet_path = folder / "unet" / "config.json"
    if not unet_path.is_file():
        return None
    unet_cfg = read_json(unet_path)
    kind = lotus_kind(unet_cfg)
    if kind is None:
        return None
    ptype = lotus_prediction_type(repo_id.split("/")[-1] if repo_id else folder.name, index)
    task = "normals" if ptype == "normals" else "depth"
    if unet_cfg.get("out_channels", 4) != 4:
        raise CheckpointError(f"{folder}/unet has {unet_cfg.get('out_channels')} output channels; a Lotus {task} "
                              f"model has 4 (one latent).")
    read_json(folder / "vae" / "config.json")
    read_json(folder / "scheduler" / "scheduler_config.json")  # present and readable; Lotus runs its own (below)
    config = {"default_denoising_steps": 1, "default_processing_resolution": LOTUS_DEFAULT_RESOLUTION,
              **{k: v for k, v in index.items() if not k.startswith("_")}, "prediction_type": ptype}
    modality = for_checkpoint(config, task)
    return {"folder": folder, "index": index, "task": task, "unet": unet_cfg, "scheduler": dict(LOTUS_SCHEDULER),
            "modality": modality, "n_targets": 1, "video_model": False, "lotus": kind, "config": config}
