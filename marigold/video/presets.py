"""Video depth's settings: RollingDepth's presets (:data:`PRESETS`), the co-alignment's sampling of the maps, the
callbacks' types, and the checks of the snippet options, the seed and the integer settings (one line naming the
bad one; the CLI runs :func:`snippet_options` before any model is loaded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InputError

ProgressFn = Callable[[int, int], None]  # (done, total); total 0 while the frame count is unknown
CancelFn = Callable[[], None]


@dataclass(frozen=True)
class VideoPreset:
    """RollingDepth's inference presets (reference run_video.py, ``preset_args_dict`` and the shared defaults:
    snippet length 3, refinement snippets of 3 starting at dilation 6)."""

    processing_resolution: int
    dilations: tuple[int, ...]
    refine_steps: int
    cap_dilation: bool = True
    dtype: str = "fp16"  # what the reference runs the preset in; our model's dtype is chosen at load time
    snippet_length: int = 3
    refine_snippet_length: int = 3
    refine_start_dilation: int = 6


# What the presets' resolutions assume: the published Marigold and RollingDepth checkpoints work at 768 px. A
# checkpoint that declares another default (one fine-tuned at 128 px, say) runs at its own unless told otherwise.
PRESET_BASE_RESOLUTION = 768

PRESETS: dict[str, VideoPreset] = {
    "fast": VideoPreset(768, (1, 25), 0),
    "full": VideoPreset(1024, (1, 10, 25), 10),
    "paper": VideoPreset(768, (1, 10, 25), 10, cap_dilation=False, dtype="fp32"),
}

# The reference's co-alignment works on maps with a 2-pixel border cut off, every 10th pixel
# (depth_aligner.py, DepthAligner: ``border=2``, ``factor=10``).
ALIGN_BORDER = 2
ALIGN_FACTOR = 10


def check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"`{name}` must be an integer ≥ {low}; got {value!r}.")
    return value


def snippet_options(preset: str = "fast", dilations=None, snippet_length=None,
                    refine_steps=None) -> tuple[VideoPreset, list[int], int, int]:
    """The preset and its snippet settings, each None taking the preset's, checked (one line naming the bad one):
    ``(preset, dilations, snippet_length, refine_steps)``. The CLI runs it before any model is loaded."""
    if preset not in PRESETS:
        raise InputError(f"`preset` must be one of {', '.join(PRESETS)}; got {preset!r}.")
    p = PRESETS[preset]
    gaps = list(p.dilations if dilations is None else dilations)
    if not gaps or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in gaps):
        raise InputError(f"`dilations` must be positive integers; got {dilations!r}.")
    if 1 not in gaps:  # rollingdepth_pipeline.py, forward: ``assert 1 in dilations``
        raise InputError(f"`dilations` must include 1 (every frame with its neighbours); got {gaps}.")
    length = check_int("snippet_length", p.snippet_length if snippet_length is None else snippet_length)
    refine = check_int("refine_steps", p.refine_steps if refine_steps is None else refine_steps, 0)
    return p, gaps, length, refine


def seed_value(seed) -> int:
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=seed).item())
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"`seed` must be an integer; got {seed!r}.")
    return seed
