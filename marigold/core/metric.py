"""Metric depth from an affine prediction and a few measured distances: the sparse input, and the one-second fit.

Every map Marigold makes is affine-invariant (near = 0, far = 1, no unit). Sparse measurements (a LiDAR sweep, a
phone's depth sensor, SfM points, a few distances a person knows) pin it to metres. This module holds

* :func:`sparse_depth`: the user's sparse input (an array the image's size with 0 or NaN where unmeasured, or
  a list of ``(x, y, depth)`` points) → one checked ``[N,1,H,W]`` map, 0 where unmeasured; bad input is one line;
* :func:`fit_metric`: the least-squares (or robust) scale and shift of an affine prediction to those points, in
  depth (Marigold, near = 0) or in inverse depth (disparity maps: Depth Anything, RollingDepth; near = high).
  With one measured depth the range is undefined: the map keeps the package's 3D default (the far plane
  ``far_over_near`` = 3 times the near one) and the point sets its level; the fit says so in ``note``.

The test-time optimisation that also reshapes the map (Marigold-DC) is :mod:`marigold.core.completion`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from .image import resize, to_tensor
from .snap import snap_to_points

DEFAULT_FAR_OVER_NEAR = 3.0  # marigold.geometry's default depth range, used when one point cannot give a range
SPACES = ("depth", "disparity")

SparseInput = "np.ndarray | torch.Tensor | Sequence[tuple[float, float, float]]"


@dataclass
class MetricDepth:
    """``depth [N,1,H,W]`` float32 in the sparse input's units; per image the fitted ``scale`` and ``shift`` (in
    the fit's ``space``: metric = scale·p + shift in depth, 1/metric = scale·p + shift in disparity), the number of
    ``points`` used, and a ``note`` when the fit had to assume something (one point, a flipped map)."""

    depth: torch.Tensor
    scale: list[float]
    shift: list[float]
    points: list[int]
    space: str
    note: str = ""


def parse_points(text: str | Sequence[str]) -> list[tuple[float, float, float]]:
    """``"x,y,metres"`` strings (one per point; several may share a string, separated by ';' or whitespace) →
    ``[(x, y, depth), ...]``. Pixel coordinates of the input image, x to the right, y down."""
    items = [text] if isinstance(text, str) else list(text)
    out = []
    for item in items:
        for token in str(item).replace(";", " ").split():
            parts = token.split(",")
            try:
                x, y, z = (float(v) for v in parts)
            except ValueError:
                raise InputError(f"known point {token!r}: write it as x,y,depth (pixels, pixels, metres), "
                                 f"e.g. 320,240,2.5.") from None
            out.append((x, y, z))
    if not out:
        raise InputError("no known point given: write each as x,y,depth (pixels, pixels, metres).")
    return out


def sparse_depth(sparse, size: tuple[int, int], n: int = 1) -> torch.Tensor:
    """The user's sparse depth → ``[N,1,H,W]`` float32, 0 where unmeasured (see the module docstring).

    ``sparse``: an array/tensor ``[H,W]``, ``[N,H,W]`` or ``[N,1,H,W]`` of the image's ``size`` (0 or NaN =
    unmeasured), or a list of ``(x, y, depth)`` points in pixels of the input image (for every image of the batch).
    """
    h, w = size
    if isinstance(sparse, (list, tuple)) and not (len(sparse) and isinstance(sparse[0], (np.ndarray, torch.Tensor))):
        pts = [tuple(p) for p in sparse]
        if not pts:
            raise InputError("sparse depth: the list of known points is empty.")
        if any(len(p) != 3 for p in pts):
            raise InputError("sparse depth: each known point is (x, y, depth); got " +
                             repr(next(p for p in pts if len(p) != 3)) + ".")
        m = torch.zeros(1, 1, h, w)
        for x, y, z in pts:
            xi, yi = int(round(float(x))), int(round(float(y)))
            if not (0 <= xi < w and 0 <= yi < h):
                raise InputError(f"known point ({x}, {y}) lies outside the {w}×{h} image.")
            m[0, 0, yi, xi] = float(z)
        t = m.expand(n, 1, h, w).clone()
    else:
        if isinstance(sparse, (list, tuple)):
            sparse = np.stack([np.asarray(s) for s in sparse])
        t = torch.as_tensor(np.asarray(sparse) if not isinstance(sparse, torch.Tensor) else sparse).float().cpu()
        if t.ndim == 2:
            t = t[None, None]
        elif t.ndim == 3:
            t = t[:, None] if t.shape[0] != 1 or n == 1 else t[None]
        if t.ndim != 4 or t.shape[1] != 1:
            raise InputError(f"sparse depth must be [H,W], [N,H,W] or [N,1,H,W]; got shape {tuple(t.shape)}.")
        if tuple(t.shape[-2:]) != (h, w):
            raise InputError(f"sparse depth is {t.shape[-1]}×{t.shape[-2]}, the image {w}×{h}: give a map of the "
                             f"image's size (0 or NaN where unmeasured), or known points in the image's pixels.")
        if t.shape[0] == 1 and n > 1:
            t = t.expand(n, 1, h, w)
        elif t.shape[0] != n:
            raise InputError(f"sparse depth has {t.shape[0]} maps for {n} images.")
        t = torch.nan_to_num(t.clone(), nan=0.0, posinf=float("inf"), neginf=float("-inf"))
    if torch.isinf(t).any():
        raise InputError(f"sparse depth has {int(torch.isinf(t).sum())} infinite values; use 0 or NaN where "
                         f"nothing was measured.")
    if (t < 0).any():
        raise InputError(f"sparse depth has {int((t < 0).sum())} negative values (depth is a distance > 0); use 0 "
                         f"or NaN where nothing was measured.")
    counts = (t > 0).flatten(1).sum(1)  # [N]
    if (counts == 0).any():
        i = int((counts == 0).nonzero()[0, 0])
        raise InputError(f"sparse depth{f' of image {i}' if n > 1 else ''} has no valid point (every value is 0 or "
                         f"NaN): nothing to take the scale from.")
    return t  # [N,1,H,W]


def merge_points(sparse: np.ndarray | None, points: Sequence[tuple[float, float, float]] | None,
                 size: tuple[int, int]) -> np.ndarray:
    """A measured map ``[H,W]`` (or None: nothing measured) with known ``(x, y, depth)`` points written into it →
    ``[H,W]`` float32, 0 where unmeasured; a point overrides the measurement at its pixel. Checked later by
    :func:`sparse_depth` (a map of another size is said there, with both sizes)."""
    h, w = size
    out = np.zeros((h, w), np.float32) if sparse is None else np.array(sparse, dtype=np.float32, copy=True)
    if out.shape != (h, w):
        raise InputError(f"sparse depth is {out.shape[-1]}×{out.shape[0]}, the image {w}×{h}: give a map of the "
                         f"image's size (0 or NaN where unmeasured), or known points in the image's pixels.")
    for x, y, z in points or []:
        xi, yi = int(round(float(x))), int(round(float(y)))
        if not (0 <= xi < w and 0 <= yi < h):
            raise InputError(f"known point ({x:g}, {y:g}) lies outside the {w}×{h} image.")
        out[yi, xi] = float(z)
    return out


def _lstsq(p: np.ndarray, z: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    a = np.stack([p, np.ones_like(p)], 1) * weights[:, None]  # [P,2]
    sol, *_ = np.linalg.lstsq(a, z * weights, rcond=None)
    return float(sol[0]), float(sol[1])


def _fit_one(p: np.ndarray, z: np.ndarray, robust: bool) -> tuple[float, float]:
    """Least squares ``z ≈ s·p + b``; robust: Huber-weighted, iterated (a few outliers barely move it)."""
    wts = np.ones_like(p)
    s, b = _lstsq(p, z, wts)
    if robust:
        for _ in range(10):
            r = z - (s * p + b)
            scale = 1.4826 * np.median(np.abs(r - np.median(r))) + 1e-12  # robust σ of the residuals
            k = 1.345 * scale  # Huber's threshold, 95 % efficient on Gaussian residuals
            wts = np.sqrt(np.where(np.abs(r) <= k, 1.0, k / np.maximum(np.abs(r), 1e-12)))
            s, b = _lstsq(p, z, wts)
    return s, b


def _guide(image, n: int, size: tuple[int, int]) -> torch.Tensor:
    """The photo (any image input: PIL, array, ``[3,H,W]`` / ``[1|N,3,H,W]`` tensor in 0..1) → ``[N,3,H,W]`` at the
    map's size (the snap's colour guide)."""
    g = to_tensor(image).float().cpu()  # [N',3,H',W']
    if g.shape[0] not in (1, n):
        raise InputError(f"image: one photo or {n} for the snap's guide; got {g.shape[0]}.")
    if tuple(g.shape[-2:]) != size:
        g = resize(g, size, "bilinear", antialias=True)  # [1|N,3,H,W]
    return g.expand(n, -1, -1, -1)


def fit_metric(prediction: torch.Tensor | np.ndarray, sparse, *, space: str = "depth", robust: bool = False,
               far_over_near: float = DEFAULT_FAR_OVER_NEAR, snap: bool = False,
               image: torch.Tensor | None = None) -> MetricDepth:
    """Metric depth from an affine ``prediction`` (``[H,W]``, ``[N,1,H,W]`` …, 0..1 or any affine values) and
    sparse measurements (see :func:`sparse_depth`): one scale and shift per image.

    ``space``: "depth" (near = low, Marigold's depth) fits ``depth ≈ s·p + b``; "disparity" (near = high: inverse
    depth models) fits ``1/depth ≈ s·p + b``. ``robust``: Huber weights instead of plain least squares.
    ``snap``: then make the map pass through the points (:func:`marigold.core.snap.snap_to_points`, guided by the
    map and, where given, the photo ``image``: any image input, resized to the map): the map is no longer one affine
    copy of the prediction, but on our instrument as close as completion (bench/RESULTS.md, "Metric depth").
    """
    if space not in SPACES:
        raise InputError(f"`space` must be one of {', '.join(SPACES)}; got {space!r}.")
    p = torch.as_tensor(prediction).float().cpu()
    while p.ndim < 4:
        p = p[None]
    if p.shape[1] != 1:
        raise InputError(f"fit_metric takes a one-channel depth or disparity map; got {p.shape[1]} channels.")
    if not torch.isfinite(p).all():
        raise InputError("the prediction holds NaN or infinite values.")
    n, _, h, w = p.shape
    z = sparse_depth(sparse, (h, w), n)  # [N,1,H,W]
    out, scales, shifts, counts, notes = [], [], [], [], []
    for i in range(n):
        m = z[i, 0] > 0
        pv, zv = p[i, 0][m].double().numpy(), z[i, 0][m].double().numpy()
        target = zv if space == "depth" else 1.0 / zv
        counts.append(int(m.sum()))
        if np.ptp(zv) == 0 or np.ptp(pv) == 0:
            # one depth (or points the prediction cannot tell apart): the range is undefined; keep the 3D
            # outputs' default range and let the points set the level
            shape = 1.0 + (far_over_near - 1.0) * p[i, 0].double().numpy() if space == "depth" else \
                1.0 / far_over_near + (1.0 - 1.0 / far_over_near) * p[i, 0].double().numpy()
            k = float(np.mean(target / shape[m.numpy()]))
            s, b = (k * (far_over_near - 1.0), k) if space == "depth" else \
                (k * (1.0 - 1.0 / far_over_near), k / far_over_near)
            notes.append(f"image {i}: one measured depth gives no range: assumed far = {far_over_near:g}× near "
                         f"and fitted the level only" if n > 1 else
                         f"one measured depth gives no range: assumed far = {far_over_near:g}× near and fitted "
                         f"the level only")
        else:
            s, b = _fit_one(pv, target, robust)
            if s < 0:
                other = "disparity" if space == "depth" else "depth"
                notes.append(("" if n == 1 else f"image {i}: ") + "the fit flips the map (farther measured where "
                             f"the prediction says nearer): is the prediction {other} rather than {space}?")
        lin = s * p[i, 0].double() + b  # [H,W]
        if space == "disparity":
            # inverse depth ≤ 0 is beyond infinity: clamp to the farthest plausible value, 100× the largest point
            lin = 1.0 / lin.clamp(min=1.0 / (100.0 * float(zv.max())))
        else:
            lin = lin.clamp(min=float(zv.min()) * 1e-2)  # depth stays positive
        out.append(lin.float()[None, None])
        scales.append(s)
        shifts.append(b)
    depth = torch.cat(out)  # [N,1,H,W]
    if snap:
        depth = snap_to_points(depth, z, None if image is None else _guide(image, n, (h, w)))
    return MetricDepth(depth=depth, scale=scales, shift=shifts, points=counts, space=space,
                       note="; ".join(notes))


def metric_errors(pred: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """MAE and RMSE (in the data's units) of one metric map against the truth on ``valid`` pixels (truth > 0 by
    default): the depth-completion metrics, per image (average them over a set, as the reference does)."""
    t = torch.as_tensor(truth).float()
    q = torch.as_tensor(pred).float().reshape(t.shape)
    m = (t > 0) if valid is None else torch.as_tensor(valid).bool().reshape(t.shape) & (t > 0)
    d = (q - t)[m]
    if d.numel() == 0:
        raise InputError("no valid ground-truth pixel to score.")
    return {"mae": float(d.abs().mean()), "rmse": float(d.pow(2).mean().sqrt())}
