"""Bas-relief: a depth map → a closed, 3D-printable solid with the photo's colours, sized in millimetres.

What the Marigold demo's "Bas-relief (3D)" tab makes (the Marigold-LCM Space, ``extrude.py`` and the tab's
sliders), with its parameters stated in millimetres of the printed object instead of fractions of a unit
square. The solid, bottom up (z = 0 is the bed, z up, x right, y up in the picture):

* a **back plate** ``back_mm`` thick under the whole model (the demo's "frame far", 1 % → 1 mm at 10 cm);
* the **relief**: one vertex per pixel of the depth map resized to ``resolution_px`` on its longest side,
  two triangles per pixel square; the farthest kept depth lies on the back plate (z = ``back_mm``), the
  nearest stands ``embossing`` % of ``size_mm`` higher: near pixels stand highest;
* a **frame** ``frame_mm`` wide around it (the demo's "frame thickness", 5 %), whose flat top lies
  ``frame_near_mm`` above the relief's nearest level (the demo's "frame near", 1 %; negative: below it, at
  most down to the back plate); ``frame_mm = 0``: no frame, the relief's sides go straight down;
* side walls that join the relief's edge to the frame, the frame to the bed, and a bottom face. Every edge
  is shared by exactly two triangles, all facing out: watertight, positive volume.

The longest side of the whole model (frame included) is ``size_mm``; its height is ``back_mm`` +
``embossing``·``size_mm``/100 + max(``frame_near_mm``, 0) (with a frame). Depth is normalised to its own
range first (after a ``median_size`` median filter, as the demo does); ``plane_near`` / ``plane_far`` (0..1)
keep the part of that range between them, everything nearer is flattened to the top, farther to the back.
The picture's colours become the relief's vertex colours; frame, sides and back are grey.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .mesh import GREY, DepthLike, _rgba8, check_space, colors_for, depth_array, fill_invalid, grid_faces, \
    grid_size, median_filter, resize_map

if TYPE_CHECKING:
    import trimesh

# The demo's defaults (its sliders), in millimetres for its default 10 cm model.
DEFAULTS = dict(size_mm=100.0, resolution_px=512, embossing=20.0, plane_near=0.0, plane_far=1.0, median_size=3,
                frame_mm=5.0, frame_near_mm=1.0, back_mm=1.0)


def relief(depth: DepthLike, image=None, *, size_mm: float = 100.0, resolution_px: int | None = 512,
           embossing: float = 20.0, plane_near: float = 0.0, plane_far: float = 1.0, median_size: int = 3,
           frame_mm: float = 5.0, frame_near_mm: float = 1.0, back_mm: float = 1.0,
           space: str = "depth") -> "trimesh.Trimesh":
    """A depth map (and optionally its photo) → a watertight bas-relief ``trimesh.Trimesh`` in millimetres.

    ``depth``: one map (``space="depth"``: 0 = near, as Marigold gives it; ``"disparity"``: 1 = near, as
    Depth Anything, MiDaS and ControlNet hints). ``image``: the photo for vertex colours (same aspect ratio).
    ``resolution_px``: the longest side of the vertex grid (None or 0: the map's own size). See the module
    docstring for the other parameters. NaN pixels count as far; a constant map gives a flat relief.
    """
    import trimesh

    check_space(space)
    check_options(size_mm, embossing, plane_near, plane_far, median_size, frame_mm, back_mm)
    d = depth_array(depth)
    if space == "disparity":
        d = -d  # only the order matters: the map is normalised to its own range below
    d, _ = fill_invalid(d, "max")
    source = d.shape
    h, w = grid_size(source, resolution_px)
    d = median_filter(resize_map(d, (h, w)), median_size)  # [h,w]
    lo, hi = float(d.min()), float(d.max())
    t = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)  # 0 = nearest, 1 = farthest
    t = (np.clip(t, plane_near, plane_far) - plane_near) / (plane_far - plane_near)

    relief_mm = embossing / 100.0 * size_mm
    inner = size_mm - 2.0 * frame_mm  # the picture's longest side
    pitch = inner / (max(h, w) - 1)
    xs = (np.arange(w) - (w - 1) / 2) * pitch  # [w], right
    ys = ((h - 1) / 2 - np.arange(h)) * pitch  # [h], up
    top = np.empty((h, w, 3))
    top[..., 0], top[..., 1] = xs[None, :], ys[:, None]
    top[..., 2] = back_mm + relief_mm * (1.0 - t)  # near stands highest
    top = top.reshape(-1, 3)  # [h·w,3]

    ring = _boundary(h, w)  # [K] the relief's edge, counter-clockwise seen from above
    out_dir = _outward(ring, h, w)  # [K,2]
    edge = top[ring]  # [K,3]
    parts, faces = [top], [grid_faces(h, w)]
    n = len(top)

    def add(points: np.ndarray) -> np.ndarray:
        nonlocal n
        parts.append(points)
        idx = np.arange(n, n + len(points))
        n += len(points)
        return idx

    if frame_mm > 0:
        z_frame = max(back_mm + relief_mm + frame_near_mm, back_mm)
        frame_in = add(np.column_stack([edge[:, :2], np.full(len(ring), z_frame)]))
        outer_xy = edge[:, :2] + out_dir * frame_mm
        frame_out = add(np.column_stack([outer_xy, np.full(len(ring), z_frame)]))
        bed = add(np.column_stack([outer_xy, np.zeros(len(ring))]))
        faces += [_band(ring, frame_in), _band(frame_in, frame_out), _band(frame_out, bed)]
    else:
        bed = add(np.column_stack([edge[:, :2], np.zeros(len(ring))]))
        faces.append(_band(ring, bed))
    centre = add(np.zeros((1, 3)))[0]
    faces.append(np.column_stack([np.full(len(bed), centre), np.roll(bed, -1), bed]))  # faces down

    vertices = np.concatenate(parts)
    colors = colors_for(image, (h, w), source)
    kw = {}
    if colors is not None:
        kw["vertex_colors"] = _rgba8(np.concatenate([colors, np.full((len(vertices) - len(colors), 3), GREY)]))
    mesh = trimesh.Trimesh(vertices=vertices, faces=np.concatenate(faces), process=False, **kw)
    if frame_mm > 0 and np.any(edge[:, 2] == z_frame):
        # A frame top level with part of the relief's edge leaves zero-height wall triangles whose corners
        # coincide; merging them keeps the solid closed after a file format merges equal positions (STL).
        mesh.merge_vertices(merge_tex=True, merge_norm=True)
        mesh.update_faces(mesh.nondegenerate_faces(height=None))
        mesh.remove_unreferenced_vertices()
    return mesh


def check_options(size_mm: float, embossing: float, plane_near: float, plane_far: float, median_size: int,
                  frame_mm: float, back_mm: float) -> None:
    """Refuse out-of-range relief settings with one line naming the parameter (the CLI runs it up front)."""
    if not size_mm > 0:
        raise InputError(f"`size_mm` (the model's longest side) must be greater than 0; got {size_mm}.")
    if not 0 <= embossing <= 100:
        raise InputError(f"`embossing` is a percentage of the longest side, 0..100; got {embossing}.")
    if not (0.0 <= plane_near <= 1.0 and 0.0 <= plane_far <= 1.0):
        raise InputError(f"`plane_near` and `plane_far` are fractions of the depth range, 0..1; got "
                         f"{plane_near} and {plane_far}.")
    if not plane_near < plane_far:
        raise InputError(f"The near plane must lie before the far plane: need plane_near < plane_far; got "
                         f"{plane_near} ≥ {plane_far}.")
    if median_size < 1 or median_size % 2 == 0 or median_size > 15:
        raise InputError(f"`median_size` must be odd, 1 (off) to 15; got {median_size}.")
    if not 0 <= frame_mm or not 2 * frame_mm < size_mm:
        raise InputError(f"`frame_mm` must be ≥ 0 and leave room for the picture (less than half of size_mm = "
                         f"{size_mm}); got {frame_mm}.")
    if not back_mm > 0:
        raise InputError(f"`back_mm` (the back plate under the relief) must be greater than 0 for a solid that "
                         f"can be printed; got {back_mm}.")


def _boundary(h: int, w: int) -> np.ndarray:
    """Grid indices of the edge pixels as one closed loop, counter-clockwise seen from above (x right, y up):
    down the left column, right along the bottom row, up the right column, left along the top row."""
    left = np.arange(h) * w
    bottom = (h - 1) * w + np.arange(1, w)
    right = np.arange(h - 2, -1, -1) * w + (w - 1)
    top = np.arange(w - 2, 0, -1)
    return np.concatenate([left, bottom, right, top])


def _outward(ring: np.ndarray, h: int, w: int) -> np.ndarray:
    """Unit steps away from the picture for each edge pixel ``[K,2]`` (corners step out diagonally)."""
    i, j = ring // w, ring % w
    dx = (j == w - 1).astype(float) - (j == 0)
    dy = (i == 0).astype(float) - (i == h - 1)
    return np.column_stack([dx, dy])


def _band(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Triangles joining two loops of equal length (both counter-clockwise seen from above) that face away
    from the loops' inside when ``upper`` lies above ``lower`` (or inside it, for a flat ring facing up)."""
    u1, l1 = np.roll(upper, -1), np.roll(lower, -1)
    return np.concatenate([np.column_stack([upper, lower, l1]), np.column_stack([upper, l1, u1])])
