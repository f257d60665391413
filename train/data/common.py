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

from marigold.errors import InputError
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


@dataclass
class SegmentationSample:
    """Text-grounded segmentation's sample (train.data.segmentation, train.data.coco)."""

    rgb: np.ndarray  # [H,W,3] float32 0..1
    mask: np.ndarray  # [H,W] bool: the pixels of ``prompt``
    prompt: str  # the class name
    name: str = ""


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
    targets = {k: v[pick] for k, v in s.targets.items()} if s.targets else s.targets
    return DepthSample(rgb=rgb.clamp(0, 1).numpy(), depth=s.depth[pick], valid=s.valid[pick], normals=normals,
                       name=s.name, targets=targets)


def flip_sample(s: DepthSample, unit: tuple[str, ...] = ("normals",)) -> DepthSample:
    """Horizontal flip; the x component of the normals (and of the targets named in ``unit``) changes sign."""
    normals = None
    if s.normals is not None:
        normals = s.normals[:, ::-1].copy()
        normals[..., 0] *= -1
    targets = None
    if s.targets is not None:
        targets = {k: v[:, ::-1].copy() for k, v in s.targets.items()}
        for k in unit:
            if k in targets and targets[k].ndim == 3:
                targets[k][..., 0] *= -1
    return DepthSample(rgb=s.rgb[:, ::-1].copy(), depth=s.depth[:, ::-1].copy(), valid=s.valid[:, ::-1].copy(),
                       normals=normals, name=s.name, targets=targets)


def prepare(s: DepthSample, task: str = "depth", size: tuple[int, int] | None = None, flip: bool = False) -> dict:
    """A sample → the trainer's tensors (see the module docstring). ``task``: a modality of
    :mod:`marigold.modality` (depth and normals as below; any other: its targets from ``s.targets``, each
    encoded by its entry and stacked, ``target [3·T,H,W]``)."""
    from marigold.core.modality import get as get_modality

    m = get_modality(task)
    if size is not None:
        s = resize_sample(s, size)
    if flip:
        s = flip_sample(s, tuple(t.name for t in m.targets if t.transfer == "unit") or ("normals",))
    kind = m.targets[0].transfer if m.n_targets == 1 else None
    if kind not in ("affine", "unit"):  # depth (affine-normalised) and normals come from their own fields
        return _prepare_targets(s, m)
    valid = s.valid & np.isfinite(s.depth) & (s.depth > 0)
    if kind == "affine":
        norm = normalize_depth(s.depth, valid)
        target = np.repeat(fill_invalid(norm, valid)[None], 3, axis=0)  # [3,H,W]
    else:  # normals
        if s.normals is None:
            raise ValueError(f"sample {s.name!r} has no normals; this data set cannot train a normals model.")
        n = fill_invalid(s.normals, valid)
        n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
        target = n.transpose(2, 0, 1)
    return {
        "rgb": torch.from_numpy(np.ascontiguousarray(s.rgb.transpose(2, 0, 1)) * 2.0 - 1.0).float(),
        "target": torch.from_numpy(np.ascontiguousarray(target)).float(),
        "valid": torch.from_numpy(np.ascontiguousarray(valid))[None],
        "depth": torch.from_numpy(np.ascontiguousarray(np.where(valid, s.depth, 0)))[None].float(),
    }


def target_map(s: DepthSample, modality, name: str) -> np.ndarray | None:
    """Sample ``s``'s map of ``modality``'s target ``name``, or None: ``s.targets["MODALITY/NAME"]`` where a data
    set serving several modalities defines the target differently for this one (the synthetic renders' lighting
    albedo is the diffuse reflectance, the appearance albedo the base colour), else ``s.targets[name]``; normals
    fall back on ``s.normals``."""
    have = s.targets or {}
    x = have.get(f"{modality.name}/{name}", have.get(name))
    return s.normals if x is None and name == "normals" else x


def _prepare_targets(s: DepthSample, m) -> dict:
    """Any modality's targets (``s.targets[name]``) → VAE input stacked ``[3·T,H,W]``, with the valid mask
    (the sample's, and every target finite); refuses a sample with a missing or entirely invalid target."""
    have = s.targets or {}
    valid = s.valid.copy()
    maps = []
    for t in m.targets:
        x = target_map(s, m, t.name)
        if x is None:
            raise InputError(f"sample {s.name!r} has no {t.name!r} target; this data set cannot train a "
                             f"{m.name} model (it gives: {', '.join(have) or 'no targets'}).")
        x = np.asarray(x, np.float32)
        finite = np.isfinite(x) if x.ndim == 2 else np.isfinite(x).all(-1)
        valid &= finite
        maps.append(x)
    if not valid.any():
        raise InputError(f"sample {s.name!r}: no valid pixel in its {m.name} targets (all NaN/inf or masked).")
    enc = []
    for t, x in zip(m.targets, maps):
        x = fill_invalid(np.where(valid[..., None] if x.ndim == 3 else valid, x, 0), valid)
        if t.transfer == "unit":
            x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)
        enc.append(t.encode(x))  # [3,H,W] -1..1
    depth = np.where(valid & np.isfinite(s.depth), s.depth, 0)
    return {
        "rgb": torch.from_numpy(np.ascontiguousarray(s.rgb.transpose(2, 0, 1)) * 2.0 - 1.0).float(),
        "target": torch.from_numpy(np.concatenate(enc)).float(),  # [3·T,H,W]
        "valid": torch.from_numpy(np.ascontiguousarray(valid))[None],
        "depth": torch.from_numpy(np.ascontiguousarray(depth))[None].float(),
    }


def augment_rgb(rgb: np.ndarray, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """prs-eth's normals augmentations on the image alone (``[H,W,3]`` 0..1; the targets are untouched):
    Gaussian blur (p ``gaussian_blur_p``, σ ~ U(0, ``gaussian_blur_sigma``)), motion blur (p ``motion_blur_p``, a
    line kernel of odd length 3..``motion_blur_kernel_size`` at an angle ~ U(0, ``motion_blur_angle_range``)°) and
    colour jitter (p ``color_jitter_p``: brightness, contrast, saturation factors ~ U(1 ± f), hue turned by
    U(±``jitter_hue_factor``)·360° in YIQ, an approximation of torchvision's HSV hue shift). Every draw comes from
    ``rng``, so the stream stays a pure function of (seed, micro-batch, rank)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()  # [1,3,H,W]
    if rng.random() < cfg.get("gaussian_blur_p", 0.0):
        sigma = rng.uniform(0.0, cfg.get("gaussian_blur_sigma", 4.0))
        if sigma > 1e-3:
            r = min(16, max(1, int(3 * sigma)))
            k = torch.exp(-torch.arange(-r, r + 1).float() ** 2 / (2 * sigma ** 2))
            k = k / k.sum()
            x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
            x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    if rng.random() < cfg.get("motion_blur_p", 0.0):
        size = int(rng.choice([k for k in range(3, int(cfg.get("motion_blur_kernel_size", 11)) + 1, 2)]))
        angle = np.deg2rad(rng.uniform(0.0, cfg.get("motion_blur_angle_range", 360.0)))
        kern = torch.zeros(size, size)
        c = size // 2
        for s in np.linspace(-c, c, 4 * size):  # a line through the centre at that angle
            kern[int(round(c - s * np.sin(angle))), int(round(c + s * np.cos(angle)))] = 1.0
        kern = kern / kern.sum()
        x = F.conv2d(F.pad(x, (c, c, c, c), mode="replicate"), kern.expand(3, 1, size, size), groups=3)
    if rng.random() < cfg.get("color_jitter_p", 0.0):
        def factor(key: str) -> float:
            f = cfg.get(key, 0.0)
            return float(rng.uniform(max(0.0, 1 - f), 1 + f))

        x = x * factor("jitter_brightness_factor")
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]  # [1,1,H,W]
        x = (x - grey.mean()) * factor("jitter_contrast_factor") + grey.mean()
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        x = (x - grey) * factor("jitter_saturation_factor") + grey
        turn = rng.uniform(-1, 1) * cfg.get("jitter_hue_factor", 0.0) * 2 * np.pi
        yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
        rot = torch.tensor([[1, 0, 0], [0, np.cos(turn), -np.sin(turn)], [0, np.sin(turn), np.cos(turn)]]).float()
        m = torch.linalg.inv(yiq) @ rot @ yiq  # [3,3]
        x = torch.einsum("ij,bjhw->bihw", m, x)
    return x[0].clamp(0, 1).permute(1, 2, 0).numpy().astype(np.float32)
