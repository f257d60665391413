"""Finding a checkpoint's folder: a local folder as it is, a Hugging Face repo id downloaded (safetensors only, or
found in the cache when offline), and a UNet-only checkpoint composed with the Stable Diffusion 2 base that lends
its other parts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import CheckpointError
from .files import WEIGHTS, published_repo, read_json
from .published import PIPELINE_TASKS, PUBLISHED_FACTS, UNSUPPORTED

# what a download needs: never pickles, never the fp32 copies when the fp16 variant is asked for
_CONFIG_PATTERNS = ["model_index.json", "*/config.json", "scheduler/*.json", "tokenizer/*",
                    "config.json"]  # the last: a UNet-only repo with its UNet at the top level


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
    return (folder / "unet" / "config.json").is_file() or (top.is_file() and "in_channels" in read_json(top))


def compose(folder: Path, base: str | os.PathLike | None, *, repo_id: str | None = None,
            cache_dir: str | os.PathLike | None = None, variant: str | None = None,
            progress: bool | type = True) -> Path:
    """A UNet-only ``folder`` plus the ``base`` checkpoint's VAE, scheduler, tokenizer and text encoder, as one
    checkpoint folder of symbolic links (under ``$MARIGOLD_CACHE/composed``), so that everything downstream reads
    one layout. The UNet folder's own ``model_index.json`` is honoured where it has one; the published facts of
    ``repo_id`` fill in the rest (a segmentation model by default: the only UNet-only checkpoints we know)."""
    repo_id = repo_id or published_repo(folder)
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
    own = read_json(folder / "model_index.json") if (folder / "model_index.json").is_file() else {}
    index = {"_class_name": "MarigoldSegmentationPipeline", "prediction_type": "segmentation",
             "default_denoising_steps": 50, **{k: v for k, v in facts.items() if k not in ("task", "base")},
             **{k: v for k, v in own.items() if v is not None and not k.startswith("_")}}
    if own.get("_class_name") in PIPELINE_TASKS:
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
