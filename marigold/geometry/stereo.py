"""Stereo 3D from depth: the left and right views of a photo, and their compositions (side by side, top-bottom,
red-cyan anaglyph, cross-eyed), for photos and whole videos.

How a view is made (see docs/stereo.md for the choices and their measurements):

1. **Depth → disparity.** A stereo shift is proportional to *inverse* distance. Marigold's 0..1 depth is
   affine-invariant, so it is first given a metric meaning as everywhere in this package (``marigold.mesh``,
   DepthToNormal): 0 → distance 1, 1 → ``far_over_near``; a disparity map (``space="disparity"``, near = 1:
   RollingDepth, Depth Anything) is already affine in inverse distance and needs no ratio; a metric map
   (``space="metric"``: distances, :func:`marigold.complete`) gives its own ratio (farthest over nearest). The shift between the
   two views is then ``divergence`` percent of the width between the nearest and the farthest depth, and zero at
   the depth ``convergence`` (0 = nearest, 1 = farthest: the screen plane).
2. **Forward warp with a z-buffer.** Each row is a chain of segments between neighbouring pixels; every segment
   is moved to where its two ends go and rasterised at sub-pixel precision (linear in colour and distance), and
   where several segments land on one pixel the nearest wins. A segment that would stretch by more than
   ``max_stretch`` pixels spans a depth jump: it is cut, and what it would have covered is a hole.
3. **Holes filled from the background.** A hole is where the second eye sees behind a foreground edge; it is
   filled with the pixels on its *farther* side (never the nearer one), so foreground never smears into it (no
   ghosts, unlike a backward ``grid_sample`` warp, which copies the foreground edge into every hole).

All of it is vectorised torch on the inputs' device: no Python loop over pixels or rows.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

LAYOUTS = ("sbs", "hsbs", "tb", "anaglyph", "cross")
LAYOUT_HELP = {"sbs": "full side by side (left | right, twice the width)",
               "hsbs": "half side by side (each view squeezed to half the width: 3D TVs, VR players)",
               "tb": "top-bottom (left above right, twice the height)",
               "anaglyph": "red-cyan anaglyph (Dubois), for red-cyan glasses",
               "cross": "cross-eyed side by side (right | left)"}
SPACES = ("depth", "disparity", "metric")
DEFAULTS = dict(divergence=2.0, convergence=0.5, far_over_near=3.0, balance=0.0, max_stretch=0.25)
MAX_DIVERGENCE = 10.0  # percent of the width; iw3 calls 0-2 reasonable, beyond 10 % no eye fuses the pair

# Dubois' least-squares red-cyan matrices (E. Dubois, "A projection method to generate anaglyph stereo images",
# ICASSP 2001; the red-cyan pair from his page), applied to linear-light RGB.
DUBOIS_LEFT = ((0.456100, 0.500484, 0.176381),
               (-0.0400822, -0.0378246, -0.0157589),
               (-0.0152161, -0.0205971, -0.00546856))
DUBOIS_RIGHT = ((-0.0434706, -0.0879388, -0.00155529),
                (0.378476, 0.73364, -0.0184503),
                (-0.0721527, -0.112961, 1.2264))


@dataclass
class StereoPair:
    """The two views ``[N,3,H,W]`` 0..1, and notes on what was adapted (e.g. a resized depth map)."""

    left: torch.Tensor
    right: torch.Tensor
    shift: torch.Tensor  # [N,1,H,W] the shift between the views in pixels (positive = in front of the screen)
    notes: list[str] = field(default_factory=list)

    def compose(self, layout: str = "sbs") -> torch.Tensor:
        return compose(self.left, self.right, layout)


# --- checks -------------------------------------------------------------------------------------------------


def check_options(divergence: float, convergence: float, far_over_near: float = 3.0, balance: float = 0.0,
                  space: str = "depth", max_stretch: float = 0.25) -> None:
    """Refuse out-of-range settings with one line naming the option."""
    def bad(x) -> bool:
        return not isinstance(x, (int, float)) or not math.isfinite(x)

    if bad(divergence) or not 0.0 <= divergence <= MAX_DIVERGENCE:
        raise InputError(f"`divergence` must be between 0 and {MAX_DIVERGENCE:g} (percent of the image width; "
                         f"0-2 is comfortable); got {divergence}.")
    if bad(convergence) or not 0.0 <= convergence <= 1.0:
        raise InputError(f"`convergence` must be between 0 (nearest depth on the screen) and 1 (farthest); "
                         f"got {convergence}.")
    if bad(far_over_near) or not far_over_near > 1.0:
        raise InputError(f"`far_over_near` must be greater than 1 (how many times farther depth 1 is than "
                         f"depth 0); got {far_over_near}.")
    if bad(balance) or not -1.0 <= balance <= 1.0:
        raise InputError(f"`balance` must be between -1 (the input is the right eye) and 1 (the input is the "
                         f"left eye); got {balance}.")
    if bad(max_stretch) or not max_stretch >= 0.0:
        raise InputError(f"`max_stretch` must be 0 or more (pixels); got {max_stretch}.")
    if space not in SPACES:
        raise InputError(f"`space` must be 'depth' (near = 0, dark: Marigold), 'disparity' (near = 1, bright: "
                         f"RollingDepth, Depth Anything, MiDaS) or 'metric' (distances: marigold.complete); "
                         f"got {space!r}.")


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise InputError(f"stereo layout must be one of {', '.join(LAYOUTS)}; got {layout!r}.")


def _as_images(image, depth) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(image, depth) in any of the library's forms → ``[N,3,H,W]`` and ``[N,1,H,W]`` float32 of one size."""
    from ..core.image import to_tensor

    img = to_tensor(image).float()  # [N,3,H,W]
    if isinstance(depth, torch.Tensor):
        d = depth.detach().float()
        if d.ndim == 2:
            d = d[None, None]
        elif d.ndim == 3:
            d = d[:, None]  # [N,H,W] → [N,1,H,W]
        if d.ndim != 4 or d.shape[1] != 1:
            raise InputError(f"`depth` must be [N,1,H,W], [N,H,W] or [H,W]; got {tuple(depth.shape)}.")
    else:
        from .mesh import depth_array

        d = torch.from_numpy(depth_array(depth))[None, None]  # [1,1,H,W]
    d = d.to(img.device)
    n, _, h, w = img.shape
    if d.shape[0] != n:
        if d.shape[0] == 1:
            d = d.expand(n, -1, -1, -1)
        elif n == 1:
            img = img.expand(d.shape[0], -1, -1, -1)
        else:
            raise InputError(f"`depth` has {d.shape[0]} maps and `image` {n} pictures; give one depth per "
                             f"picture.")
    if min(h, w) < 2:
        raise InputError(f"`image` of {w}×{h} pixels is too small for stereo: a view needs at least 2 pixels "
                         f"on each side.")
    notes = []
    dh, dw = d.shape[-2:]
    if (dh, dw) != (h, w):
        tol = 1.0 / min(dh, dw) + 1.0 / min(h, w) + 1e-6
        if abs((w / h) / (dw / dh) - 1.0) > tol:
            raise InputError(f"`depth` of {dw}×{dh} pixels does not show what `image` of {w}×{h} shows (another "
                             f"aspect ratio): pass the depth predicted from this picture.")
        # NaN survives interpolation as NaN around it; it is made far afterwards, in _distance
        d = F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)  # [N,1,H,W]
        notes.append(f"depth of {dw}×{dh} resized to the image's {w}×{h}")
    return img, d, notes


def from_metric(depth: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Metric distances ``[N,1,H,W]`` (NaN/inf = no depth) → (0..1 depth, near = 0, NaN kept; far/near ratio):
    one ratio for the batch, so that the frames of a clip keep one parallax scale."""
    finite = torch.isfinite(depth)
    z = depth[finite]
    if z.numel() == 0:
        raise InputError("metric depth has no finite value.")
    if bool((z <= 0).any()):
        raise InputError(f"metric depth has {int((z <= 0).sum())} values ≤ 0; a distance is positive.")
    lo, hi = float(z.min()), float(z.max())
    if hi <= lo * (1 + 1e-6):
        return torch.where(finite, torch.zeros_like(depth), depth), 1.0 + 1e-3  # a flat wall: no parallax to give
    return (depth - lo) / (hi - lo), hi / lo


# --- depth → disparity --------------------------------------------------------------------------------------


def inverse_distance(depth: torch.Tensor, far_over_near: float = 3.0, space: str = "depth") -> torch.Tensor:
    """0..1 maps → inverse distance ``q`` in ``[1/far_over_near, 1]`` (1 = nearest); NaN and ±inf are far.

    Depth (near = 0): distance ``1 + d·(R−1)``, ``q = 1/distance``. Disparity (near = 1): already affine in
    ``q``, so ``q = 1/R + p·(1 − 1/R)``; the shift :func:`disparity` makes from it does not depend on R.
    """
    far = 1.0 if space == "depth" else 0.0
    d = torch.nan_to_num(depth, nan=far, posinf=far, neginf=far).clamp(0.0, 1.0)
    r = float(far_over_near)
    if space == "depth":
        return 1.0 / (1.0 + d * (r - 1.0))
    return 1.0 / r + d * (1.0 - 1.0 / r)


def disparity(depth: torch.Tensor, width: int, divergence: float = 2.0, convergence: float = 0.5,
              far_over_near: float = 3.0, space: str = "depth") -> tuple[torch.Tensor, torch.Tensor]:
    """``[N,1,H,W]`` 0..1 maps → (shift between the views in pixels ``[N,1,H,W]``, positive = nearer than the
    screen plane; distance ``[N,1,H,W]``, the z-buffer's key, larger = farther).

    The shift is ``divergence``% of ``width`` between depth 0 and depth 1, zero at depth ``convergence``:
    the depth at which a physical stereo camera pair with converged (sensor-shifted) optics sees no parallax.
    """
    check_options(divergence, convergence, far_over_near, 0.0, space)
    if space == "metric":
        depth, far_over_near = from_metric(depth)  # [N,1,H,W] 0..1 and the map's own ratio
        space = "depth"
    q = inverse_distance(depth, far_over_near, space)  # [N,1,H,W]
    qc = inverse_distance(torch.tensor(convergence if space == "depth" else 1.0 - convergence),
                          far_over_near, space).item()
    r = float(far_over_near)
    scale = divergence / 100.0 * width / (1.0 - 1.0 / r)
    return scale * (q - qc), 1.0 / q  # [N,1,H,W], [N,1,H,W]


# --- warp ---------------------------------------------------------------------------------------------------

def forward_warp(image: torch.Tensor, shift: torch.Tensor, distance: torch.Tensor,
                 max_stretch: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each pixel of ``image`` ``[N,C,H,W]`` by ``shift`` ``[N,1,H,W]`` pixels along its row; nearer
    (smaller ``distance``) wins. Returns (view ``[N,C,H,W]``, covered ``[N,1,H,W]`` bool: False = a hole,
    filled by :func:`fill_from_background`).

    Each pair of neighbours ``(x, x+1)`` is a segment that lands on ``[x+s₀, x+1+s₁]``; target pixel centres
    inside it get the linear interpolation of the two ends (colour and distance). A segment as long as
    ``1 + max_stretch`` or longer spans a depth jump and is cut; a folded one (shorter than 0) is dropped (it
    lies behind the edge that folds it).
    """
    n, c, h, w = image.shape
    dev = image.device
    xs = torch.arange(w, device=dev, dtype=torch.float32)  # [W]
    pos = xs + shift[:, 0].float()  # [N,H,W] where each pixel centre lands
    a, b = pos[..., :-1], pos[..., 1:]  # [N,H,W-1] the segments' ends
    length = b - a  # [N,H,W-1]
    keep = (length >= 0) & (length < 1.0 + max_stretch)  # [N,H,W-1]
    inv_len = 1.0 / length.clamp(min=1e-6)  # [N,H,W-1]
    start = torch.ceil(a)  # [N,H,W-1] first target pixel centre at or after a
    z = distance[:, 0].float()  # [N,H,W]
    z0, dz = z[..., :-1], z[..., 1:] - z[..., :-1]  # [N,H,W-1]

    # z-buffer: one int32 key per candidate, (quantised distance, segment index) → amin per target pixel. The
    # index breaks ties deterministically, whatever order the scatter runs in; 2^(31 - index bits) distance
    # levels (2^20 at 1920 px) order any two surfaces a stereo shift can tell apart.
    x_bits = max(1, int(w - 1).bit_length())
    z_levels = float((1 << (31 - x_bits)) - 1)
    z_lo, z_hi = float(z.min()), float(z.max())
    z_scale = z_levels / max(z_hi - z_lo, 1e-12)
    seg = torch.arange(w - 1, device=dev, dtype=torch.int32)  # [W-1]
    rows = (torch.arange(n * h, device=dev) * w).view(n, h, 1)  # [N,H,1] first flat pixel of each row
    dummy = n * h * w  # where candidates that land nowhere are scattered
    best = torch.full((dummy + 1,), torch.iinfo(torch.int32).max, dtype=torch.int32, device=dev)
    for k in range(int(math.ceil(1.0 + max_stretch))):  # target pixels a kept segment can cover
        t = start + k  # [N,H,W-1] candidate target column
        ok = keep & (t <= b) & (t >= 0) & (t <= w - 1)  # [N,H,W-1]
        wt = ((t - a) * inv_len).clamp(0.0, 1.0)  # [N,H,W-1] weight of the right end
        zq = ((z0 + dz * wt - z_lo) * z_scale).clamp(0, z_levels).to(torch.int32)  # [N,H,W-1]
        key = (zq << x_bits) | seg  # [N,H,W-1]
        target = torch.where(ok, rows + t.long().clamp(0, w - 1), dummy)  # [N,H,W-1] flat pixel
        best.scatter_reduce_(0, target.view(-1), key.view(-1), reduce="amin")
    best = best[:dummy].view(n, 1, h, w)  # [N,1,H,W]
    covered = best != torch.iinfo(torch.int32).max  # [N,1,H,W]

    # the winner's colour and distance: its segment's two ends, at the target column's weight
    win = torch.where(covered, best & ((1 << x_bits) - 1), 0).long()  # [N,1,H,W] segment index
    col = torch.arange(w, device=dev, dtype=torch.float32)  # [W] target column
    wa = torch.gather(a[:, None], -1, win)  # [N,1,H,W]
    wi = torch.gather(inv_len[:, None], -1, win)  # [N,1,H,W]
    ww = ((col - wa) * wi).clamp(0.0, 1.0)  # [N,1,H,W]
    img = image.float()
    c0 = torch.gather(img, -1, win.expand(n, c, h, w))  # [N,C,H,W]
    c1 = torch.gather(img, -1, (win + 1).expand(n, c, h, w))  # [N,C,H,W]
    out = c0 * (1 - ww) + c1 * ww  # [N,C,H,W]; exactly c0 at weight 0 and c1 at 1
    z_out = torch.gather(z[:, None], -1, win) * (1 - ww) + torch.gather(z[:, None], -1, win + 1) * ww
    z_out = torch.where(covered, z_out, float("inf"))  # [N,1,H,W]
    return fill_from_background(out, covered, z_out, img), covered


def fill_from_background(view: torch.Tensor, covered: torch.Tensor, distance: torch.Tensor,
                         fallback: torch.Tensor | None = None, margin: int = 1, taps: int = 4) -> torch.Tensor:
    """Fill each run of holes in a row (``covered`` False) from the pixels on its farther side.

    A disoccluded run sits between a foreground edge and the background the foreground used to hide; only the
    farther side is the hidden surface, so only it is copied (a run at the border takes its one neighbour).
    The fill starts ``margin`` pixels back from the run, past the edge pixel whose colour may still mix in the
    foreground (antialiasing), and is the mean of ``taps`` background pixels there (those of the same surface:
    no nearer than the first), then smoothed over the run's rows: a hidden texture is unknown, and its local
    mean is the estimate with the least error, with no streak of one pixel's colour.
    ``[N,C,H,W]``, ``[N,1,H,W]`` bool, ``[N,1,H,W]`` → ``[N,C,H,W]``.
    """
    n, c, h, w = view.shape
    cov = covered[:, 0]  # [N,H,W]
    if bool(cov.all()):
        return view
    dev = view.device
    xs = torch.arange(w, device=dev).expand(n, h, w)  # [N,H,W]
    left = torch.where(cov, xs, -1).cummax(dim=-1).values  # [N,H,W] nearest covered column ≤ x
    right = torch.where(cov, xs, w).flip(-1).cummin(dim=-1).values.flip(-1)  # [N,H,W] ≥ x
    # from here on only the holes (a few percent of the pixels): flat indices into rows of width w
    hole = (~cov).reshape(-1).nonzero().squeeze(1)  # [P]
    row0 = hole - hole % w  # [P] first flat pixel of each hole's row
    l, r = left.reshape(-1)[hole], right.reshape(-1)[hole]  # [P]
    has_l, has_r = l >= 0, r < w
    z = distance.reshape(-1)  # [N·H·W]
    flat_cov = cov.reshape(-1)
    z_l = torch.where(has_l, z[row0 + l.clamp(0, w - 1)], -1.0)  # [P]
    z_r = torch.where(has_r, z[row0 + r.clamp(0, w - 1)], -1.0)  # [P]
    use_l = has_l & (z_l >= z_r)  # [P] the left neighbour is the farther one (or the only one)
    edge = torch.where(use_l, l, r).clamp(0, w - 1)  # [P] the hole's background neighbour (column)
    step = torch.where(use_l, -1, 1)  # [P] away from the hole
    z_edge = z[row0 + edge]  # [P]
    pix = view.permute(0, 2, 3, 1).reshape(-1, c)  # [N·H·W,C]
    total = torch.zeros(hole.numel(), c, device=dev, dtype=view.dtype)  # [P,C]
    count = torch.zeros(hole.numel(), 1, device=dev, dtype=view.dtype)  # [P,1]
    for j in range(margin, margin + max(1, taps)):  # background pixels past the edge pixel
        at = row0 + (edge + step * j).clamp(0, w - 1)  # [P]
        ok = (flat_cov[at] & (z[at] >= z_edge * 0.98))[:, None]  # [P,1] covered, same surface or farther
        total += pix[at] * ok
        count += ok
    value = torch.where(count > 0, total / count.clamp(min=1), pix[row0 + edge])  # [P,C]
    if fallback is not None:  # a row with nothing covered keeps the input
        orphan = ~(has_l | has_r)
        value[orphan] = fallback.to(view.dtype).permute(0, 2, 3, 1).reshape(-1, c)[hole[orphan]]
    out = pix.clone()  # [N·H·W,C]
    out[hole] = value
    # smooth down the run (rows above and below that are holes too): their fills come from different rows
    flat_hole = ~flat_cov
    y = (hole // w) % h  # [P] row within the image
    acc, cnt = value.clone(), torch.ones_like(count)
    for dy, inside in ((-1, y > 0), (1, y < h - 1)):
        at = (hole + dy * w).clamp(0, n * h * w - 1)  # [P]
        ok = (inside & flat_hole[at])[:, None]  # [P,1]
        acc += out[at] * ok
        cnt += ok
    out[hole] = acc / cnt
    return out.view(n, h, w, c).permute(0, 3, 1, 2)  # [N,C,H,W]


# --- the views ----------------------------------------------------------------------------------------------


def stereo(image, depth, divergence: float = DEFAULTS["divergence"],
           convergence: float = DEFAULTS["convergence"], *, far_over_near: float = DEFAULTS["far_over_near"],
           space: str = "depth", balance: float = DEFAULTS["balance"],
           max_stretch: float = DEFAULTS["max_stretch"]) -> StereoPair:
    """The left and right views of ``image`` (PIL / ndarray / ``[N,3,H,W]`` tensor 0..1) seen with ``depth``
    (``[N,1,H,W]`` / ``[H,W]`` 0..1, near = 0; ``space="disparity"`` for near = 1 maps).

    Args:
        divergence: the shift between the views from the nearest to the farthest depth, percent of the width
            (0 = no 3D, the input unchanged; 0-2 comfortable; at most 10).
        convergence: the depth that sits on the screen plane (0 = nearest: all behind the screen; 1 = farthest:
            all in front of it).
        far_over_near: how many times farther depth 1 is than depth 0 (``space="depth"`` only; a disparity
            map's shift does not depend on it; a metric map, ``space="metric"``, gives its own). Same meaning as for DepthToMesh and DepthToNormal.
        balance: how the shift is split: 0 = half to each eye; 1 = the input is the left eye (the right view
            takes the whole shift); -1 = the input is the right eye.
        max_stretch: a segment between neighbours stretched by more than this many pixels is a depth jump: cut
            and filled from the background.

    A depth map of another size than the image (same aspect ratio) is resized to it, with a note in
    ``.notes``; NaN or infinite depth counts as the farthest. Returns a :class:`StereoPair`.
    """
    check_options(divergence, convergence, far_over_near, balance, space, max_stretch)
    img, d, notes = _as_images(image, depth)
    if bool(torch.isnan(d).any()) or bool(torch.isinf(d).any()):
        notes.append("NaN or infinite depth treated as the farthest")
    if space == "metric":  # the map's own far/near ratio replaces the guess (disparity() converts it)
        notes.append(f"metric depth: far/near = {from_metric(d)[1]:.3g} from the map (far_over_near not used)")
    w = img.shape[-1]
    shift, dist = disparity(d, w, divergence, convergence, far_over_near, space)  # [N,1,H,W] ×2
    # a point nearer than the screen (shift > 0) moves right in the left eye and left in the right eye
    left, _ = forward_warp(img, shift * ((1.0 - balance) / 2.0), dist, max_stretch)
    right, _ = forward_warp(img, shift * (-(1.0 + balance) / 2.0), dist, max_stretch)
    return StereoPair(left.clamp(0, 1), right.clamp(0, 1), shift, notes)


# --- compositions -------------------------------------------------------------------------------------------


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def anaglyph(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Red-cyan anaglyph ``[N,3,H,W]`` by Dubois' least-squares projection, in linear light (sRGB in and out)."""
    ml = torch.tensor(DUBOIS_LEFT, dtype=torch.float32, device=left.device)  # [3,3]
    mr = torch.tensor(DUBOIS_RIGHT, dtype=torch.float32, device=left.device)  # [3,3]
    lin = (torch.einsum("oc,nchw->nohw", ml, _srgb_to_linear(left.float()))
           + torch.einsum("oc,nchw->nohw", mr, _srgb_to_linear(right.float())))  # [N,3,H,W]
    return _linear_to_srgb(lin)


def _squeeze(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def compose(left: torch.Tensor, right: torch.Tensor, layout: str = "sbs") -> torch.Tensor:
    """Two views ``[N,3,H,W]`` → one picture: ``sbs`` ``[N,3,H,2W]``, ``hsbs`` ``[N,3,H,W]`` (each view
    half as wide), ``tb`` ``[N,3,2H,W]``, ``anaglyph`` ``[N,3,H,W]``, ``cross`` (right | left) ``[N,3,H,2W]``."""
    check_layout(layout)
    h, w = left.shape[-2:]
    if layout == "sbs":
        return torch.cat([left, right], dim=-1)
    if layout == "cross":
        return torch.cat([right, left], dim=-1)
    if layout == "tb":
        return torch.cat([left, right], dim=-2)
    if layout == "hsbs":
        return torch.cat([_squeeze(left, (h, (w + 1) // 2)), _squeeze(right, (h, w // 2))], dim=-1)
    return anaglyph(left, right)


def stereo_frames(images: torch.Tensor, depths: torch.Tensor, layout: str = "sbs", *, chunk: int = 4,
                  progress=None, check_cancel=None, **options) -> torch.Tensor:
    """A batch of pictures ``[N,3,H,W]`` (or one, for every depth) and depth maps ``[N,1,H,W]`` (or one, for every
    picture) → composed frames, ``chunk`` at a time so that a long clip's warp needs the memory of a few frames;
    ``progress(done, total)`` after each chunk, ``check_cancel()`` before it. ``options``: those of
    :func:`stereo`. Returns the frames on the CPU (where a clip of them is kept)."""
    check_layout(layout)
    n = max(images.shape[0], depths.shape[0])
    if images.shape[0] not in (1, n) or depths.shape[0] not in (1, n):
        raise InputError(f"`image` has {images.shape[0]} frames and `depth` {depths.shape[0]}: give one depth per "
                         f"frame (or one of either for all).")
    out = []
    for i in range(0, n, chunk):
        if check_cancel is not None:
            check_cancel()
        img = images[i:i + chunk] if images.shape[0] > 1 else images.expand(min(chunk, n - i), -1, -1, -1)
        d = depths[i:i + chunk] if depths.shape[0] > 1 else depths.expand(min(chunk, n - i), -1, -1, -1)
        out.append(stereo(img, d, **options).compose(layout).cpu())  # [n,3,H',W']
        if progress is not None:
            progress(min(i + chunk, n), n)
    return torch.cat(out)


# --- video --------------------------------------------------------------------------------------------------


class StereoVideoWriter:
    """A clip's stereo mp4, frame by frame: give it each photo frame and its depth from the clip's ONE
    normalisation (so the 3D strength cannot pump from frame to frame); it holds one frame at a time.

    ``shift_stats`` keeps each frame's mean and largest shift (pixels), what a test or a user checks for pumping.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, layout: str = "sbs",
                 divergence: float = DEFAULTS["divergence"], convergence: float = DEFAULTS["convergence"],
                 far_over_near: float = DEFAULTS["far_over_near"], space: str = "depth"):
        from ..video.io import VideoWriter

        check_layout(layout)
        check_options(divergence, convergence, far_over_near, 0.0, space)
        self.layout, self.space = layout, space
        self.options = dict(divergence=divergence, convergence=convergence, far_over_near=far_over_near)
        self.video = VideoWriter(path, fps)
        self.shift_stats: list[tuple[float, float]] = []

    def write(self, frame, depth: torch.Tensor) -> None:
        """``frame``: ``[H,W,3]`` uint8 or ``[3,H,W]`` 0..1; ``depth``: ``[1,H,W]`` 0..1 in the clip's space."""
        if isinstance(frame, np.ndarray):
            img = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255.0  # [1,3,H,W]
        else:
            img = frame.float().reshape(1, 3, *frame.shape[-2:])  # [1,3,H,W]
        d = depth.float().reshape(1, 1, *depth.shape[-2:]).to(img.device)  # [1,1,H,W]
        pair = stereo(img, d, space=self.space, **self.options)
        self.shift_stats.append((float(pair.shift.mean()), float(pair.shift.abs().max())))
        self.video.write(pair.compose(self.layout)[0])  # [3,H',W']

    def close(self) -> Path:
        return self.video.close()

    def abort(self) -> None:
        self.video.abort()

    def __enter__(self) -> "StereoVideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def save_stereo(pair_or_picture: StereoPair | torch.Tensor, path: str | os.PathLike, layout: str = "sbs") -> Path:
    """Write one composed picture (or a pair, composed with ``layout``) as a PNG/JPEG."""
    from ..io.images import save_rgb

    pic = pair_or_picture.compose(layout) if isinstance(pair_or_picture, StereoPair) else pair_or_picture
    return save_rgb(pic[0], path)

