r"""Every hyper-parameter in one nested mapping: defaults here, then a YAML/TOML file, then the command line.

    python -m train.finetune --config train/configs/marigold_depth.yaml --base stabilityai/stable-diffusion-2 \
        --data hypersim:/data/hypersim@0.9 --data vkitti:/data/vkitti@0.1 --output runs/depth \
        --set ema.enabled=true --set lr=2e-5

Named flags cover the common keys; ``--set dotted.key=value`` (value parsed as YAML) reaches any of them.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from marigold.optional import require

DEFAULTS: dict[str, Any] = {
    # an entry of marigold.modality: depth | normals | iid-appearance | iid-lighting | segmentation (text-grounded,
    # Cocogold: docs/segmentation.md) | ...
    "task": "depth",
    "mode": "diffusion",  # diffusion (Marigold) | e2e (Garcia et al. 2024) | snippet (RollingDepth, video)
    # snippet mode (RollingDepth, Ke et al. 2024): n frames per snippet at a random dilation 1..max_dilation,
    # one inverse-depth normalisation per snippet, cross-frame self-attention; objective: diffusion | e2e;
    # joint: false samples the same snippets but treats every frame alone (normalisation, attention, noise,
    # loss alignment): the single-frame control that sees exactly the snippet model's frames
    "snippet": {"frames": 3, "max_dilation": 10, "objective": "diffusion", "space": "disparity", "joint": True},
    "base": None,
    "output": None,
    "data": ["synthetic"],
    "resolution": None,  # longest side of training images (None: each data set's native size)
    "seed": 2024,
    "max_steps": 30000,
    "batch_size": 2,  # per process and micro-step
    "grad_accum": 16,  # micro-steps per optimizer step (Marigold: effective batch 32 = 2 × 16)
    "lr": 3.0e-5,
    "lr_schedule": {"warmup_steps": 100, "decay_steps": 25000, "final_ratio": 0.01},
    "optimizer": {"beta1": 0.9, "beta2": 0.999, "eps": 1.0e-8, "weight_decay": 0.0, "max_grad_norm": None},
    "noise_scheduler": {"num_train_timesteps": 1000, "prediction_type": "v_prediction",
                        "rescale_betas_zero_snr": False, "beta_start": None, "beta_end": None,
                        "beta_schedule": None},
    "multi_res_noise": {"enabled": True, "strength": 0.9, "annealed": True, "downscale_strategy": "original"},
    # grad_weight: depth-like targets add that much multi-scale gradient matching (train.losses.gradient_matching)
    # to the affine-invariant L1: sharper depth steps (MiDaS uses 0.5)
    # target_weights: {target name: weight} for the MSE of tasks with several fixed-range targets (intrinsics); a
    # missing name weighs 1, the weights are scaled to mean 1 (train.losses.weighted_target_mse)
    "e2e": {"timestep": 999, "noise": "gaussian", "loss": "affine_l1", "grad_weight": 0.0, "target_weights": None},
    # --task segmentation: target "painted" (the image with the object white, Cocogold's) or "binary" (the mask as a
    # ±1 image, Cocogold's first attempt); classes: the data sets' class filter (None: every class they have)
    "segmentation": {"target": "painted", "classes": None},
    "flip_p": 0.5,
    # image augmentations (train.data.common.augment_rgb): None, or prs-eth's normals recipe (configs/
    # marigold_normals.yaml): {color_jitter_p, gaussian_blur_p, motion_blur_p, gaussian_blur_sigma, ...}
    "augment": None,
    "ema": {"enabled": False, "decay": 0.999},
    "mixed_precision": "no",  # no | fp16 | bf16
    "gradient_checkpointing": False,
    "num_workers": 2,
    "checkpoint_every": 500,
    "keep_last": 3,
    "log_every": 10,
    "validation": {"every": 0, "data": "synthetic", "split": "val", "num_images": 4, "steps": 1,
                   "ensemble_size": 1, "processing_resolution": 0, "texture": "photo"},  # texture: photo | flat
    "export": {"default_denoising_steps": None, "default_processing_resolution": 768, "text_encoder": True},
    "cache_dir": None,
    "resume": False,
    "progress": True,
    "dump_rank_weights": False,
    "debug_step_sleep": 0.0,  # tests: seconds to sleep after each step, so a test can kill a run mid-way  # tests: every process writes OUTPUT/rank-R-unet.safetensors at the end
}

FLAGS = {  # --flag → dotted key
    "base": "base", "data": "data", "output": "output", "max_steps": "max_steps", "batch_size": "batch_size",
    "resolution": "resolution", "seed": "seed", "mode": "mode", "task": "task", "grad_accum": "grad_accum",
    "lr": "lr", "mixed_precision": "mixed_precision", "checkpoint_every": "checkpoint_every",
    "keep_last": "keep_last", "num_workers": "num_workers",
}


def merge(base: dict, over: dict, where: str = "") -> dict:
    """Deep-merge ``over`` into a copy of ``base``; unknown keys are an error (a typo must not pass silently)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k not in base:
            raise KeyError(f"unknown config key {where + k!r}; known: {', '.join(sorted(base))}")
        if isinstance(base[k], dict) and isinstance(v, dict):
            out[k] = merge(base[k], v, f"{where}{k}.")
        else:
            out[k] = v
    return out


def load_file(path: str | Path) -> dict:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        import tomllib
        return tomllib.loads(text)
    return require("yaml", "train", "Reading a YAML config").safe_load(text) or {}


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = cfg
    for k in keys[:-1]:
        if k not in node or not isinstance(node[k], dict):
            raise KeyError(f"unknown config key {dotted!r}")
        node = node[k]
    if keys[-1] not in node:
        raise KeyError(f"unknown config key {dotted!r}")
    node[keys[-1]] = value


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m train.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", default=[], help="YAML or TOML file(s), later ones win")
    ap.add_argument("--base", help="Stable Diffusion 2 (4-channel UNet: widened) or Marigold (8-channel) checkpoint")
    ap.add_argument("--data", action="append", help="synthetic | hypersim:PATH | vkitti:PATH | folder:PATH "
                    "(snippet mode: synthetic-video | video-folder:PATH | tartanair:PATH | ...), optionally @PROB; "
                    "repeat to mix")
    ap.add_argument("--output", help="run folder: checkpoints/, final/, tensorboard/")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--grad-accum", type=int)
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--mode", choices=("diffusion", "e2e", "snippet"))
    ap.add_argument("--task", help="the modality to train (marigold.modality): depth, normals, iid-appearance, "
                    "iid-lighting, segmentation, or one registered by your code")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"))
    ap.add_argument("--checkpoint-every", type=int)
    ap.add_argument("--keep-last", type=int)
    ap.add_argument("--num-workers", type=int)
    ap.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, dotted")
    return ap


def parse(argv: list[str] | None = None) -> dict:
    a = parser().parse_args(argv)
    cfg = copy.deepcopy(DEFAULTS)
    for f in a.config:
        cfg = merge(cfg, load_file(f))
    for key in ("lr",):  # YAML 1.1 reads "3e-5" (no dot) as a string
        if isinstance(cfg[key], str):
            cfg[key] = float(cfg[key])
    for flag, key in FLAGS.items():
        v = getattr(a, flag)
        if v is not None:
            set_dotted(cfg, key, v)
    for item in a.set:
        k, sep, v = item.partition("=")
        if not sep:
            raise SystemExit(f"--set needs KEY=VALUE; got {item!r}")
        set_dotted(cfg, k.strip(), _value(v))
    from marigold.core.modality import MODALITIES

    if cfg["task"] not in MODALITIES:
        raise SystemExit(f"--task {cfg['task']!r} is not a modality; use one of {', '.join(MODALITIES)}.")
    cfg["resume"] = bool(a.resume or cfg["resume"])
    cfg["progress"] = cfg["progress"] and not a.no_progress
    if not cfg["base"]:
        raise SystemExit("--base is required (a Stable Diffusion 2 or Marigold checkpoint folder or repo id)")
    if not cfg["output"]:
        raise SystemExit("--output is required")
    if isinstance(cfg["data"], str):
        cfg["data"] = [cfg["data"]]
    if cfg["mode"] == "snippet" and cfg["data"] == ["synthetic"]:
        cfg["data"] = ["synthetic-video"]  # the default set, as a video
    return cfg


def _value(text: str):
    """A --set value: YAML, plus the floats YAML 1.1 reads as strings ("1e-3")."""
    v = require("yaml", "train", "--set values").safe_load(text)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def dumps(cfg: dict) -> str:
    return json.dumps(cfg, indent=2, sort_keys=True, default=str)
