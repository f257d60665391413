"""The oldest dependency versions this package works with, checked at import, and the shims for what they renamed.

``MINIMUM`` is the one list: pyproject.toml and requirements.txt carry the same lower bounds (a test keeps them
equal), and CI's second stage (.ci/run) runs the parity, ComfyUI and training tests with exactly these versions
installed (.ci/oldest.txt). A ComfyUI install holds many node packs; asking for no more than we need lets pip
leave the others' packages where they are.
"""

from __future__ import annotations

import re
from importlib import metadata

from .errors import DependencyError

# distribution name → oldest version that works, and why not older (what the older one lacks)
MINIMUM: dict[str, str] = {
    "diffusers": "0.33.0",  # MarigoldIntrinsicsPipeline (the reference the parity tests compare with)
    "transformers": "4.40.0",  # CLIPTextModel with safetensors + variant loading as used here
    "huggingface_hub": "0.27.0",  # diffusers 0.33's own lower bound
    "accelerate": "0.30.0",  # the trainer's Accelerator API
    "safetensors": "0.4.1",  # transformers 4.40's own lower bound
    "numpy": "1.24.0",
    "pillow": "10.0.0",
}


def _release(version: str) -> tuple[int, ...]:
    """(major, minor, patch) of a version string; pre-release and local tags are ignored."""
    parts = re.match(r"\s*(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in parts.group(1).split(".")) if parts else (0,)


def too_old(installed: dict[str, str | None]) -> list[str]:
    """One line per package in ``installed`` (name → version, None when absent) older than ``MINIMUM``."""
    lines = []
    for name, need in MINIMUM.items():
        have = installed.get(name)
        if have is not None and _release(have) < _release(need):
            lines.append(f"{name} {have} is installed but marigold-suite needs {name}>={need}: "
                         f"pip install -U \"{name}>={need}\"")
    return lines


def installed_versions() -> dict[str, str | None]:
    """The installed version of each package in ``MINIMUM`` (read from its metadata: nothing is imported)."""
    out: dict[str, str | None] = {}
    for name in MINIMUM:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None  # a missing package fails at its own import with its own clear message
    return out


def check_versions() -> None:
    """Raise :class:`DependencyError` (one line) when an installed dependency is too old."""
    lines = too_old(installed_versions())
    if lines:
        raise DependencyError("; ".join(lines))


def transformers_dtype_kwarg() -> str:
    """``from_pretrained``'s dtype argument: ``dtype`` since transformers 4.56, ``torch_dtype`` before."""
    try:
        return "dtype" if _release(metadata.version("transformers")) >= (4, 56) else "torch_dtype"
    except metadata.PackageNotFoundError:
        return "dtype"


def diffusers_dtype_kwarg() -> str:
    """``from_pretrained``'s dtype argument: diffusers renamed ``torch_dtype`` to ``dtype`` in 0.36. Read from the
    metadata: importing diffusers takes 1–3 s, which :func:`marigold.load` overlaps with reading the weights."""
    try:
        return "dtype" if _release(metadata.version("diffusers")) >= (0, 36) else "torch_dtype"
    except metadata.PackageNotFoundError:
        return "dtype"
