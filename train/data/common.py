"""What every training set yields, and the per-sample steps they share: resize, flip, normalise, fill.

A loader returns :class:`DepthSample` (RGB 0..1 ``[H,W,3]``, metric or relative depth ``[H,W]``, a valid mask,
optional normals); :func:`prepare` turns it into the tensors the trainer consumes:

- ``rgb``: ``[3,H,W]`` in -1..1 (the VAE's input range)
- ``target``: ``[3,H,W]`` in -1..1: depth normalised per sample with the 2 % / 98 % quantiles of its valid
  pixels, clipped, replicated to 3 channels (Marigold's ``scale_shift_depth`` with ``min_max_quantile: 0.02``),
  or unit normals; invalid pixels filled with their nearest valid neighbour so the VAE sees no holes
- ``valid``: ``[1,H,W]`` bool
- ``depth``: ``[1,H,W]`` the raw depth (for the affine-invariant loss and validation)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from marigold.optional import require

QUANTILE = 0.02


@dataclass
class DepthSample:
    rgb: np.ndarray  # [H,W,3] float32 0..1
    depth: np.ndarray  # [H,W] float32 (0 where invalid)
    valid: np.ndarray  # [H,W] bool
    normals: np.ndarray | None = None  # [H,W,3] unit, Marigold's camera frame
    name: str = ""
    # any modality's targets by name ([H,W] or [H,W,C], in the range of the marigold.modality entry's Target):
    # what a modality other than depth and normals trains on (albedo, shading, material, ...)
    targets: dict[str, np.ndarray] | None = None
    # per-pixel surface labels [H,W] int (an index into the data set's label names, -1 = none), where the data
    # set has them (the synthetic scenes: train.data.synthetic.SURFACE_LABELS); segmentation trains on them
    labels: np.ndarray | None = None


Sample = DepthSample  # the name for samples that carry other targets than depth


def fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid pixels of ``x`` ([H,W] or [H,W,C]) by their nearest valid pixel's value."""
    if valid.all() or not valid.any():
        return x if valid.any() else np.zeros_like(x)
    distance_transform_edt = require("scipy.ndimage", "train", "Filling invalid depth pixels").distance_transform_edt

    _, (iy, ix) = distance_transform_edt(~valid, return_indices=True)
    return x[iy, ix]


def normalize_depth(depth: np.ndarray, valid: np.ndarray, quantile: float = QUANTILE) -> np.ndarray:
    """Affine-normalise depth to -1..1 with the ``quantile`` / ``1-quantile`` values of its valid pixels, clipped."""
    v = depth[valid]
    if v.size == 0:
        return np.zeros_like(depth)
    lo, hi = np.quantile(v, [quantile, 1.0 - quantile])
    scaled = (depth - lo) / max(hi - lo, 1e-6) * 2.0 - 1.0
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def resize_sample(s: DepthSample, size: tuple[int, int]) -> DepthSample:
    """Resize to ``(H, W)``: RGB bilinear (antialiased), depth / mask / normals nearest (no mixed depths)."""
    h, w = s.rgb.shape[:2]
    if (h, w) == tuple(size):
        return s
    rgb = torch.from_numpy(np.ascontiguousarray(s.rgb)).permute(2, 0, 1)[None]
    rgb = F.interpolate(rgb, size=size, mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0)
    ys = np.minimum((np.arange(size[0]) + 0.5) * h / size[0], h - 1).astype(np.int64)
    xs = np.minimum((np.arange(size[1]) + 0.5) * w / size[1], w - 1).astype(np.int64)
    pick = np.ix_(ys, xs)
    normals = s.normals[pick] if s.normals is not None else None
    return DepthSample(rgb=rgb.clamp(0, 1).numpy(), depth=s.depth[pick], valid=s.valid[pick], normals=normals,
                       name=s.name)


def flip_sample(s: DepthSample) -> DepthSample:
    """Horizontal flip; the normals' x component changes sign."""
    normals = None
    if s.normals is not None:
        normals = s.normals[:, ::-1].copy()
        normals[..., 0] *= -1
    return DepthSample(rgb=s.rgb[:, ::-1].copy(), depth=s.depth[:, ::-1].copy(), valid=s.valid[:, ::-1].copy(),
                       normals=normals, name=s.name)


def prepare(s: DepthSample, task: str = "depth", size: tuple[int, int] | None = None, flip: bool = False) -> dict:
    """A sample → the trainer's tensors (see the module docstring)."""
    if size is not None:
        s = resize_sample(s, size)
    if flip:
        s = flip_sample(s)
    valid = s.valid & np.isfinite(s.depth) & (s.depth > 0)
    if task == "depth":
        norm = normalize_depth(s.depth, valid)
        target = np.repeat(fill_invalid(norm, valid)[None], 3, axis=0)  # [3,H,W]
    elif task == "normals":
        if s.normals is None:
            raise ValueError(f"sample {s.name!r} has no normals; this data set cannot train a normals model.")
        n = fill_invalid(s.normals, valid)
        n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
        target = n.transpose(2, 0, 1)
    else:
        raise ValueError(f"task must be 'depth' or 'normals'; got {task!r}.")
    return {
        "rgb": torch.from_numpy(np.ascontiguousarray(s.rgb.transpose(2, 0, 1)) * 2.0 - 1.0).float(),
        "target": torch.from_numpy(np.ascontiguousarray(target)).float(),
        "valid": torch.from_numpy(np.ascontiguousarray(valid))[None],
        "depth": torch.from_numpy(np.ascontiguousarray(np.where(valid, s.depth, 0)))[None].float(),
    }
