"""Device and dtype choice: ``"auto"`` picks what is fast and safe on the machine at hand."""

from __future__ import annotations

import functools

import torch

from ..errors import InputError

DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"Device {device!r} was asked for, but this torch build sees no CUDA GPU.")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"Device {device!r} was asked for, but MPS is not available.")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (its first processor), or None where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return frozenset(f.read().split("flags")[1].split("\n")[0].split())
    except (OSError, IndexError):
        return None


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX): bf16 runs ~2× fp32 there."""
    flags = cpu_flags() or frozenset()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """"auto": bf16 on GPUs that support it and CPUs with native bf16, fp16 on older GPUs and MPS, else fp32.

    fp16 is never chosen on a CPU: most CPU fp16 kernels are slow emulation, and some are missing.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise InputError(f"dtype {dtype} is not supported; use fp32, fp16 or bf16.")
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    key = str(dtype).lower().replace("torch.", "")
    if key not in DTYPES:
        raise InputError(f"Unknown dtype {dtype!r}; use auto, fp32, fp16 or bf16.")
    return DTYPES[key]


# Which levers run on which device (issue #23: what pays on the CPU must not slow a GPU). Every lever was measured
# on CPUs (bench/RESULTS.md); on an H100 our fp32 frame loop with all of them was 1.17× diffusers' time and level in
# bf16, with no lever timed alone yet, so a GPU or MPS runs diffusers' modules as they are until
# ``python -m bench.device_levers`` shows one pays there. Checked per call: a model may move between devices.
LEVERS = ("channels_last", "blocks", "subpixel", "attention", "winograd")
POLICY: dict[str, frozenset[str]] = {"cpu": frozenset(LEVERS), "cuda": frozenset(), "mps": frozenset()}


def enabled(lever: str, device: torch.device | str) -> bool:
    """Whether ``lever`` runs on ``device`` (:data:`POLICY`; a device type it does not name runs none)."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    return lever in POLICY.get(kind, frozenset())
