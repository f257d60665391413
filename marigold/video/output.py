"""A predicted clip into what users keep: ONE normalisation for the whole clip, near = 0 depth frames, colour
frames, and the files the CLI writes (``<name>_depth.mp4``, ``<name>_depth_16bit/000000.png …``).

The video core (``marigold.video.pipeline``) yields frames aligned in one affine frame but not normalised; here the
clip's range is found in a first pass (frames parked on disk by :class:`~marigold.video.io.DepthFrameStore`)
and applied in a second, so a clip of any length needs the memory of one frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch

from ..io.colorize import colorize_depth
from ..errors import InputError
from .io import DepthFrameStore, DepthFrameWriter, VideoWriter

SPACES = ("depth", "disparity")


def parse_dilations(value: str | Sequence[int] | None) -> list[int] | None:
    """``"1,25"`` / ``"1 10 25"`` / ``[1, 25]`` → ``[1, 25]``; empty or None → None (the preset's)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
        if not parts:
            return None
        try:
            out = [int(p) for p in parts]
        except ValueError:
            raise InputError(f"dilations must be whole numbers separated by commas, e.g. '1,25'; "
                             f"got {value!r}.") from None
    else:
        out = [int(v) for v in value]
        if not out:
            return None
    if any(d < 1 for d in out):
        raise InputError(f"dilations must be at least 1 (1 = consecutive frames); got {out}.")
    return out


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise InputError(f"space must be one of {SPACES}; got {space!r}.")


def near_zero(depth: torch.Tensor, space: str) -> torch.Tensor:
    """A clip's ``[T,1,H,W]`` 0..1 maps (one normalisation) → near = 0, far = 1, as MarigoldDepth gives them.

    Disparity (RollingDepth: near = high) is flipped AFTER the one normalisation, ``1 − d``: the order of near
    and far is Marigold's, but the values stay affine in inverse depth (not converted to depth).
    """
    _check_space(space)
    return 1.0 - depth if space == "disparity" else depth  # [T,1,H,W]


def colorize_frames(depth: torch.Tensor, space: str, cmap: str = "Spectral") -> torch.Tensor:
    """``[T,1,H,W]`` 0..1 in the model's space → RGB ``[T,3,H,W]`` with near in the colormap's low end for
    both spaces, so a RollingDepth video and a Marigold video look alike (RollingDepth's own script uses
    Spectral_r on disparity: the same picture)."""
    _check_space(space)
    return colorize_depth(depth, cmap=cmap, invert=space == "disparity")


def snippet_workload(size: tuple[int, int], preset: str, processing_resolution: int | None = None,
                     snippet_length: int | None = None, batch_size: int = 1) -> tuple[int, int]:
    """(padded pixels per frame, frames per UNet call) that ``iter_video_depth`` will use for frames of
    ``size`` (H, W): what a host (ComfyUI's model management) must free memory for before the run."""
    from ..core.image import padded_size, processing_size
    from .pipeline import PRESETS

    if preset not in PRESETS:
        raise InputError(f"`preset` must be one of {', '.join(PRESETS)}; got {preset!r}.")
    p = PRESETS[preset]
    res = p.processing_resolution if processing_resolution is None else processing_resolution
    ph, pw = padded_size(processing_size(size, res))
    n = p.snippet_length if snippet_length is None else snippet_length
    return ph * pw, max(1, n) * batch_size


@dataclass
class ClipFiles:
    """What :func:`export_clip` wrote."""

    video: Path
    frames: Path
    raw: Path | None
    frame_count: int
    value_range: tuple[float, float]
    space: str


def clip_paths(out_dir: str | os.PathLike, name: str, space: str) -> tuple[Path, Path, Path]:
    """(colour mp4, 16-bit frame folder, raw .npy folder) for a clip: ``<name>_depth.mp4``,
    ``<name>_depth_16bit/`` (``<name>_disparity_16bit/`` for inverse-depth models), ``<name>_depth_npy/``."""
    _check_space(space)
    out = Path(out_dir)
    return out / f"{name}_depth.mp4", out / f"{name}_{space}_16bit", out / f"{name}_{space}_npy"


def export_clip(frames: Iterable, out_dir: str | os.PathLike, name: str, fps: float | Fraction, *,
                space: str = "depth", cmap: str = "Spectral", keep_raw: bool = False,
                total: int | None = None, progress: bool = True,
                on_frame: Callable[[int, torch.Tensor], None] | None = None) -> ClipFiles:
    """Stream a clip's aligned frames (``VideoFrame``-likes: ``.index``, ``.value [1,H,W]``) into files with
    ONE normalisation for the clip: ``min..max`` of the whole clip → 0..1.

    Pass one parks each frame on disk (float32) and tracks the range; pass two writes the 16-bit PNG frames
    (the model's space: depth, or disparity for inverse-depth models) and the colour mp4 at ``fps``.
    ``keep_raw`` keeps the parked frames as ``<name>_<space>_npy/000000.npy`` (aligned, not normalised).
    ``on_frame(index, depth [1,H,W])`` sees each frame of pass two, normalised once for the clip (the stereo
    video is written from it).
    """
    from tqdm.auto import tqdm

    video_path, frames_dir, raw_dir = clip_paths(out_dir, name, space)
    with DepthFrameStore(out_dir) as store:
        for f in tqdm(frames, total=total, desc=f"{name}: depth", unit="frame", disable=not progress):
            store.add(f.index, f.value)
        lo, hi = store.value_range
        for old in frames_dir.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png") if frames_dir.is_dir() else ():
            old.unlink()  # a longer earlier run must not leave frames past this clip's end
        writer = DepthFrameWriter(frames_dir)
        with VideoWriter(video_path, fps) as video:
            for i, d in tqdm(store.normalized(), total=store.count, desc=f"{name}: writing", unit="frame",
                             disable=not progress):
                writer.write(i, d)
                video.write(colorize_frames(d[None], space, cmap)[0])  # [3,H,W]
                if on_frame is not None:
                    on_frame(i, d)
        raw = store.keep(raw_dir) if keep_raw else None
        count = store.count
    return ClipFiles(video_path, frames_dir, raw, count, (lo, hi), space)
