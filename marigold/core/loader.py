"""Loading a checkpoint for inference (:func:`load`: resolve, compose, inspect, the empty-text embedding, then the
UNet and VAE), and the one way this project reads weights: safetensors straight into modules built on the meta
device (:func:`load_component`, :func:`read_safetensors`)."""

from __future__ import annotations

import json
import os
import struct
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .devices import resolve_device, resolve_dtype
from .files import read_json, weight_file
from .hub import compose, is_unet_only, resolve
from .inspection import inspect
from .model import MarigoldModel
from .published import PUBLISHED_FACTS
from .text_encoder import empty_text_embedding


def _dtype_kw() -> str:
    from ..compat import diffusers_dtype_kwarg

    return diffusers_dtype_kwarg()


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
        states = {name: pool.submit(_read_state, weight_file(folder, name, variant)[0], dt, channels_last)
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
        lotus=info["lotus"],
        dtype=dt,
        modality=info["modality"],
        cache_dir=Path(cache_dir) if cache_dir else None,
    )
    model = model.to(dev, dt)
    if optimize:
        from . import fast

        fast.apply(model)
    if model.lotus:  # after fast.apply (which patches the UNet's own modules): Marigold's call → Lotus's inputs
        from .lotus import LotusUNet

        model.unet = LotusUNet(model.unet, model.lotus).to(dev)
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
    file, used = weight_file(folder, name, variant)
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
    config = read_json(folder / "config.json")
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
