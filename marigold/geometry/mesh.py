"""Depth seen through a camera: a coloured triangle mesh or point cloud, and 3D files through trimesh.

A depth map is back-projected with a pinhole camera (horizontal field of view ``fov_degrees``, square pixels,
principal point in the middle), as :func:`marigold.geometry.normals.depth_to_normals` does. Marigold's depth is
affine-invariant, so its 0..1 values are first given a metric meaning: 0 → distance 1 (the near plane), 1 →
``far_over_near``. Maps whose near is bright (Depth Anything, MiDaS, depth ControlNet hints) are affine
*disparity*; pass ``space="disparity"`` and 1 → distance 1, 0 → ``far_over_near``, linear in 1/distance.
Metric maps (``space="metric"``: :func:`marigold.complete`, :func:`marigold.fit_metric`) are distances already,
in their own units: no ratio is assumed and the mesh comes out in those units.

Coordinates follow glTF (and Marigold's normals): x right, y up, the camera at the origin looking down -z, so
any glTF viewer opens the scene as the photo was taken. One vertex per pixel, vertex ``k`` is pixel
``(k // W, k % W)``; two triangles per pixel square; a triangle whose depths differ by more than
``edge_threshold`` times its nearest depth spans a depth jump (an object's silhouette against the background)
and is dropped, the relative rule ComfyUI's Depth Anything 3 and MoGe mesh nodes use (default 0.04).

trimesh is imported when a mesh is built, not with the package: it costs about a second at start-up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import InputError

if TYPE_CHECKING:
    import trimesh

DepthLike = Union[torch.Tensor, np.ndarray, Image.Image]
SPACES = ("depth", "disparity", "metric")
MESH_FORMATS = ("glb", "obj", "ply", "stl")
GREY = 0.5  # colour of the parts that have no pixel (a relief's frame, sides and back)


# --- inputs -------------------------------------------------------------------------------------------------


def depth_array(depth: DepthLike, name: str = "depth") -> np.ndarray:
    """One depth map in any of the library's forms → ``[H,W]`` float32 (NaN kept).

    Takes ``[H,W]``, ``[1,H,W]``, ``[1,1,H,W]`` tensors or arrays, an ``[H,W,C]`` / ``[1,H,W,C]`` array whose
    channels are equal (a grey picture: the first channel is used), or a PIL image (16-bit PNGs keep their
    precision; 8- and 16-bit values are scaled to 0..1).
    """
    if isinstance(depth, Image.Image):
        from ..core.image import _pil_to_array

        a = _pil_to_array(depth)
        scale = float(np.iinfo(a.dtype).max) if np.issubdtype(a.dtype, np.unsignedinteger) else 1.0
        d = a.astype(np.float32) / scale
    elif isinstance(depth, torch.Tensor):
        d = depth.detach().float().cpu().numpy()
    elif isinstance(depth, np.ndarray):
        if depth.dtype == bool or not (np.issubdtype(depth.dtype, np.floating) or
                                       np.issubdtype(depth.dtype, np.unsignedinteger)):
            raise InputError(f"`{name}` of dtype {depth.dtype}; expected float, uint8 or uint16.")
        scale = float(np.iinfo(depth.dtype).max) if np.issubdtype(depth.dtype, np.unsignedinteger) else 1.0
        d = depth.astype(np.float32) / scale
    else:
        raise InputError(f"`{name}` must be a tensor, an array or a PIL image; got {type(depth).__name__}.")
    while d.ndim > 2 and d.shape[0] == 1:  # [1,1,H,W] / [1,H,W] → [H,W]
        d = d[0]
    if d.ndim == 3 and d.shape[-1] in (3, 4) and d.shape[0] > 4:  # [H,W,C] grey picture
        d = d[..., 0]
    if d.ndim != 2:
        raise InputError(f"`{name}` must be one depth map ([H,W], [1,1,H,W] or a grey picture); got shape "
                         f"{tuple(d.shape)}.")
    return np.ascontiguousarray(d, dtype=np.float32)


def check_space(space: str) -> None:
    if space not in SPACES:
        raise InputError(f"`space` must be 'depth' (near = 0, dark: Marigold), 'disparity' (near = 1, bright: "
                         f"Depth Anything, MiDaS, ControlNet hints) or 'metric' (distances, e.g. metres: "
                         f"marigold.complete); got {space!r}.")


def fill_invalid(d: np.ndarray, far_value: str = "max", name: str = "depth") -> tuple[np.ndarray, np.ndarray]:
    """NaN / infinite pixels → the far end of the finite values; returns (filled map, valid mask).

    A map with no finite value at all is refused: there is nothing to build.
    """
    valid = np.isfinite(d)
    if valid.all():
        return d, valid
    if not valid.any():
        raise InputError(f"`{name}` has no finite values (all NaN or infinite); nothing to build.")
    fill = d[valid].max() if far_value == "max" else d[valid].min()
    return np.where(valid, d, fill).astype(np.float32), valid


def check_resolution(resolution_px: int | None, minimum: int = 2) -> None:
    """``resolution_px``: None or 0 (the map's own size), or at least ``minimum`` vertices along the longest side."""
    if resolution_px and resolution_px < minimum:
        raise InputError(f"`resolution_px` must be at least {minimum} (or 0 = the map's own size); "
                         f"got {resolution_px}.")


def grid_size(size: tuple[int, int], resolution_px: int | None, minimum: int = 2,
              name: str = "depth") -> tuple[int, int]:
    """(H, W) → the vertex grid: longest side ``resolution_px`` (None or 0 = as it is), aspect ratio kept."""
    h, w = size
    if min(h, w) < minimum:  # one pixel holds no shape: resizing it up would only invent one
        raise InputError(f"`{name}` of {w}×{h} pixels is too small: a mesh needs at least {minimum} pixels on "
                         f"each side.")
    if resolution_px:
        check_resolution(resolution_px, minimum)
        m = max(h, w)
        h, w = max(1, round(h * resolution_px / m)), max(1, round(w * resolution_px / m))
    if min(h, w) < minimum:
        raise InputError(f"`{name}` of {size[1]}×{size[0]} pixels gives a {w}×{h} grid; a mesh needs at least "
                         f"{minimum} pixels on each side.")
    return h, w


def resize_map(d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``[H,W]`` → ``[h,w]`` by bilinear interpolation (antialiased when shrinking), in float32."""
    if d.shape == tuple(size):
        return d
    t = torch.from_numpy(d)[None, None]  # [1,1,H,W]
    return F.interpolate(t, size=tuple(size), mode="bilinear", antialias=True)[0, 0].numpy()


def colors_for(image, size: tuple[int, int], source_size: tuple[int, int] | None = None) -> np.ndarray | None:
    """The colour picture → ``[h·w, 3]`` float32 0..1 per vertex (resized to the grid), or None without one.

    The picture must show what the depth map (of ``source_size``, default ``size``) shows: the same aspect
    ratio to within a pixel of either's short side, any resolution. Another picture is refused, not stretched.
    """
    if image is None:
        return None
    from ..core.image import to_tensor

    t = to_tensor(image).detach().cpu()  # [N,3,H,W] a picture on the model's device comes to the mesh's side
    if t.shape[0] != 1:
        raise InputError(f"`image` must be one picture; got a batch of {t.shape[0]}.")
    ih, iw = t.shape[-2:]
    sh, sw = source_size or size
    tol = 1.0 / min(sh, sw) + 1.0 / min(ih, iw) + 1e-6
    if abs((iw / ih) / (sw / sh) - 1.0) > tol:
        raise InputError(f"`image` of {iw}×{ih} pixels does not show what the depth map of {sw}×{sh} shows "
                         f"(another aspect ratio): pass the picture the depth was predicted from.")
    h, w = size
    if (ih, iw) != (h, w):
        t = F.interpolate(t.float(), size=(h, w), mode="bilinear", antialias=True).clamp(0, 1)  # [1,3,h,w]
    return t[0].permute(1, 2, 0).reshape(-1, 3).numpy().astype(np.float32)  # [h·w,3]


def median_filter(d: np.ndarray, size: int) -> np.ndarray:
    """Median over a ``size``×``size`` window (edges replicated), vectorised through ``unfold``."""
    if size <= 1:
        return d
    k = size // 2
    t = F.pad(torch.from_numpy(d)[None, None], (k, k, k, k), mode="replicate")  # [1,1,H+2k,W+2k]
    win = F.unfold(t, size)  # [1,size²,H·W]
    return win.median(dim=1).values.reshape(d.shape).numpy()


# --- camera geometry ----------------------------------------------------------------------------------------


def check_camera(fov_degrees: float, far_over_near: float) -> None:
    if not 1.0 <= fov_degrees <= 179.0:
        raise InputError(f"`fov_degrees` must be between 1 and 179 degrees; got {fov_degrees}.")
    if not far_over_near > 1.0:
        raise InputError(f"`far_over_near` must be greater than 1 (far is that many times the near distance); "
                         f"got {far_over_near}.")


def check_edge_threshold(edge_threshold: float) -> None:
    if not edge_threshold >= 0:
        raise InputError(f"`edge_threshold` must be ≥ 0 (0 = keep every triangle); got {edge_threshold}.")


def distance_from(d: np.ndarray, far_over_near: float, space: str) -> np.ndarray:
    """0..1 depth (or disparity) → distance along the optical axis, near = 1, far = ``far_over_near``; metric
    maps are distances already (``far_over_near`` unused)."""
    if space == "metric":
        if (d <= 0).any():
            raise InputError(f"metric depth has {int((d <= 0).sum())} values ≤ 0; a distance is positive "
                             f"(NaN marks a pixel with no depth).")
        return d
    d = np.clip(d, 0.0, 1.0)
    if space == "depth":
        return 1.0 + d * (far_over_near - 1.0)
    inv = 1.0 / far_over_near + d * (1.0 - 1.0 / far_over_near)  # disparity 1 = near
    return 1.0 / inv


def back_project(z: np.ndarray, fov_degrees: float) -> np.ndarray:
    """Distances ``[H,W]`` → camera-space points ``[H·W,3]`` (x right, y up, looking down -z)."""
    h, w = z.shape
    f = (w / 2) / math.tan(math.radians(fov_degrees) / 2)  # focal length in pixels
    xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / f  # [W]
    ys = ((h - 1) / 2 - np.arange(h, dtype=np.float32)) / f  # [H]
    pts = np.empty((h, w, 3), np.float32)
    pts[..., 0] = xs[None, :] * z
    pts[..., 1] = ys[:, None] * z
    pts[..., 2] = -z
    return pts.reshape(-1, 3)


def grid_faces(h: int, w: int) -> np.ndarray:
    """Two triangles per pixel square of an ``h``×``w`` vertex grid, counter-clockwise seen from +z when rows
    run downwards (y up): ``[2·(h-1)·(w-1), 3]`` int64, every square's lower-left triangle, then the
    upper-right ones."""
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    a, b = idx[:-1, :-1], idx[:-1, 1:]  # upper left, upper right
    c, d = idx[1:, :-1], idx[1:, 1:]  # lower left, lower right
    upper = np.stack([a, c, d], -1).reshape(-1, 3)  # [(h-1)(w-1),3]
    lower = np.stack([a, d, b], -1).reshape(-1, 3)
    return np.concatenate([upper, lower])


def _prepare(depth, image, resolution_px, space, minimum):
    """Checked map, valid mask and colours on the vertex grid; ``resolution_px`` only ever shrinks the map."""
    check_space(space)
    d = depth_array(depth)
    d, valid = fill_invalid(d, "max" if space == "depth" else "min")
    source = d.shape
    cap = resolution_px if resolution_px and resolution_px < max(source) else None
    size = grid_size(source, cap, minimum)
    d = resize_map(d, size)
    if valid.all():
        valid = np.ones(size, bool)
    else:
        valid = resize_map(valid.astype(np.float32), size) > 0.999  # a pixel touched by an invalid one is invalid
    return d, valid, colors_for(image, size, source)


def depth_to_mesh(depth: DepthLike, image=None, fov_degrees: float = 60.0, far_over_near: float = 3.0,
                  edge_threshold: float = 0.04, *, space: str = "depth",
                  resolution_px: int | None = None) -> "trimesh.Trimesh":
    """A depth map → the surface the camera saw, as a ``trimesh.Trimesh`` with the picture's vertex colours.

    ``depth``: one map, 0..1 (``space="depth"``: 0 = near, Marigold; ``"disparity"``: 1 = near). ``image``:
    the photo (any form :func:`marigold.core.image.to_tensor` takes, same aspect ratio) or None (no colours).
    ``fov_degrees``: horizontal field of view. ``far_over_near``: how many times farther depth 1 is than
    depth 0 (resolves the affine ambiguity; 3 as DepthToNormal; unused for ``space="metric"``, whose distances
    give the mesh its units). ``edge_threshold``: drop a triangle whose
    depth span exceeds this fraction of its nearest depth (0 = keep all). ``resolution_px``: at most this many
    vertices along the longest side (a larger map is shrunk; None = the map's own size). NaN pixels get no
    triangles.
    """
    import trimesh

    check_camera(fov_degrees, far_over_near)
    check_edge_threshold(edge_threshold)
    d, valid, colors = _prepare(depth, image, resolution_px, space, 2)
    h, w = d.shape
    z = distance_from(d, far_over_near, space).astype(np.float32)  # [h,w]
    vertices = back_project(z, fov_degrees)  # [h·w,3]
    faces = grid_faces(h, w)  # [F,3]
    zf = z.reshape(-1)[faces]  # [F,3]
    keep = valid.reshape(-1)[faces].all(axis=1)
    if edge_threshold > 0:
        keep &= (zf.max(axis=1) - zf.min(axis=1)) <= edge_threshold * zf.min(axis=1)
    faces = faces[keep]
    if len(faces) == 0:
        raise InputError(f"Every triangle spans a depth jump larger than edge_threshold={edge_threshold}; raise "
                         f"it (or set 0 to keep all).")
    kw = {"vertex_colors": _rgba8(colors)} if colors is not None else {}
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False, **kw)


def depth_to_points(depth: DepthLike, image=None, fov_degrees: float = 60.0, far_over_near: float = 3.0, *,
                    space: str = "depth", resolution_px: int | None = None) -> "trimesh.PointCloud":
    """A depth map → one coloured 3D point per valid pixel (same camera as :func:`depth_to_mesh`)."""
    import trimesh

    check_camera(fov_degrees, far_over_near)
    d, valid, colors = _prepare(depth, image, resolution_px, space, 1)
    z = distance_from(d, far_over_near, space).astype(np.float32)
    keep = valid.reshape(-1)
    points = back_project(z, fov_degrees)[keep]  # [P,3]
    kw = {"colors": _rgba8(colors[keep])} if colors is not None else {}
    return trimesh.PointCloud(points, **kw)


def _rgba8(colors: np.ndarray) -> np.ndarray:
    """``[N,3]`` float 0..1 → ``[N,4]`` uint8, how trimesh stores and exports vertex colours."""
    rgb = (np.clip(colors, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


# --- files --------------------------------------------------------------------------------------------------


def export_bytes(geometry: "trimesh.Trimesh | trimesh.PointCloud", file_type: str) -> bytes:
    """A mesh or point cloud → the bytes of a ``glb``, ``obj``, ``ply`` or ``stl`` file (STL: no colours)."""
    import trimesh

    ft = file_type.lower().lstrip(".")
    if ft not in MESH_FORMATS:
        raise InputError(f"3D file type must be one of {', '.join(MESH_FORMATS)}; got {file_type!r}.")
    if isinstance(geometry, trimesh.PointCloud) and ft != "ply":
        raise InputError(f"A point cloud is written as .ply; got {file_type!r}.")
    kw = {"include_color": True} if ft == "obj" else {}
    data = geometry.export(file_type=ft, **kw)
    return data.encode() if isinstance(data, str) else bytes(data)


def save_3d(geometry: "trimesh.Trimesh | trimesh.PointCloud", path: str | os.PathLike,
            file_type: str | None = None) -> Path:
    """Write a mesh or point cloud; the type comes from the suffix unless given. Written atomically."""
    from ..io.images import _atomic_save

    p = Path(path)
    data = export_bytes(geometry, file_type or p.suffix)
    return _atomic_save(p, lambda tmp: tmp.write_bytes(data))
