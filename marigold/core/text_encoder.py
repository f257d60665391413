"""The text encoder's part in loading: the checkpoint's SD2 tokenizer and text encoder, and the empty prompt's
embedding computed once and cached beside the checkpoint (or under ``$MARIGOLD_CACHE``), so that the 354M-parameter
encoder is never loaded again for that checkpoint. :mod:`marigold.core.prompts` keeps its prompt embeddings in
the same cache places."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from .files import weight_file

EMBEDDING_FILE = "marigold_empty_text_embedding.safetensors"


def embedding_cache_paths(folder: Path, cache_dir: Path | None) -> list[Path]:
    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    user = Path(cache_dir) if cache_dir else Path(os.environ.get("MARIGOLD_CACHE", "~/.cache/marigold")).expanduser()
    return [folder / EMBEDDING_FILE, user / "embeddings" / f"{key}.safetensors"]


def text_encoder_fingerprint(folder: Path) -> str:
    files = sorted((folder / "text_encoder").glob("*.safetensors"))
    return ";".join(f"{p.name}:{p.stat().st_size}" for p in files)


def empty_text_embedding(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """The text encoder's output for the empty prompt, ``[1,T,D]`` float32; computed once, then cached.

    The cache lives beside the checkpoint (or under ``cache_dir`` / ``$MARIGOLD_CACHE`` where the checkpoint
    folder is read-only). A checkpoint that carries only the cache file needs no text encoder at all.
    """
    from safetensors.torch import load_file, save_file

    folder = Path(folder)
    paths = embedding_cache_paths(folder, Path(cache_dir) if cache_dir else None)
    has_encoder = (folder / "text_encoder").is_dir()
    fingerprint = text_encoder_fingerprint(folder) if has_encoder else None
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

    _, variant = weight_file(folder, "text_encoder", None)
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
