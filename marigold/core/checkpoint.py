"""One loader for everyone: resolve a repo id or folder, check the layout, load the parts Marigold uses.

A Marigold checkpoint is a diffusers pipeline folder (``model_index.json``, ``unet/``, ``vae/``,
``scheduler/``, ``text_encoder/``, ``tokenizer/``). Marigold only ever feeds the text encoder the empty
prompt, so we compute that embedding once, cache it beside the checkpoint (a few KB of safetensors), and
never load the 354M-parameter text encoder again for that checkpoint.

Weights are read from safetensors only (no pickle).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .devices import resolve_device, resolve_dtype
from ..errors import CheckpointError
from .modality import Modality, for_checkpoint

PUBLISHED = (
    "prs-eth/marigold-depth-v1-1",
    "prs-eth/marigold-normals-v1-1",
    "prs-eth/marigold-iid-appearance-v1-1",
    "prs-eth/marigold-iid-lighting-v1-1",
    "prs-eth/marigold-depth-lcm-v1-0",
    "prs-eth/rollingdepth-v1-0",
    "prs-eth/marigold-depth-v1-0",
    "GonzaloMG/marigold-e2e-ft-depth",
    "GonzaloMG/marigold-e2e-ft-normals",
    "pcuenq/marigold-coco-segmentation",
)
# What the hub files of the older or third-party checkpoints say (model_index.json, scheduler/scheduler_config.json),
# and what they leave out. ``inspect`` fills a field from here only where the folder's model_index.json has none.
PUBLISHED_FACTS: dict[str, dict[str, Any]] = {
    # The paper's model (Ke et al., CVPR 2024). model_index.json: "MarigoldPipeline" (prs-eth/Marigold's own
    # class), no prediction_type and no default steps; scheduler: DDIMScheduler, v_prediction, no timestep_spacing
    # (diffusers' default, "leading"). The paper samples 50 DDIM steps with an ensemble of 10; that default is not
    # in the hub files, so it is not set here (diffusers' fallback applies).
    "prs-eth/marigold-depth-v1-0": {"task": "depth", "prediction_type": "depth"},
    # End-to-end fine-tuned Marigold (Garcia et al., "Fine-Tuning Image-Conditional Diffusion Models is Easier
    # than You Think", 2024). model_index.json: "StableDiffusionPipeline" (no Marigold fields at all, hence the
    # task here); scheduler: DDIMScheduler, v_prediction, timestep_spacing "trailing". One step (t = 999) is the
    # paper's protocol (deterministic: the model was trained for that single step); not in the hub files.
    "GonzaloMG/marigold-e2e-ft-depth": {"task": "depth", "prediction_type": "depth", "default_denoising_steps": 1},
    # Same authors and protocol for normals. Its model_index.json and scheduler_config.json were not found in our
    # search, so the pipeline class and scheduler are read from the files at load time and nothing else is
    # assumed; the task is the repo's name and the single step the paper's protocol.
    "GonzaloMG/marigold-e2e-ft-normals": {"task": "normals", "prediction_type": "normals",
                                          "default_denoising_steps": 1},
    # Cocogold (Pedro Cuenca, "cocogold: training Marigold for text-grounded object segmentation", 2025): text-grounded
    # segmentation, the prompt a bare COCO class name. VERIFIED in the training code (pcuenca/Marigold, branch
    # cocogold): only the UNet is saved (conv_in widened to 8 channels); inference takes the VAE, scheduler,
    # tokenizer and text encoder from stabilityai/stable-diffusion-2 (cocogold-inference.ipynb builds the pipeline
    # as ``MarigoldPipeline.from_pretrained(sd2, unet=unet)``); the prompt embedding enters the UNet's
    # cross-attention; validation sampled 50 DDIM steps with an ensemble of 1; training crops were 512².
    # ASSUMED (the hub repo's file list was not read here): the UNet is at unet/ or at the top level, in
    # safetensors; whether it has a model_index.json is unknown (if it has one, its keys win over these);
    # processing at 512 px (the training crop size) is our choice, not the author's statement.
    "pcuenq/marigold-coco-segmentation": {"task": "segmentation", "prediction_type": "segmentation",
                                          "default_denoising_steps": 50, "default_processing_resolution": 512,
                                          "base": "stabilityai/stable-diffusion-2"},
}
# Published checkpoints we recognise and refuse, with the line the user reads. What is known of the HR model
# (third-party notes; its pipeline.py is not available to us): model_index.json names MarigoldDepthHRPipeline,
# which diffusers does not have; that pipeline runs a base pass with prs-eth/marigold-depth-v1-1 at 768 px
# (ensemble 10, 10 steps), then a "boosted" pass over 768-px patches with a second UNet (``boosting_unet``;
# ensemble 5, 10 steps), x2 upscale by default, up to about 4 MP. How the boosting UNet is conditioned (its input
# channels: the patch latent, the base prediction's latent, anything else) is not known, so it is not guessed at.
HR_HINT = ("for high resolution with any Marigold checkpoint, tile instead: --tile (CLI), "
           "marigold.tiling.predict_tiled, or the MarigoldTiledDepth node (docs/tiling.md)")
UNSUPPORTED: dict[str, str] = {
    "prs-eth/marigold-depth-hr-v1-1": (
        "prs-eth/marigold-depth-hr-v1-1 needs its own MarigoldDepthHRPipeline (a base pass, then a second "
        "'boosting' UNet over 768-px patches whose inputs are not published), which this package does not run; "
        + HR_HINT + "."),
}
_UNSUPPORTED_CLASSES = {"MarigoldDepthHRPipeline": "prs-eth/marigold-depth-hr-v1-1"}
EMBEDDING_FILE = "marigold_empty_text_embedding.safetensors"
WEIGHTS = "diffusion_pytorch_model"
# what a download needs: never pickles, never the fp32 copies when the fp16 variant is asked for
_CONFIG_PATTERNS = ["model_index.json", "*/config.json", "scheduler/*.json", "tokenizer/*",
                    "config.json"]  # the last: a UNet-only repo with its UNet at the top level



def _dtype_kw() -> str:
    from ..compat import diffusers_dtype_kwarg

    return diffusers_dtype_kwarg()


_TASKS = {  # model_index _class_name → task
    "MarigoldDepthPipeline": "depth",
    "MarigoldPipeline": "depth",  # prs-eth/Marigold's own pipeline class (v1-0 checkpoints)
    "MarigoldNormalsPipeline": "normals",
    "MarigoldIntrinsicsPipeline": "intrinsics",
    "RollingDepthPipeline": "depth",  # video depth (Ke et al., CVPR 2025); see VIDEO_MODELS
    # our name for a text-grounded segmentation checkpoint (what train.finetune --task segmentation writes, and what
    # a UNet-only folder plus an SD2 base is composed into); diffusers has no such pipeline
    "MarigoldSegmentationPipeline": "segmentation",
}
# Checkpoints whose UNet runs on snippets of frames with self-attention across them (marigold.core.snippet). Their
# model_index.json carries no Marigold keys; what their pipeline does instead (prs-eth/RollingDepth rollingdepth/rollingdepth_pipeline.py):
# inverse depth ("disparity": near = high, affine-invariant), one DDIM step from t = 999 (``init_infer_steps=[1]``
# in run_video.py), 768 px (run_video.py's default ``res``, the "fast" preset).
VIDEO_MODELS = {"RollingDepthPipeline": {"prediction_type": "disparity", "default_denoising_steps": 1,
                                         "default_processing_resolution": 768}}


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


# ---------------------------------------------------------------------------------------------------------------
# Finding the folder


def resolve(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None, *, variant: str | None = None,
            progress: bool | type = True) -> Path:
    """A local folder, or a Hugging Face repo id downloaded (safetensors only) into ``cache_dir``."""
    path = Path(os.path.expanduser(str(source)))
    if path.is_dir():
        return path
    text = str(source)
    if text in UNSUPPORTED:  # before downloading gigabytes it cannot run
        raise CheckpointError(UNSUPPORTED[text])
    looks_like_repo = text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.exists()
    if not looks_like_repo:
        raise CheckpointError(
            f"Checkpoint {text!r} is neither a folder nor a Hugging Face repo id like 'prs-eth/marigold-depth-v1-1'."
        )
    return download(text, cache_dir, variant=variant, progress=progress)


def download(repo_id: str, cache_dir: str | os.PathLike | None = None, *, variant: str | None = None,
             progress: bool | type = True, skip_unet: bool = False) -> Path:
    """Download the files Marigold needs from the hub (or find them in the cache when offline).

    ``progress``: show the hub's progress bars, hide them (False), or a tqdm class for the files bar (how the
    ComfyUI nodes show the download on the node's own progress bar).
    """
    import huggingface_hub
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    weights = f"*.{variant}.safetensors" if variant else "*.safetensors"
    patterns = _CONFIG_PATTERNS + [f"vae/{weights}", f"text_encoder/{weights}", "*/*.safetensors.index*.json"]
    if not skip_unet:  # a base for a UNet-only checkpoint lends everything but its UNet
        patterns += [f"unet/{weights}", f"{WEIGHTS}{weights[1:]}"]
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    was_disabled = are_progress_bars_disabled()  # the hub's switch is process-wide: put back what we found
    if not progress:
        disable_progress_bars()
    try:
        extra = {"tqdm_class": progress} if isinstance(progress, type) else {}
        folder = huggingface_hub.snapshot_download(
            repo_id, cache_dir=None if cache_dir is None else str(cache_dir), allow_patterns=patterns,
            local_files_only=offline, **extra)
    except Exception as e:  # the hub raises many types; the user needs one message
        where = Path(cache_dir) if cache_dir else Path(huggingface_hub.constants.HF_HUB_CACHE)
        how = ("downloading is off (HF_HUB_OFFLINE=1)" if offline
               else f"it could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        raise CheckpointError(
            f"Checkpoint {repo_id!r} is not in the cache at {where} and {how}. Either download it where there is "
            f"network ({_hub_cli()} download {repo_id} --cache-dir {where}), or copy the checkpoint folder "
            f"(model_index.json, unet/, vae/, scheduler/, text_encoder/, tokenizer/) to a folder of your choice "
            f"and pass that folder's path instead of the repo id."
        ) from None
    finally:
        if not progress and not was_disabled:
            enable_progress_bars()
    folder = Path(folder)
    unet_dir = folder / "unet" if (folder / "unet").is_dir() else folder
    if variant and not skip_unet and not list(unet_dir.glob(f"*.{variant}.safetensors*")):
        return download(repo_id, cache_dir, variant=None, progress=progress, skip_unet=skip_unet)  # no such variant
    return folder


def _hub_cli() -> str:
    """The download command of the installed huggingface_hub: ``hf`` since 0.34, which deprecated
    ``huggingface-cli``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(x) for x in version("huggingface_hub").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return "hf"
    return "hf" if (major, minor) >= (0, 34) else "huggingface-cli"


# ---------------------------------------------------------------------------------------------------------------
# UNet-only checkpoints (Cocogold's training code saves the UNet alone) plus a Stable Diffusion 2 base


def is_unet_only(folder: Path) -> bool:
    """A folder with a UNet (at ``unet/`` or at the top level) and no VAE: the other parts come from a base."""
    if (folder / "vae").is_dir():
        return False
    top = folder / "config.json"
    return (folder / "unet" / "config.json").is_file() or (top.is_file() and "in_channels" in _read_json(top))


def compose(folder: Path, base: str | os.PathLike | None, *, repo_id: str | None = None,
            cache_dir: str | os.PathLike | None = None, variant: str | None = None,
            progress: bool | type = True) -> Path:
    """A UNet-only ``folder`` plus the ``base`` checkpoint's VAE, scheduler, tokenizer and text encoder, as one
    checkpoint folder of symbolic links (under ``$MARIGOLD_CACHE/composed``), so that everything downstream reads
    one layout. The UNet folder's own ``model_index.json`` is honoured where it has one; the published facts of
    ``repo_id`` fill in the rest (a segmentation model by default: the only UNet-only checkpoints we know)."""
    repo_id = repo_id or _published_repo(folder)
    facts = PUBLISHED_FACTS.get(repo_id or "", {})
    base = base or facts.get("base")
    if base is None:
        raise CheckpointError(f"{folder} holds only a UNet (no vae/, scheduler/, text_encoder/); pass the Stable "
                              f"Diffusion 2 checkpoint it was trained from as `base` (CLI: --base, e.g. "
                              f"stabilityai/stable-diffusion-2) to take the other parts from.")
    base_path = Path(os.path.expanduser(str(base)))
    if not base_path.is_dir():
        text = str(base)
        if text.count("/") != 1 or text.startswith((".", "/", "~")) or base_path.exists():
            raise CheckpointError(f"`base` {text!r} is neither a folder nor a Hugging Face repo id.")
        base_path = download(text, cache_dir, variant=variant, progress=progress, skip_unet=True)
    missing = [p for p in ("vae", "scheduler", "tokenizer", "text_encoder") if not (base_path / p).is_dir()]
    if missing:
        raise CheckpointError(f"`base` {base_path} lacks {', '.join(missing)}/; it must be a Stable Diffusion 2 "
                              f"checkpoint folder (e.g. stabilityai/stable-diffusion-2).")
    own = _read_json(folder / "model_index.json") if (folder / "model_index.json").is_file() else {}
    index = {"_class_name": "MarigoldSegmentationPipeline", "prediction_type": "segmentation",
             "default_denoising_steps": 50, **{k: v for k, v in facts.items() if k not in ("task", "base")},
             **{k: v for k, v in own.items() if v is not None and not k.startswith("_")}}
    if own.get("_class_name") in _TASKS:
        index["_class_name"] = own["_class_name"]
    unet = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    key = hashlib.sha256(f"{unet.resolve()}|{base_path.resolve()}".encode()).hexdigest()[:16]
    user = Path(cache_dir) if cache_dir else Path(os.environ.get("MARIGOLD_CACHE", "~/.cache/marigold")).expanduser()
    out = user / "composed" / key
    out.mkdir(parents=True, exist_ok=True)
    links = {"unet": unet.resolve(), **{p: (base_path / p).resolve() for p in
                                         ("vae", "scheduler", "tokenizer", "text_encoder")}}
    for name, target in links.items():
        link = out / name
        if link.is_symlink() and link.resolve() == target:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    text = json.dumps(index, indent=2)
    if not (out / "model_index.json").is_file() or (out / "model_index.json").read_text() != text:
        (out / "model_index.json").write_text(text)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Checking the layout


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file is damaged or incomplete.") from None


def check_safetensors(path: Path) -> None:
    """Check a .safetensors header and that the file holds all the bytes it promises (no half downloads)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if n <= 0 or 8 + n > size:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file ({e}); delete it and download it again.") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path} is truncated: it has {size:,} bytes of {8 + n + end:,}. The download did not finish; "
            f"delete the file and download it again."
        )


def _weight_file(folder: Path, component: str, variant: str | None) -> tuple[Path, str | None]:
    """Find a component's safetensors weights; returns (file, variant actually used)."""
    d = folder / component
    if not d.is_dir():
        raise CheckpointError(f"{folder} has no {component}/ folder; a Marigold checkpoint needs "
                              f"model_index.json, unet/, vae/, scheduler/ (and text_encoder/, tokenizer/ once).")
    names = [f"{WEIGHTS}.safetensors", f"{WEIGHTS}.fp16.safetensors"] if component != "text_encoder" else [
        "model.safetensors", "model.fp16.safetensors"]
    order = names[::-1] if variant == "fp16" else names
    for name in order:
        used = "fp16" if ".fp16." in name else None
        if (d / name).is_file():
            check_safetensors(d / name)
            return d / name, used
        # sharded weights: diffusers names the index <weights>.safetensors.index[.fp16].json
        stem = name.split(".")[0]
        index = d / (f"{stem}.safetensors.index.fp16.json" if used else f"{stem}.safetensors.index.json")
        if index.is_file():
            return index, used
    pickles = [p.name for p in d.glob("*.bin")] + [p.name for p in d.glob("*.ckpt")] + [p.name for p in d.glob("*.pt")]
    if pickles:
        raise CheckpointError(f"{d} holds only pickle weights ({', '.join(pickles)}); they are not loaded, since "
                              f"loading a pickle can run code. Convert them to safetensors first.")
    raise CheckpointError(f"{d} has no weights ({' or '.join(names)}); the download is incomplete.")


def _published_repo(folder: Path) -> str | None:
    """The repo id of a folder in the hub cache layout (``models--org--name/snapshots/<rev>``), if any."""
    parts = folder.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3][len("models--"):].replace("--", "/", 1)
    return None


def inspect(folder: str | os.PathLike, repo_id: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint folder's configs without loading weights. Returns a description.

    ``repo_id``: the hub repo the folder came from (found from the hub cache layout when not given); the facts
    in :data:`PUBLISHED_FACTS` fill what its model_index.json leaves out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"Checkpoint folder {folder} does not exist.")
    index = _read_json(folder / "model_index.json")
    facts = PUBLISHED_FACTS.get(repo_id or _published_repo(folder) or "", {})
    index = {**{k: v for k, v in facts.items() if k != "task"}, **{k: v for k, v in index.items() if v is not None}}
    cls = index.get("_class_name", "")
    if cls in _UNSUPPORTED_CLASSES:
        raise CheckpointError(f"{folder}: " + UNSUPPORTED[_UNSUPPORTED_CLASSES[cls]])
    task = _TASKS.get(cls) or facts.get("task")
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
    unet_cfg = _read_json(folder / "unet" / "config.json")
    _read_json(folder / "vae" / "config.json")
    sched = _read_json(folder / "scheduler" / "scheduler_config.json")
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
            "modality": modality, "n_targets": n_targets, "video_model": video is not None,
            # what load() reads from model_index.json: a video model's defaults stand in for the missing keys
            "config": {**(video or {}), **{k: v for k, v in index.items() if not k.startswith("_")}}}


# ---------------------------------------------------------------------------------------------------------------
# The empty-text embedding cache


def _embedding_cache_paths(folder: Path, cache_dir: Path | None) -> list[Path]:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    user = Path(cache_dir) if cache_dir else Path(os.environ.get("MARIGOLD_CACHE", "~/.cache/marigold")).expanduser()
    return [folder / EMBEDDING_FILE, user / "embeddings" / f"{key}.safetensors"]


def _text_encoder_fingerprint(folder: Path) -> str:
    files = sorted((folder / "text_encoder").glob("*.safetensors"))
    return ";".join(f"{p.name}:{p.stat().st_size}" for p in files)


def empty_text_embedding(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """The text encoder's output for the empty prompt, ``[1,T,D]`` float32; computed once, then cached.

    The cache lives beside the checkpoint (or under ``cache_dir`` / ``$MARIGOLD_CACHE`` where the checkpoint
    folder is read-only). A checkpoint that carries only the cache file needs no text encoder at all.
    """
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    paths = _embedding_cache_paths(folder, Path(cache_dir) if cache_dir else None)
    has_encoder = (folder / "text_encoder").is_dir()
    fingerprint = _text_encoder_fingerprint(folder) if has_encoder else None
    for p in paths:
        if p.is_file():
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
            if fingerprint is None or meta.get("text_encoder") in (None, fingerprint):
                # a copy into a fresh (64-byte aligned) allocation: safetensors returns the tensor 8 bytes off such a
                # boundary, and the CPU kernels then sum the cross-attention in another order than on the computed
                # embedding (the first run on a checkpoint gave results ~1e-6 apart from all later runs)
                return load_file(str(p))["embedding"].float().clone()
    if not has_encoder:
        raise CheckpointError(f"{folder} has neither text_encoder/ nor a cached {EMBEDDING_FILE}; "
                              f"copy the checkpoint's text_encoder/ and tokenizer/ folders.")
    emb = _compute_empty_embedding(folder)
    for p in paths:  # first writable location wins
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".tmp")
            save_file({"embedding": emb.contiguous()}, str(tmp), metadata={"text_encoder": fingerprint})
            os.replace(tmp, p)
            break
        except OSError:
            continue
    return emb


def load_text_model(folder: Path):
    """The checkpoint's SD2 tokenizer and text encoder (fp32, eval), for the empty prompt and for text prompts."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from ..compat import transformers_dtype_kwarg

    _, variant = _weight_file(folder, "text_encoder", None)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    except Exception as e:
        raise CheckpointError(f"{folder}/tokenizer cannot be read ({e}).") from None
    try:
        encoder = CLIPTextModel.from_pretrained(str(folder / "text_encoder"), use_safetensors=True,
                                                variant=variant, **{transformers_dtype_kwarg(): torch.float32})
    except Exception as e:
        raise CheckpointError(f"{folder}/text_encoder cannot be loaded ({e}).") from None
    return tokenizer, encoder.eval()


def _compute_empty_embedding(folder: Path, prompt: str = "") -> torch.Tensor:
    tokenizer, encoder = load_text_model(folder)
    ids = tokenizer(prompt, padding="do_not_pad", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids  # [1,T]: T = 2 for the empty prompt
    with torch.inference_mode():
        emb = encoder(ids)[0].float()  # [1,2,D]
    del encoder
    return emb.clone()


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load(source: str | os.PathLike, *, device: str | torch.device | None = None, dtype: str | torch.dtype = "auto",
         variant: str | None = None, cache_dir: str | os.PathLike | None = None,
         progress: bool | type = True, optimize: bool = True, base: str | os.PathLike | None = None
         ) -> MarigoldModel:
    """Load a Marigold checkpoint (folder or repo id) for inference.

    Args:
        source: a checkpoint folder in the diffusers layout, or a Hugging Face repo id.
        device: "cpu", "cuda", "cuda:1", "mps"… (default: CUDA if present, else CPU).
        dtype: "auto" (bf16 on GPUs and CPUs that run it fast, else fp16 on GPUs, else fp32), "fp32", "fp16", "bf16".
        variant: "fp16" to prefer the ``*.fp16.safetensors`` files; by default whichever is present (the fp16
            files when the model runs in half precision and both are present).
        cache_dir: where a repo id is downloaded to, and where the empty-text embedding is cached when the
            checkpoint folder is read-only.
        base: for a UNet-only checkpoint (a folder or repo with a UNet and no VAE, as Cocogold's training code
            saves), the Stable Diffusion 2 checkpoint that lends the VAE, scheduler, tokenizer and text encoder
            (default: the one :data:`PUBLISHED_FACTS` names for a published repo).
        optimize: apply the inference speed-ups of :mod:`marigold.core.fast` (channels-last, sub-pixel upsampling, …;
            same answer). Turn off to get diffusers' modules exactly as they are, e.g. for training.
    """

    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if variant is None and dt in (torch.float16, torch.bfloat16):
        variant = "fp16"
    folder = resolve(source, cache_dir, variant=variant, progress=progress)
    if is_unet_only(folder):
        folder = compose(folder, base, repo_id=str(source) if str(source) in PUBLISHED_FACTS else None,
                         cache_dir=cache_dir, variant=variant, progress=progress)
    elif base is not None:
        raise CheckpointError(f"`base` is only for a UNet-only checkpoint; {folder} is complete (it has vae/).")
    info = inspect(folder, str(source) if str(source) in PUBLISHED_FACTS else None)
    index = info["config"]  # a video model's defaults stand in for its missing keys
    # First, before any UNet/VAE weight is read: on a new checkpoint this loads the text encoder (354M
    # parameters, 1.4 GB in fp32) and frees it again, so that it is never in memory beside the UNet and VAE
    # (measured at 768 px on the full-size architecture: peak RSS 4.29 GB on the first run against 3.1 GB on
    # later runs when the encoder ran after them). Later runs read the few-KB cache file.
    # A prompt model never uses the empty prompt: its embeddings come per prompt (marigold.prompts), when asked.
    embedding = torch.empty(0) if info["modality"].conditioning == "prompt" else empty_text_embedding(folder, cache_dir)

    from concurrent.futures import ThreadPoolExecutor

    # The weights are read and cast on a worker thread (torch releases the GIL while it casts) while this one
    # imports diffusers and builds the modules. No thread count or switch interval is changed for the overlap:
    # both are process-wide, and a host (ComfyUI) may be running torch work on another thread meanwhile
    # (tests/test_side_effects.py). Tuning them won 0.7 s of 3.5 s on 2 cores, not worth a neighbour's surprise.
    from .devices import enabled

    channels_last = optimize and enabled("channels_last", dev)  # laid out while reading: no second copy
    with ThreadPoolExecutor(1, thread_name_prefix="marigold-load") as pool:
        states = {name: pool.submit(_read_state, _weight_file(folder, name, variant)[0], dt, channels_last)
                  for name in ("unet", "vae")}
        parts = {name: load_component(folder, name, dt, variant, channels_last=channels_last, state=states[name])
                 .eval().requires_grad_(False) for name in ("unet", "vae")}

    model = MarigoldModel(
        path=folder,
        task=info["task"],
        unet=parts["unet"],
        vae=parts["vae"],
        scheduler_config=dict(info["scheduler"]),
        empty_text_embedding=embedding,
        prediction_type=index.get("prediction_type") or info["task"],
        default_denoising_steps=index.get("default_denoising_steps"),
        default_processing_resolution=index.get("default_processing_resolution"),
        scale_invariant=bool(index.get("scale_invariant", True)),
        shift_invariant=bool(index.get("shift_invariant", True)),
        use_full_z_range=bool(index.get("use_full_z_range", True)),
        target_properties=index.get("target_properties"),
        video_model=info["video_model"],
        dtype=dt,
        modality=info["modality"],
        cache_dir=Path(cache_dir) if cache_dir else None,
    )
    model = model.to(dev, dt)
    if optimize:
        from . import fast

        fast.apply(model)
    if model.video_model:  # after fast.apply, so that the snippet wrapper holds the fast processors
        from .snippet import enable_snippet_attention

        enable_snippet_attention(model.unet)
    return model


def load_component(folder: str | os.PathLike, name: str, dtype: torch.dtype = torch.float32,
                   variant: str | None = None, channels_last: bool = False, state: Future | None = None
                   ) -> torch.nn.Module:
    """One of a checkpoint's models ("unet" or "vae") as diffusers' class, on the CPU, in ``dtype``.

    The one way this project reads weights (inference and training alike): safetensors only, read straight into
    a module built on the meta device; sharded files or older key layouts go through diffusers' from_pretrained.
    ``state``: the weights already being read (a future of :func:`_read_state` for this component's file).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    cls = {"unet": UNet2DConditionModel, "vae": AutoencoderKL}[name]
    folder = Path(folder)
    file, used = _weight_file(folder, name, variant)
    try:
        return _load_direct(cls, folder / name, file, dtype, channels_last=channels_last, state=state)
    except _NotDirect:  # sharded files or an older key layout: diffusers knows how to convert them
        try:
            return cls.from_pretrained(str(folder / name), use_safetensors=True, variant=used, **{_dtype_kw(): dtype})
        except Exception as e:
            raise CheckpointError(f"{folder}/{name} cannot be loaded: {type(e).__name__}: {e}") from None


class _NotDirect(Exception):
    """The direct loader does not handle this file; use diffusers' from_pretrained."""


def _read_header(path: Path) -> tuple[int, dict[str, Any]]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return 8 + n, json.loads(f.read(n))


_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path: Path, dtype: torch.dtype | None = None, channels_last: bool = False
                     ) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, cast to ``dtype`` one tensor at a time straight from a memory map.

    Each tensor is cast from the mapped file into its final layout (``channels_last`` lays out 4-D convolution
    weights NHWC in the same pass), and the pages it came from are then dropped from this process
    (``MADV_DONTNEED``; the kernel's page cache keeps them), so the peak is the cast model plus one tensor as
    stored, and nothing is copied twice (a read into a buffer and then a cast measured 1.3 s for the fp16 UNet,
    this 0.8 s). Tensors used exactly as stored (same dtype, no layout change) are views of a private mapping of
    the file instead, paged in on first use.
    """
    import mmap

    start, header = _read_header(path)
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
    size = path.stat().st_size
    if entries and start + max(v["data_offsets"][1] for _, v in entries) > size:
        raise CheckpointError(f"{path} is truncated; delete it and download it again.")  # a map would SIGBUS
    out: dict[str, torch.Tensor] = {}
    mapped = None  # private lazy mapping for tensors used exactly as stored (they live on as parameters)
    page = mmap.PAGESIZE
    can_drop = hasattr(mmap, "MADV_DONTNEED")
    # A private copy-on-write map (never written to, so it costs no more than a read-only one): writable, so that
    # torch.frombuffer has nothing to warn about. Silencing the warning instead would swap the process-wide
    # warnings filters under every other thread (warnings.catch_warnings is not thread-safe).
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as mm:
        for name, info in entries:
            stored = _ST_DTYPES.get(info["dtype"])
            if stored is None:
                raise _NotDirect(f"dtype {info['dtype']}")
            lo, hi = info["data_offsets"]
            shape = tuple(info["shape"])
            count = 1
            for n in shape:
                count *= n
            if count * stored.itemsize != hi - lo:
                raise _NotDirect(f"{name}: size mismatch")
            want = dtype if (dtype is not None and stored.is_floating_point) else stored
            fmt = torch.channels_last if channels_last and len(shape) == 4 else torch.contiguous_format
            aligned = (start + lo) % stored.itemsize == 0
            if want == stored and fmt == torch.contiguous_format and aligned:
                if mapped is None:
                    mapped = torch.from_file(str(path), shared=False, size=size, dtype=torch.uint8)
                out[name] = mapped[start + lo:start + hi].view(stored).view(shape)
                continue
            if count == 0:
                out[name] = torch.empty(shape, dtype=want)
                continue
            if aligned:
                src = torch.frombuffer(mm, dtype=stored, count=count, offset=start + lo).view(shape)
            else:  # a misaligned tensor (never in files diffusers writes): copy its bytes out first
                src = torch.frombuffer(mm, dtype=torch.uint8, count=hi - lo, offset=start + lo).clone()
                src = src.view(stored).view(shape)
            out[name] = src.to(want, memory_format=fmt) if (want != stored or fmt != torch.contiguous_format) \
                else src.clone()
            del src
            first, last = -(-(start + lo) // page) * page, (start + hi) // page * page
            if can_drop and last > first:
                mm.madvise(mmap.MADV_DONTNEED, first, last - first)
    return out


def _read_state(file: Path, dtype: torch.dtype, channels_last: bool) -> dict[str, torch.Tensor]:
    if not file.name.endswith(".safetensors"):
        raise _NotDirect("sharded")
    return read_safetensors(file, dtype, channels_last)


def _load_direct(cls, folder: Path, file: Path, dtype: torch.dtype, channels_last: bool = False,
                 state: Future | None = None) -> torch.nn.Module:
    """Build the module on the meta device and assign the weights read from ``file`` (no init, no copies)."""
    if not file.name.endswith(".safetensors"):
        raise _NotDirect("sharded")
    config = _read_json(folder / "config.json")
    with torch.device("meta"):
        module = cls.from_config(config)
    state = state.result() if state is not None else _read_state(file, dtype, channels_last)
    expected = module.state_dict()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(v.shape) for k, v in expected.items()):
        raise _NotDirect("key layout")
    module.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in list(module.parameters()) + list(module.buffers())):
        raise _NotDirect("non-persistent buffers")
    return module
