"""Bas-relief (marigold.relief): a closed solid of the requested size in millimetres, near standing highest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

import marigold
from marigold.geometry.relief import relief

H, W = 30, 40


def ramp(h=H, w=W) -> np.ndarray:
    """Depth growing from 0 (near) at the left to 1 (far) at the right."""
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))


def scene(h=H, w=W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    d = 0.6 * yy + 0.3 * np.sin(6 * xx)
    d[h // 3:2 * h // 3, w // 3:2 * w // 3] = 0.05  # a near box in front
    return d.astype(np.float32)


def top_of(m: trimesh.Trimesh, h: int, w: int) -> np.ndarray:
    """The relief surface: the first h·w vertices are the pixel grid, row by row."""
    return np.asarray(m.vertices[: h * w]).reshape(h, w, 3)


def assert_solid(m: trimesh.Trimesh) -> None:
    assert m.is_watertight
    assert m.is_winding_consistent
    assert m.volume > 0
    assert len(m.faces) == len(m.nondegenerate_faces())


@pytest.mark.parametrize("kw", [{}, {"frame_mm": 0.0}, {"frame_near_mm": -4.0}, {"frame_near_mm": 0.0},
                                {"frame_near_mm": -100.0}, {"plane_near": 0.3, "plane_far": 0.6},
                                {"embossing": 0.0}, {"resolution_px": None, "median_size": 1}])
def test_relief_is_a_closed_solid(kw):
    assert_solid(relief(scene(), **kw))


@pytest.mark.parametrize("h,w", [(30, 40), (40, 30), (25, 25)])
def test_bounding_box_is_the_requested_size_and_height(h, w):
    m = relief(scene(h, w), size_mm=80.0, embossing=15.0, frame_mm=4.0, frame_near_mm=2.0, back_mm=1.5,
               resolution_px=64)
    ext = m.extents
    assert abs(max(ext[:2]) - 80.0) < 0.1
    assert abs(min(ext[:2]) - (80.0 - 8.0) * (min(h, w) - 1) / (max(h, w) - 1) - 8.0) < 80.0 / 64  # aspect kept
    assert ext[2] == pytest.approx(1.5 + 0.15 * 80.0 + 2.0, abs=1e-6)  # back + embossing + frame above
    assert m.bounds[0][2] == pytest.approx(0.0)  # on the bed
    no_frame = relief(scene(h, w), size_mm=80.0, embossing=15.0, frame_mm=0.0, back_mm=1.5, resolution_px=64)
    assert abs(max(no_frame.extents[:2]) - 80.0) < 0.1
    assert no_frame.extents[2] == pytest.approx(1.5 + 12.0, abs=1e-6)


def test_demo_defaults_give_a_10cm_model_of_512_px():
    m = relief(scene(60, 80))
    assert abs(max(m.extents[:2]) - 100.0) < 0.1
    assert m.extents[2] == pytest.approx(1.0 + 20.0 + 1.0)
    assert np.ptp(np.asarray(m.vertices[: 384 * 512]).reshape(384, 512, 3)[0, :, 0]) == pytest.approx(90.0)


@pytest.mark.parametrize("res,grid", [(64, (48, 64)), (100, (75, 100)), (None, (H, W))])
def test_vertex_count_follows_the_pixel_size(res, grid):
    h, w = grid
    k = 2 * (h + w) - 4  # edge pixels
    m = relief(scene(), resolution_px=res)
    assert len(m.vertices) == h * w + 3 * k + 1  # grid, frame top inner + outer, bed ring, bottom centre
    assert len(m.faces) == 2 * (h - 1) * (w - 1) + 6 * k + k
    assert len(relief(scene(), resolution_px=res, frame_mm=0).vertices) == h * w + k + 1


def test_near_stands_highest_a_ramp_gives_a_tilted_top():
    m = relief(ramp(), resolution_px=None, median_size=1, size_mm=100.0, embossing=20.0, frame_mm=5.0,
               back_mm=1.0)
    top = top_of(m, H, W)
    assert np.all(np.diff(top[..., 2], axis=1) < 0)  # z falls to the right, where the depth grows
    slope = np.polyfit(top[0, :, 0], top[0, :, 2], 1)[0]
    assert slope == pytest.approx(-20.0 / 90.0, rel=1e-6)  # 20 mm of relief over the 90 mm picture
    assert top[..., 2].max() == pytest.approx(21.0) and top[..., 2].min() == pytest.approx(1.0)
    # a disparity map (near = 1) gives the same solid
    same = relief(1.0 - ramp(), resolution_px=None, median_size=1, space="disparity")
    np.testing.assert_allclose(same.vertices, m.vertices, atol=1e-9)


def test_planes_near_and_far_clip_the_depth_range():
    m = relief(ramp(), resolution_px=None, median_size=1, plane_near=0.25, plane_far=0.75, embossing=20.0,
               back_mm=1.0)
    z = top_of(m, H, W)[0, :, 2]
    t = np.linspace(0, 1, W)
    assert np.all(z[t <= 0.25] == pytest.approx(21.0))  # nearer than the near plane: flat at the top
    assert np.all(z[t >= 0.75] == pytest.approx(1.0))  # farther than the far plane: flat on the back plate
    mid = (t > 0.25) & (t < 0.75)
    np.testing.assert_allclose(z[mid], 1.0 + 20.0 * (1 - (t[mid] - 0.25) / 0.5), rtol=1e-6)


def test_vertex_colours_are_the_photo_and_grey_elsewhere():
    rng = np.random.default_rng(0)
    photo = rng.random((H, W, 3)).astype(np.float32)
    m = relief(scene(), photo, resolution_px=None)
    c = np.asarray(m.visual.vertex_colors)
    np.testing.assert_array_equal(c[: H * W, :3], (photo.reshape(-1, 3) * 255 + 0.5).astype(np.uint8))
    assert np.all(c[H * W:, :3] == 128)
    big = relief(scene(), torch.from_numpy(photo).permute(2, 0, 1), resolution_px=80)  # resized with the depth
    assert len(big.visual.vertex_colors) == len(big.vertices)


@pytest.mark.parametrize("fmt", ["stl", "glb", "obj"])
def test_exported_files_reopen_with_the_same_geometry(tmp_path, fmt):
    photo = np.random.default_rng(1).random((H, W, 3)).astype(np.float32)
    m = relief(scene(), photo, resolution_px=48, size_mm=60.0)
    path = marigold.save_3d(m, tmp_path / f"r.{fmt}")
    back = trimesh.load(path, force="mesh")
    assert_solid(back)
    assert back.volume == pytest.approx(m.volume, rel=1e-5)
    np.testing.assert_allclose(back.bounds, m.bounds, atol=1e-4)
    assert len(back.vertices) == len(m.vertices)
    if fmt != "stl":  # STL has no colours
        key = lambda v: np.lexsort(np.round(v, 4).T)  # noqa: E731  the loaders may reorder vertices
        np.testing.assert_array_equal(np.asarray(back.visual.vertex_colors)[key(back.vertices)][:, :3],
                                      np.asarray(m.visual.vertex_colors)[key(m.vertices)][:, :3])
    assert not list(tmp_path.glob(".*tmp*"))


# --- bad input ----------------------------------------------------------------------------------------------


def test_nan_pixels_are_far_and_an_all_nan_map_is_refused():
    d = scene()
    d[5:9, 5:9] = np.nan
    m = relief(d, resolution_px=None, median_size=1)
    assert_solid(m)
    assert np.all(top_of(m, H, W)[5:9, 5:9, 2] == pytest.approx(1.0))  # on the back plate
    with pytest.raises(marigold.InputError, match="no finite values"):
        relief(np.full((H, W), np.nan, np.float32))


def test_constant_depth_gives_a_flat_relief():
    m = relief(np.full((H, W), 0.4, np.float32))
    assert_solid(m)
    z = np.asarray(m.vertices[: 512 * 384])[:, 2]
    assert np.ptp(z) == 0.0


@pytest.mark.parametrize("kw,msg", [
    ({"plane_near": 0.6, "plane_far": 0.6}, "plane_near < plane_far"),
    ({"plane_near": 0.8, "plane_far": 0.2}, "plane_near < plane_far"),
    ({"size_mm": 0.0}, "size_mm"),
    ({"frame_mm": 50.0}, "frame_mm"),
    ({"back_mm": 0.0}, "back_mm"),
    ({"embossing": 120.0}, "embossing"),
    ({"median_size": 4}, "median_size"),
    ({"space": "inverse"}, "space"),
    ({"resolution_px": 1}, "resolution_px"),
])
def test_bad_parameters_are_named(kw, msg):
    with pytest.raises(marigold.InputError, match=msg):
        relief(scene(), **kw)


def test_bad_pictures_are_refused_with_a_message():
    with pytest.raises(marigold.InputError, match="at least 2 pixels"):
        relief(np.zeros((1, 1), np.float32))
    with pytest.raises(marigold.InputError, match="at least 2 pixels"):
        relief(np.zeros((1, 50), np.float32), resolution_px=None)
    with pytest.raises(marigold.InputError, match="aspect ratio"):
        relief(scene(), np.zeros((40, 30, 3), np.float32))  # portrait photo, landscape depth
    # the same picture at another resolution is fine (resized to the grid)
    assert_solid(relief(scene(), np.zeros((3 * H, 3 * W, 3), np.float32), resolution_px=64))
