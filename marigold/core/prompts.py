"""Text prompts for the models conditioned on one (text-grounded segmentation): checked, encoded, cached.

The frozen SD2 text encoder (354M parameters, 1.4 GB in fp32) is loaded only when a prompt model meets a prompt
whose embedding is not cached yet, encodes every such prompt of the call in one go, and is freed before the UNet
runs, so that it is never held beside the UNet and VAE. Each embedding (``[1,77,D]``, padded to the tokenizer's 77
positions as Cocogold's trainer encodes its class names) is cached on the model for the session and on disk beside
the empty-prompt one (:func:`marigold.core.text_encoder.empty_text_embedding`): a few hundred KB per prompt, keyed by the
prompt and the text encoder's files. Models that take no prompt never load the text encoder for this.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CheckpointError, InputError
from .text_encoder import embedding_cache_paths, load_text_model, text_encoder_fingerprint

if TYPE_CHECKING:  # annotations only: the model's module imports marigold.core.modality, which imports this one
    from .model import MarigoldModel

PROMPT_DIR = "marigold_prompt_embeddings"
MAX_TOKENS = 77  # CLIP's context, start and end tokens included


def check_prompt(model: MarigoldModel, prompt: object) -> str:
    """The prompt, stripped; an :class:`InputError` naming ``prompt`` when the model takes none or it is unusable."""
    if not model.takes_prompt:
        raise InputError(f"`prompt` was given, but {model.path.name} is a Marigold {model.task} checkpoint, which "
                         f"takes no prompt; use a segmentation checkpoint (e.g. pcuenq/marigold-coco-segmentation) "
                         f"or leave the prompt out.")
    if prompt is None:
        raise InputError(f"{model.path.name} is a {model.modality.name} checkpoint: it needs a `prompt` (give a text "
                         f"`prompt` naming what to predict, e.g. 'car').")
    if not isinstance(prompt, str):
        raise InputError(f"`prompt` must be a string; got {type(prompt).__name__}.")
    text = " ".join(prompt.split())
    if not text:
        raise InputError("`prompt` is empty; name what to mask (e.g. 'car').")
    return text


def _cache_files(model: MarigoldModel, prompt: str) -> list[Path]:
    name = hashlib.sha256(prompt.encode()).hexdigest()[:20] + ".safetensors"
    beside, user = embedding_cache_paths(model.path, model.cache_dir)
    return [beside.parent / PROMPT_DIR / name, user.parent / user.stem / name]


def _read_cached(model: MarigoldModel, prompt: str, fingerprint: str) -> torch.Tensor | None:
    from safetensors import safe_open

    for p in _cache_files(model, prompt):
        if p.is_file():
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("prompt") == prompt and meta.get("text_encoder") == fingerprint:
                    return f.get_tensor("embedding").float().clone()  # aligned copy (see empty_text_embedding)
    return None


def _write_cached(model: MarigoldModel, prompt: str, fingerprint: str, emb: torch.Tensor) -> None:
    from safetensors.torch import save_file

    for p in _cache_files(model, prompt):  # first writable location wins
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp = p.with_suffix(".tmp")
            save_file({"embedding": emb.contiguous()}, str(tmp),
                      metadata={"prompt": prompt, "text_encoder": fingerprint})
            os.replace(tmp, p)
            return
        except OSError:
            continue


def _load_text_model(folder: Path):
    if not (folder / "text_encoder").is_dir() or not (folder / "tokenizer").is_dir():
        raise CheckpointError(f"{folder} has no text_encoder/ and tokenizer/; a prompt model needs both (or pass "
                              f"the SD2 base it was trained from as `base`).")
    return load_text_model(folder)


def _tokenize(tokenizer, prompt: str) -> torch.Tensor:
    n = len(tokenizer(prompt, truncation=False, verbose=False).input_ids)
    if n > MAX_TOKENS:
        raise InputError(f"`prompt` {prompt[:40]!r}… is {n} tokens long; the text encoder reads at most "
                         f"{MAX_TOKENS} (start and end included). Use a shorter prompt (a class name is best).")
    return tokenizer(prompt, padding="max_length", max_length=MAX_TOKENS, truncation=False,
                     return_tensors="pt").input_ids  # [1,77]


def prompt_slug(prompt: str) -> str:
    """A prompt as a file-name part: ``dining table`` → ``dining-table``."""
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in "-".join(prompt.split()))
    return keep.strip("-") or "prompt"


def prompt_embeddings(model: MarigoldModel, prompts: list[str]) -> dict[str, torch.Tensor | InputError]:
    """Each prompt → its embedding ``[1,77,D]`` float32 on the CPU, or the :class:`InputError` that refuses it (so
    that one bad prompt does not stop the others). Prompts are checked with :func:`check_prompt` first."""
    out: dict[str, torch.Tensor | InputError] = {}
    todo: list[str] = []
    fingerprint = text_encoder_fingerprint(model.path)
    for raw in prompts:
        try:
            p = check_prompt(model, raw)
        except InputError as e:
            out[raw] = e
            continue
        if p in model.prompt_embeddings:
            out[raw] = model.prompt_embeddings[p]
            continue
        cached = _read_cached(model, p, fingerprint)
        if cached is not None:
            model.prompt_embeddings[p] = out[raw] = cached
        else:
            todo.append(raw)
    if todo:
        tokenizer, encoder = _load_text_model(model.path)
        try:
            with torch.inference_mode():
                for raw in todo:
                    p = check_prompt(model, raw)
                    try:
                        ids = _tokenize(tokenizer, p)  # [1,77]
                    except InputError as e:
                        out[raw] = e
                        continue
                    emb = encoder(ids)[0].float().clone()  # [1,77,D]
                    _write_cached(model, p, fingerprint, emb)
                    model.prompt_embeddings[p] = out[raw] = emb
        finally:
            del encoder  # freed before the UNet runs: never beside it
    return out


def prompt_embedding(model: MarigoldModel, prompt: str) -> torch.Tensor:
    """One prompt's embedding ``[1,77,D]`` (see :func:`prompt_embeddings`); raises its :class:`InputError`."""
    got = prompt_embeddings(model, [prompt])[prompt]
    if isinstance(got, InputError):
        raise got
    return got


@dataclass
class PromptSource:
    """What :func:`prompt_embeddings` needs of a model: a folder with ``tokenizer/`` and ``text_encoder/`` (the
    trainer's SD2 base, which is no :class:`MarigoldModel`), its embedding cache, and the prompts seen so far."""

    path: Path
    cache_dir: Path | None = None
    prompt_embeddings: dict[str, torch.Tensor] = field(default_factory=dict)
    task: str = "segmentation"
    takes_prompt: bool = True


def encode_prompts(folder: str | os.PathLike, prompts: list[str], cache_dir: str | os.PathLike | None = None
                   ) -> dict[str, torch.Tensor]:
    """The embeddings ``[1,77,D]`` of ``prompts`` by the text encoder in ``folder`` (one load for all, then freed;
    cached as for a model); raises the first prompt's :class:`InputError`."""
    got = prompt_embeddings(PromptSource(Path(folder), Path(cache_dir) if cache_dir else None), list(prompts))
    for p, e in got.items():
        if isinstance(e, InputError):
            raise e
    return got
