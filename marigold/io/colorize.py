"""Predictions to pictures: depth through matplotlib colormaps (metric depth with a scale bar), normals to RGB,
uncertainty to grey."""

from __future__ import annotations

import functools
import math

import numpy as np
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


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values between ``lo`` and ``hi`` for a scale's labels (1, 2 or 5 times a power of ten apart)."""
    span = max(hi - lo, 1e-9)
    raw = span / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def colorize_metric(depth: torch.Tensor, cmap: str = "Spectral", unit: str = "m") -> torch.Tensor:
    """Metric depth ``[H,W]`` / ``[1,1,H,W]`` → RGB ``[3,H,W']`` 0..1: the colour map (near to far between the
    map's own smallest and largest finite values) with a scale bar on its right labelled in ``unit``."""
    from PIL import Image, ImageDraw, ImageFont

    d = _as_nchw(depth.detach().float().cpu(), (1,), "Depth")[0:1]  # [1,1,H,W]
    finite = torch.isfinite(d)
    lo, hi = float(d[finite].min()), float(d[finite].max())
    rgb = colorize_depth(torch.where(finite, d, torch.full_like(d, hi)), cmap, value_range=(lo, max(hi, lo + 1e-6)))
    h, w = d.shape[-2:]
    try:
        font = ImageFont.load_default(size=max(10, h // 30))
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    bar_w, pad = max(8, w // 40), max(4, w // 100)
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), f"{hi:.2f} {unit}", font=font)
    label_w, text_h = box[2] - box[0] + pad, box[3] - box[1]
    canvas = Image.new("RGB", (w + 2 * pad + bar_w + label_w, h), "white")
    canvas.paste(Image.fromarray((rgb[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")), (0, 0))
    lut = _lut(cmap)  # [K,3]
    rows = torch.linspace(0, 1, h)  # top = near
    strip = lut[(rows * lut.shape[0]).long().clamp(0, lut.shape[0] - 1)]  # [H,3]
    bar = (strip[:, None, :].expand(h, bar_w, 3).numpy() * 255 + 0.5).astype("uint8")
    canvas.paste(Image.fromarray(bar), (w + pad, 0))
    draw = ImageDraw.Draw(canvas)
    for v in _nice_ticks(lo, hi):
        y = int(round((v - lo) / max(hi - lo, 1e-9) * (h - 1)))
        draw.line([(w + pad, y), (w + pad + bar_w + 2, y)], fill="black")
        text = f"{v:g} {unit}"
        ty = min(max(0, y - text_h // 2 - 1), h - text_h - 2)
        draw.text((w + 2 * pad + bar_w, ty), text, fill="black", font=font)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1)  # [3,H,W']


def colorize_metric_batch(depth: torch.Tensor, cmap: str = "Spectral", unit: str = "m") -> torch.Tensor:
    """:func:`colorize_metric` for each map of ``[N,1,H,W]`` → ``[N,3,H,W']``: each map on its own range and scale
    bar; where the labels make the pictures differ in width, the narrower ones are padded with white."""
    maps = [colorize_metric(d[None], cmap, unit) for d in _as_nchw(depth, (1,), "Depth")]  # each [3,H,W_i]
    wide = max(m.shape[-1] for m in maps)
    return torch.stack([torch.nn.functional.pad(m, (0, wide - m.shape[-1]), value=1.0) for m in maps])  # [N,3,H,W']
