"""Depth seen through the camera (marigold.geometry.mesh): back-projection, depth jumps, colours, point clouds, files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

import marigold
from marigold.geometry.mesh import depth_to_mesh, depth_to_points

H, W = 24, 32


def step(h=H, w=W, col=W // 2) -> np.ndarray:
    d = np.full((h, w), 0.2, np.float32)
    d[:, col:] = 0.8  # a wall far behind, starting at column `col`
    return d


def test_step_edge_loses_exactly_the_triangles_across_the_jump():
    m = depth_to_mesh(step(), fov_degrees=60.0, far_over_near=3.0)
    assert len(m.faces) == 2 * (H - 1) * (W - 1) - 2 * (H - 1)  # one column of squares, two triangles each
    cols = np.asarray(m.faces) % W
    assert not np.any((cols.min(axis=1) == W // 2 - 1) & (cols.max(axis=1) == W // 2))
    assert len(depth_to_mesh(step(), edge_threshold=0).faces) == 2 * (H - 1) * (W - 1)
    # a gentle slope (2 % per pixel here) keeps every triangle at the default threshold
    slope = np.tile(np.linspace(0.2, 0.4, W, dtype=np.float32), (H, 1))
    assert len(depth_to_mesh(slope).faces) == 2 * (H - 1) * (W - 1)


def _plane_depth(normal, point, fov, h, w, far_over_near):
    """0..1 depth whose back-projection is the plane through `point` with `normal` (camera looks down -z)."""
    f = (w / 2) / math.tan(math.radians(fov) / 2)
    xs = (np.arange(w) - (w - 1) / 2) / f
    ys = ((h - 1) / 2 - np.arange(h)) / f
    rays = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], -np.ones((h, w))), -1)  # [h,w,3], z = -1
    z = (normal @ point) / (rays @ normal)  # distance along the optical axis
    return ((z - 1.0) / (far_over_near - 1.0)).astype(np.float32)


def _fitted_normal(points):
    c = points - points.mean(0)
    n = np.linalg.svd(c, full_matrices=False)[2][-1]
    return n * np.sign(n[2]), np.abs(c @ n).max()


@pytest.mark.parametrize("fov", [40.0, 60.0, 90.0])
def test_a_plane_back_projects_to_a_plane_with_the_right_tilt(fov):
    true_n = np.array([0.35, -0.2, 1.0]) / np.linalg.norm([0.35, -0.2, 1.0])
    d = _plane_depth(true_n, np.array([0.0, 0.0, -2.0]), fov, H, W, far_over_near=4.0)
    assert 0.0 < d.min() and d.max() < 1.0
    m = depth_to_mesh(d, fov_degrees=fov, far_over_near=4.0)
    n, off = _fitted_normal(np.asarray(m.vertices, dtype=np.float64))
    assert off < 1e-4  # flat
    assert math.degrees(math.acos(min(1.0, n @ true_n))) < 0.05
    wrong, _ = _fitted_normal(np.asarray(depth_to_mesh(d, fov_degrees=fov * 0.7, far_over_near=4.0).vertices,
                                         dtype=np.float64))
    assert math.degrees(math.acos(min(1.0, wrong @ true_n))) > 1.0  # the field of view matters
    # a fronto-parallel plane (constant depth) lies at its distance, facing the camera
    flat = depth_to_mesh(np.full((H, W), 0.5, np.float32), fov_degrees=fov, far_over_near=3.0)
    np.testing.assert_allclose(np.asarray(flat.vertices)[:, 2], -2.0)
    assert np.all(np.asarray(flat.face_normals)[:, 2] > 0.999)
    half_width = np.asarray(flat.vertices)[:, 0].max()
    assert half_width == pytest.approx(2.0 * math.tan(math.radians(fov) / 2) * (W - 1) / W, rel=1e-5)


def test_vertex_colours_are_the_images():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    m = depth_to_mesh(step(), photo)
    assert len(m.vertices) == H * W  # one vertex per pixel, row by row
    np.testing.assert_array_equal(np.asarray(m.visual.vertex_colors)[:, :3], photo.reshape(-1, 3))
    p = depth_to_points(step(), photo)
    np.testing.assert_array_equal(np.asarray(p.colors)[:, :3], photo.reshape(-1, 3))
    np.testing.assert_allclose(p.vertices, m.vertices)


def test_disparity_maps_give_the_same_surface():
    d = np.tile(np.linspace(0.1, 0.9, W, dtype=np.float32), (H, 1))
    z = 1.0 + d * (3.0 - 1.0)
    disparity = (1.0 / z - 1.0 / 3.0) / (1.0 - 1.0 / 3.0)  # 1 = near
    a = depth_to_mesh(d, far_over_near=3.0)
    b = depth_to_mesh(disparity, far_over_near=3.0, space="disparity")
    np.testing.assert_allclose(b.vertices, a.vertices, rtol=1e-5, atol=1e-5)


def test_resolution_and_nan_pixels():
    d = step(48, 64)
    d[10:14, 5:9] = np.nan
    m = depth_to_mesh(d, resolution_px=32)
    assert len(m.vertices) == 24 * 32 and np.isfinite(m.vertices).all()
    shrunk = len(depth_to_mesh(step(48, 64), resolution_px=32).faces)  # the step's blended pixels fly: cut too
    assert 2 * 23 * 31 - 6 * 23 <= shrunk < 2 * 23 * 31  # at most the 3 squares of the 2-pixel blend
    assert len(depth_to_mesh(d, resolution_px=1024).vertices) == 48 * 64  # never enlarged
    full = depth_to_mesh(d)
    used = np.unique(np.asarray(full.faces))
    assert not np.isin(np.ravel_multi_index(np.nonzero(np.isnan(d)), d.shape), used).any()
    assert len(depth_to_points(d).vertices) == d.size - 16


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply"])
def test_mesh_files_reopen(tmp_path, fmt):
    photo = np.random.default_rng(2).random((H, W, 3)).astype(np.float32)
    m = depth_to_mesh(step(), photo)
    back = trimesh.load(marigold.save_3d(m, tmp_path / f"m.{fmt}"), force="mesh", process=False)
    assert len(back.faces) == len(m.faces)
    assert back.area == pytest.approx(m.area, rel=1e-5)


def test_point_cloud_ply_reopens(tmp_path):
    p = depth_to_points(step(), np.zeros((H, W, 3), np.float32))
    back = trimesh.load(marigold.save_3d(p, tmp_path / "p.ply"))
    assert isinstance(back, trimesh.PointCloud) and len(back.vertices) == H * W
    with pytest.raises(marigold.InputError, match="ply"):
        marigold.save_3d(p, tmp_path / "p.glb")
    with pytest.raises(marigold.InputError, match="3D file type"):
        marigold.save_3d(depth_to_mesh(step()), tmp_path / "m.fbx")


@pytest.mark.parametrize("kw,msg", [({"fov_degrees": 0.0}, "fov_degrees"), ({"fov_degrees": 180.0}, "fov_degrees"),
                                    ({"far_over_near": 1.0}, "far_over_near"), ({"edge_threshold": -1}, "edge_"),
                                    ({"space": "metres"}, "space")])
def test_bad_parameters_are_named(kw, msg):
    with pytest.raises(marigold.InputError, match=msg):
        depth_to_mesh(step(), **kw)


def test_bad_input_is_refused_with_a_message():
    with pytest.raises(marigold.InputError, match="at least 2 pixels"):
        depth_to_mesh(np.zeros((1, 1), np.float32))
    assert len(depth_to_points(np.zeros((1, 1), np.float32)).vertices) == 1  # one pixel is one point
    with pytest.raises(marigold.InputError, match="aspect ratio"):
        depth_to_mesh(step(), np.zeros((W, H, 3), np.float32))
    with pytest.raises(marigold.InputError, match="no finite values"):
        depth_to_mesh(np.full((H, W), np.nan, np.float32))
    with pytest.raises(marigold.InputError, match="depth jump"):
        depth_to_mesh(np.random.default_rng(0).random((H, W)).astype(np.float32), edge_threshold=1e-6)
    with pytest.raises(marigold.InputError, match="one depth map"):
        depth_to_mesh(np.zeros((2, 1, H, W), np.float32))
    # a constant map is a plane, not an error
    assert len(depth_to_mesh(np.zeros((H, W), np.float32)).faces) == 2 * (H - 1) * (W - 1)
