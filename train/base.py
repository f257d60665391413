"""The starting point of a fine-tune, and the checkpoint it ends in.

``load_base`` takes a Stable Diffusion 2 checkpoint (its UNet sees 4 latent channels: the first conv is widened
to 8 by duplicating its weights and halving them, so that at the start the UNet's response to an image+target
pair equals its response to the target alone, as the Marigold paper does, Sec. 3.2) or a Marigold checkpoint
(8 channels: training continues). The text encoder is never kept: the empty-prompt embedding comes from the
core library's cache (``marigold.core.checkpoint.empty_text_embedding``).

``export_marigold`` writes a complete diffusers-layout Marigold folder that ``marigold.load`` and diffusers'
``MarigoldDepthPipeline`` / ``MarigoldNormalsPipeline`` load as they are.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from marigold.core import checkpoint as ckpt
from marigold.errors import CheckpointError
from marigold.core.modality import Modality, for_checkpoint
from marigold.core.modality import get as get_modality

SD2_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


@dataclass
class Base:
    folder: Path
    unet: torch.nn.Module  # 8 input channels, fp32, trainable
    vae: torch.nn.Module  # frozen
    empty_text_embedding: torch.Tensor  # [1,T,D] fp32
    betas: dict[str, Any]  # the base's noise schedule (beta_start, beta_end, beta_schedule, num_train_timesteps)
    kind: str  # "sd2" (widened) | "marigold" (continued)
    index: dict[str, Any]


def widen_conv_in(unet: torch.nn.Module, copies: int = 2) -> torch.nn.Module:
    """Replace ``unet.conv_in`` (C_in channels) by one with ``copies·C_in``: weights repeated and divided by
    ``copies``, bias unchanged. Updates the config so the UNet saves with the new channel count."""
    old = unet.conv_in
    new = torch.nn.Conv2d(old.in_channels * copies, old.out_channels, old.kernel_size, old.stride, old.padding,
                          dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight.repeat(1, copies, 1, 1) / copies)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=old.in_channels * copies)
    return unet


def widen_conv_out(unet: torch.nn.Module, copies: int) -> torch.nn.Module:
    """Replace ``unet.conv_out`` (4 channels) by one with ``4·copies``: weights and bias repeated, so that each
    target's latent starts from the base's prediction (prs-eth's multi-target IID models)."""
    old = unet.conv_out
    if copies == 1:
        return unet
    new = torch.nn.Conv2d(old.in_channels, old.out_channels * copies, old.kernel_size, old.stride, old.padding,
                          dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight.repeat(copies, 1, 1, 1))
        if old.bias is not None:
            new.bias.copy_(old.bias.repeat(copies))
    unet.conv_out = new
    unet.register_to_config(out_channels=old.out_channels * copies)
    return unet


def _read(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _base_modality(folder: Path, index: dict) -> Modality | None:
    """The modality a Marigold base checkpoint was trained for (None: not a Marigold folder)."""
    if not (index.get("modality") or index.get("_class_name") in ckpt.PIPELINE_TASKS):
        return None
    try:
        return for_checkpoint(index)
    except CheckpointError:
        return None


def load_base(source: str | os.PathLike, task: str | Modality = "depth",
              cache_dir: str | os.PathLike | None = None) -> Base:
    """The UNet, VAE and empty-prompt embedding to fine-tune into a ``task`` model (an entry of
    :mod:`marigold.modality`): SD2 is widened to the entry's channels, a Marigold checkpoint of the same
    modality is continued; anything else is refused with one line naming ``--task`` or the folder."""
    m = get_modality(task)
    folder = ckpt.resolve(source, cache_dir)
    index = _read(folder / "model_index.json")
    unet_cfg = _read(folder / "unet" / "config.json")
    channels, out_channels = unet_cfg.get("in_channels"), unet_cfg.get("out_channels", 4)
    from marigold.core.lotus import lotus_kind

    if lotus_kind(unet_cfg):  # its UNet wants the task switcher and predicts x0 at t = 999 alone
        raise CheckpointError(f"{folder} is a Lotus checkpoint; the trainer fine-tunes Stable Diffusion 2 or "
                              f"Marigold checkpoints (--base stabilityai/stable-diffusion-2 or prs-eth/marigold-*).")
    if channels == 4 and out_channels == 4:
        kind = "sd2"
    else:
        kind = "marigold"
        base_m = _base_modality(folder, index)
        if base_m is not None and base_m.name != m.name and base_m.target_names != m.target_names:
            raise CheckpointError(f"{folder} is a Marigold {base_m.name} checkpoint; continuing it as a {m.name} "
                                  f"model would discard what it learned. Start from Stable Diffusion 2, or pass "
                                  f"--task {base_m.name}.")
        if (channels, out_channels) != (m.unet_in_channels, m.unet_out_channels):
            raise CheckpointError(f"{folder}/unet has {channels} input and {out_channels} output channels; --task "
                                  f"{m.name} starts from a Stable Diffusion 2 UNet (4 and 4) or continues a "
                                  f"Marigold {m.name} UNet ({m.unet_in_channels} and {m.unet_out_channels}).")
    unet = ckpt.load_component(folder, "unet", torch.float32)  # the core's one weight reader
    vae = ckpt.load_component(folder, "vae", torch.float32)
    if kind == "sd2":
        widen_conv_in(unet, m.n_targets + 1)
        widen_conv_out(unet, m.n_targets)
    vae.requires_grad_(False).eval()
    emb = ckpt.empty_text_embedding(folder, cache_dir)
    sched_path = folder / "scheduler" / "scheduler_config.json"
    sched = _read(sched_path) if sched_path.is_file() else {}
    betas = {k: sched.get(k, v) for k, v in SD2_BETAS.items()}
    return Base(folder=folder, unet=unet, vae=vae, empty_text_embedding=emb, betas=betas, kind=kind, index=index)


def noise_scheduler_config(base: Base, cfg: dict) -> dict:
    """The training noise schedule: the base's betas (SD2: scaled-linear 0.00085..0.012, 1000 steps) unless the
    config overrides them."""
    ns = cfg["noise_scheduler"]
    out = dict(base.betas)
    for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule"):
        if ns.get(k) is not None:
            out[k] = ns[k]
    out.update(prediction_type=ns["prediction_type"], rescale_betas_zero_snr=bool(ns["rescale_betas_zero_snr"]))
    return out


def ddim_config(noise_cfg: dict) -> dict:
    """The inference scheduler written with the checkpoint: DDIM with trailing timesteps (v1-1 style), the
    training betas and prediction type, so that 1-step inference starts at t = T-1 as it was trained."""
    from diffusers import DDIMScheduler

    s = DDIMScheduler(**noise_cfg, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                      timestep_spacing="trailing")
    return dict(s.config)


def _link_or_copy_tree(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_dir():
            _link_or_copy_tree(p, dst / p.name)
            continue
        try:
            os.link(p, dst / p.name)  # same file system: no copy of a 1.4 GB text encoder per checkpoint
        except OSError:
            shutil.copy2(p, dst / p.name)


def export_marigold(out: str | os.PathLike, base: Base, unet: torch.nn.Module, noise_cfg: dict,
                    task: str | Modality, export_cfg: dict, default_steps: int) -> Path:
    """Write a complete Marigold checkpoint folder at ``out`` (which must not exist yet)."""
    import diffusers
    from diffusers import DDIMScheduler
    from safetensors.torch import save_file

    m = get_modality(task)
    out = Path(out)
    out.mkdir(parents=True)
    unet.save_pretrained(str(out / "unet"), safe_serialization=True)
    _link_or_copy_tree(base.folder / "vae", out / "vae")  # frozen: the base's files, in their own precision
    DDIMScheduler.from_config(ddim_config(noise_cfg)).save_pretrained(str(out / "scheduler"))
    with_text = bool(export_cfg.get("text_encoder", True)) and (base.folder / "text_encoder").is_dir() \
        and (base.folder / "tokenizer").is_dir()
    if with_text:
        _link_or_copy_tree(base.folder / "text_encoder", out / "text_encoder")
        _link_or_copy_tree(base.folder / "tokenizer", out / "tokenizer")
    fingerprint = ckpt.text_encoder_fingerprint(out) if with_text else None
    save_file({"embedding": base.empty_text_embedding.float().contiguous()}, str(out / ckpt.EMBEDDING_FILE),
              metadata={"text_encoder": fingerprint} if fingerprint else None)
    index = {
        "_class_name": m.pipeline,
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"] if with_text else [None, None],
        "tokenizer": ["transformers", "CLIPTokenizer"] if with_text else [None, None],
        "prediction_type": m.prediction_type,
        "default_denoising_steps": int(export_cfg.get("default_denoising_steps") or default_steps),
        "default_processing_resolution": int(export_cfg.get("default_processing_resolution") or 768),
        **m.index_keys,
    }
    if for_checkpoint({k: v for k, v in index.items() if k != "modality"}).name != m.name:
        index["modality"] = m.name  # not a built-in entry: name it, so that the loader finds it again
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return out


def in_memory_model(base: Base, unet: torch.nn.Module, noise_cfg: dict, task: str | Modality, device,
                    dtype=torch.float32, processing_resolution: int = 768):
    """A :class:`marigold.MarigoldModel` around the live UNet, for validation without writing files."""
    m = get_modality(task)
    return ckpt.MarigoldModel(path=base.folder, task=m.task, unet=unet, vae=base.vae,
                              scheduler_config=ddim_config(noise_cfg),
                              empty_text_embedding=base.empty_text_embedding,
                              prediction_type=m.prediction_type,
                              target_properties=m.index_keys.get("target_properties"),
                              default_denoising_steps=1, default_processing_resolution=processing_resolution,
                              device=torch.device(device), dtype=dtype, modality=m)


ROLLINGDEPTH_INDEX_KEYS = ("_class_name", "_diffusers_version", "unet", "vae", "scheduler", "text_encoder",
                           "tokenizer")


def rollingdepth_scheduler_config(noise_cfg: dict) -> dict:
    """RollingDepth's inference scheduler (prs-eth/rollingdepth-v1-0 ``scheduler/``): DDIM, v-prediction,
    trailing timesteps, zero terminal SNR, steps_offset 1, on the training betas."""
    cfg = dict(noise_cfg, prediction_type="v_prediction", rescale_betas_zero_snr=True)
    return ddim_config(cfg)


def export_rollingdepth(out: str | os.PathLike, base: Base, unet: torch.nn.Module, noise_cfg: dict) -> Path:
    """Write a complete folder in the layout of prs-eth/rollingdepth-v1-0 at ``out`` (which must not exist):
    ``model_index.json`` naming ``RollingDepthPipeline`` and its five components and nothing else (no Marigold
    keys), ``unet/``, ``vae/`` (the base's, frozen), ``scheduler/`` (see :func:`rollingdepth_scheduler_config`),
    ``text_encoder/`` and ``tokenizer/`` (required: the published model ships them)."""
    import diffusers
    from diffusers import DDIMScheduler

    out = Path(out)
    for part in ("text_encoder", "tokenizer"):
        if not (base.folder / part).is_dir():
            raise CheckpointError(f"{base.folder} has no {part}/; a RollingDepth folder ships one. Start from a "
                                  f"base that has it (Stable Diffusion 2 or a Marigold checkpoint).")
    out.mkdir(parents=True)
    unet.save_pretrained(str(out / "unet"), safe_serialization=True)
    _link_or_copy_tree(base.folder / "vae", out / "vae")
    DDIMScheduler.from_config(rollingdepth_scheduler_config(noise_cfg)).save_pretrained(str(out / "scheduler"))
    _link_or_copy_tree(base.folder / "text_encoder", out / "text_encoder")
    _link_or_copy_tree(base.folder / "tokenizer", out / "tokenizer")
    index = {"_class_name": "RollingDepthPipeline", "_diffusers_version": diffusers.__version__,
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return out
