"""One loader for everyone: resolve a repo id or folder, check the layout, load the parts Marigold uses.

A Marigold checkpoint is a diffusers pipeline folder (``model_index.json``, ``unet/``, ``vae/``,
``scheduler/``, ``text_encoder/``, ``tokenizer/``). Marigold only ever feeds the text encoder the empty
prompt, so we compute that embedding once, cache it beside the checkpoint (a few KB of safetensors), and
never load the 354M-parameter text encoder again for that checkpoint.

Weights are read from safetensors only (no pickle).

This module gathers the names; the work is split by job (each file's opening says what it holds):
published.py (known repos and pipeline classes), files.py (configs, safetensors checks, weight files), hub.py
(resolve, download, UNet-only + base), inspection.py (``inspect``), text_encoder.py (the empty-text embedding),
model.py (``MarigoldModel``), loader.py (``load``, ``load_component``, ``read_safetensors``).
"""

from __future__ import annotations

from .files import WEIGHTS, check_safetensors
from .hub import compose, download, is_unet_only, resolve
from .inspection import inspect
from .loader import load, load_component, read_safetensors
from .model import MarigoldModel
from .published import HR_HINT, PIPELINE_TASKS, PUBLISHED, PUBLISHED_FACTS, UNSUPPORTED, VIDEO_MODELS
from .text_encoder import EMBEDDING_FILE, empty_text_embedding, load_text_model, text_encoder_fingerprint

__all__ = ["EMBEDDING_FILE", "HR_HINT", "MarigoldModel", "PIPELINE_TASKS", "PUBLISHED", "PUBLISHED_FACTS", "UNSUPPORTED",
           "VIDEO_MODELS", "WEIGHTS", "check_safetensors", "compose", "download", "empty_text_embedding", "inspect",
           "is_unet_only", "load", "load_component", "load_text_model", "read_safetensors", "resolve",
           "text_encoder_fingerprint"]
