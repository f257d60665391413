"""Frames in and out of video depth: any form of frames given (images, arrays, tensors, an iterable) as one checked
``[1,3,H,W]`` tensor at a time, and what comes back (:class:`VideoFrame`, :class:`VideoPrediction`), with the
:class:`ClipNormalizer` that maps a clip's aligned values to 0..1 once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core import image as img
from ..errors import InputError


@dataclass
class VideoFrame:
    """One frame of video depth: ``value [1,H,W]`` float32 on the CPU, in one affine frame for the whole clip
    (comparable across frames) but not normalised; map it to 0..1 with a :class:`ClipNormalizer`."""

    index: int
    value: torch.Tensor


@dataclass
class VideoPrediction:
    """``depth [T,1,H,W]`` float32 in 0..1, normalised once for the clip. ``space``: "disparity" (RollingDepth:
    near = high) or "depth" (Marigold: near = 0). ``value_range``: the aligned values that map to 0 and 1."""

    depth: torch.Tensor
    space: str
    value_range: tuple[float, float]
    notes: list[str] = field(default_factory=list)


class ClipNormalizer:
    """Tracks the running (lo, hi) of a clip's aligned values and maps values to 0..1 with them.

    For one normalisation per clip, :meth:`update` with every frame first, then map. ``lo``/``hi`` may also be
    given (e.g. from a first pass) to map a stream as it comes.
    """

    def __init__(self, lo: float | None = None, hi: float | None = None) -> None:
        self.lo = math.inf if lo is None else float(lo)
        self.hi = -math.inf if hi is None else float(hi)

    def update(self, value: torch.Tensor) -> None:
        self.lo = min(self.lo, float(value.min()))
        self.hi = max(self.hi, float(value.max()))

    @property
    def value_range(self) -> tuple[float, float]:
        return self.lo, self.hi

    def __call__(self, value: torch.Tensor) -> torch.Tensor:
        if not math.isfinite(self.lo) or not math.isfinite(self.hi):
            raise ValueError("ClipNormalizer has seen no values; update() it with the clip's frames first.")
        span = self.hi - self.lo
        if span <= 0:
            return torch.zeros_like(value)
        return ((value - self.lo) / span).clamp_(0.0, 1.0)


def clip_normalizer(lo: float | None = None, hi: float | None = None) -> ClipNormalizer:
    return ClipNormalizer(lo, hi)


def frame_source(frames) -> tuple[Iterator[torch.Tensor], int | None]:
    """Any frames input → (iterator of ``[1,3,H,W]`` 0..1 tensors, frame count or None)."""
    if isinstance(frames, (str, bytes)) or hasattr(frames, "__fspath__"):
        raise InputError("`frames` is a path; pass frames (images, arrays, tensors). Read a video file or a folder "
                         "of frames with marigold.video.io first.")
    if isinstance(frames, torch.Tensor):
        if frames.ndim == 4:
            return (frames[i:i + 1] for i in range(frames.shape[0])), frames.shape[0]
        if frames.ndim in (2, 3):
            return iter([frames]), 1
        raise InputError(f"`frames` tensor must be [T,3,H,W] (or one frame [3,H,W]); got {tuple(frames.shape)}.")
    if isinstance(frames, np.ndarray):
        if frames.ndim == 4:
            return (frames[i] for i in range(frames.shape[0])), frames.shape[0]
        return iter([frames]), 1
    from PIL import Image

    if isinstance(frames, Image.Image):
        return iter([frames]), 1
    try:
        it = iter(frames)
    except TypeError:
        raise InputError(f"`frames` must be an iterable of images or a [T,3,H,W] tensor; got "
                         f"{type(frames).__name__}.") from None
    count = len(frames) if hasattr(frames, "__len__") else None
    return it, count


def iter_frames(frames) -> Iterator[torch.Tensor]:
    """Checked ``[1,3,H,W]`` float32 frames, all of one size."""
    it, _ = frame_source(frames)
    size = None
    for i, frame in enumerate(it):
        try:
            t = img.to_tensor(frame)
        except InputError as e:
            raise InputError(f"Frame {i}: {e}") from None
        if t.shape[0] != 1:
            raise InputError(f"Frame {i} holds {t.shape[0]} images; give one image per frame.")
        if size is None:
            size = tuple(t.shape[-2:])
        elif tuple(t.shape[-2:]) != size:
            raise InputError(f"Frame {i} is {t.shape[-1]}×{t.shape[-2]}, but frame 0 is {size[1]}×{size[0]}; all "
                             f"frames of a video must have one size.")
        yield t
    if size is None:
        raise InputError("`frames` is empty: a video needs at least one frame.")
