"""Predictions to pictures: depth through matplotlib colormaps, normals to RGB, uncertainty to grey."""

from __future__ import annotations

import functools

import torch

from ..errors import InputError

CONTROLNET_PRESET = {"cmap": "gray", "invert": True}  # depth ControlNets expect near = white


@functools.lru_cache(maxsize=32)
def check_colormap(cmap: str) -> None:
    """Refuse a name matplotlib does not know, in one line."""
    _lut(cmap)


def _lut(cmap: str) -> torch.Tensor:
    """A colormap's table ``[K,3]``, indexed exactly as matplotlib indexes it (``int(x·K)``, clipped)."""
    import matplotlib
    import numpy as np

    try:
        cm = matplotlib.colormaps[cmap]
    except KeyError:
        raise InputError(f"Unknown colormap {cmap!r}; any matplotlib colormap name works (e.g. Spectral, "
                         f"magma, viridis, gray, Spectral_r).") from None
    return torch.from_numpy(cm(np.arange(cm.N))[:, :3].astype("float32"))  # [K,3]


def _as_nchw(x: torch.Tensor, channels: tuple[int, ...], what: str) -> torch.Tensor:
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in channels:
        raise InputError(f"{what} must be [N,{channels[0]},H,W] (or [H,W]); got {tuple(x.shape)}.")
    return x.float()


def normalize_range(depth: torch.Tensor, percentile: tuple[float, float] | None = None,
                    value_range: tuple[float, float] | None = None, per_image: bool = True) -> torch.Tensor:
    """Map each map of ``[N,1,H,W]`` to 0..1 by a fixed value range or by its own percentiles (e.g. (2, 98)).

    ``per_image=False`` takes the percentiles over the whole batch: one range for every map (a video's frames
    keep their relative depth instead of each being stretched on its own).
    """
    if value_range is None and percentile is None:
        return depth.clip(0.0, 1.0)
    if value_range is not None:
        lo = torch.full((depth.shape[0], 1, 1, 1), float(value_range[0]))
        hi = torch.full((depth.shape[0], 1, 1, 1), float(value_range[1]))
    else:
        p_lo, p_hi = percentile
        if not 0 <= p_lo < p_hi <= 100:
            raise InputError(f"Percentile range must satisfy 0 <= low < high <= 100; got {percentile}.")
        flat = depth.reshape(depth.shape[0] if per_image else 1, -1)  # [N,HW] or [1,NHW]
        q = torch.quantile(flat[:, :: max(1, flat.shape[1] // 1_000_000)],
                           torch.tensor([p_lo / 100, p_hi / 100]), dim=1)  # [2,N] or [2,1]
        lo, hi = q[0].view(-1, 1, 1, 1), q[1].view(-1, 1, 1, 1)
    return ((depth - lo) / (hi - lo).clamp(min=1e-12)).clip(0.0, 1.0)


def colorize_depth(depth: torch.Tensor, cmap: str = "Spectral", invert: bool = False,
                   percentile: tuple[float, float] | None = None,
                   value_range: tuple[float, float] | None = None, per_image: bool = True) -> torch.Tensor:
    """Depth ``[N,1,H,W]`` (or ``[H,W]``) → RGB ``[N,3,H,W]`` float32 in 0..1.

    ``invert`` flips near and far before the colormap; ``percentile=(2, 98)`` stretches each map between its
    own percentiles (``per_image=False``: the whole batch's, one range for all maps); ``value_range=(lo, hi)``
    maps a fixed range. Default: values are taken as 0..1.
    """
    d = normalize_range(_as_nchw(depth, (1,), "Depth"), percentile, value_range, per_image)
    if invert:
        d = 1.0 - d
    lut = _lut(cmap).to(d.device)
    k = lut.shape[0]
    idx = (d[:, 0] * k).long().clamp(0, k - 1)  # [N,H,W]
    return lut[idx].permute(0, 3, 1, 2).contiguous()  # [N,3,H,W]


def normals_to_rgb(normals: torch.Tensor, flip_x: bool = False, flip_y: bool = False,
                   flip_z: bool = False) -> torch.Tensor:
    """Unit normals ``[N,3,H,W]`` in -1..1 → RGB ``[N,3,H,W]`` in 0..1 (x right, y up, z to the viewer)."""
    n = _as_nchw(normals, (3,), "Normals")
    sign = torch.tensor([-1.0 if f else 1.0 for f in (flip_x, flip_y, flip_z)]).view(1, 3, 1, 1)
    return ((n * sign + 1.0) * 0.5).clip(0.0, 1.0)


def uncertainty_to_gray(uncertainty: torch.Tensor, saturation_percentile: float = 95.0) -> torch.Tensor:
    """Uncertainty ``[N,C,H,W]`` → ``[N,C,H,W]`` in 0..1, saturating at the given percentile per map."""
    u = uncertainty.float()
    if u.ndim == 2:
        u = u[None, None]
    flat = u.reshape(u.shape[0], -1)
    sat = torch.quantile(flat[:, :: max(1, flat.shape[1] // 1_000_000)], saturation_percentile / 100, dim=1)
    return (u / sat.clamp(min=1e-12).view(-1, 1, 1, 1)).clip(0.0, 1.0)
