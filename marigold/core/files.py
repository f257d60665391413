"""A checkpoint folder's files: its JSON configs read with one clear error, safetensors headers checked against
their size (no half downloads), a component's weight file found (never a pickle), and the repo id of a folder in
the hub cache layout."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

WEIGHTS = "diffusion_pytorch_model"


def read_json(path: Path) -> dict[str, Any]:
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


def weight_file(folder: Path, component: str, variant: str | None) -> tuple[Path, str | None]:
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


def published_repo(folder: Path) -> str | None:
    """The repo id of a folder in the hub cache layout (``models--org--name/snapshots/<rev>``), if any."""
    parts = folder.resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3][len("models--"):].replace("--", "/", 1)
    return None
