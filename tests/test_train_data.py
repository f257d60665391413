"""Training data: each loader on a few files fabricated in its published format, the shared per-sample steps,
the synthetic renderer, and the deterministic mixing stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from train.data import MixedStream, StreamSampler, make_stream, parse_spec, training_size
from train.data.common import DepthSample, fill_invalid, normalize_depth, prepare
from train.data.folder import FolderDataset
from train.data.formats import write_exr, write_png16
from train.data.hypersim import FOCAL, HypersimDataset, distance_to_planar, tonemap
from train.data.synthetic import SyntheticDataset, render
from train.data.vkitti import VKittiDataset


def _rgb(h, w, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------- Hypersim


def test_hypersim_reads_hdf5_and_converts_distance_to_planar_depth(tmp_path):
    import h5py

    h, w = 768, 1024
    planar = np.full((h, w), 3.0, np.float32)  # a fronto-parallel wall 3 m away
    u = (np.arange(w) + 0.5 - w / 2) / FOCAL
    v = (np.arange(h) + 0.5 - h / 2) / FOCAL
    distance = planar * np.sqrt(1 + u[None] ** 2 + v[:, None] ** 2)
    distance[:10, :10] = np.nan  # no geometry
    hdr = np.random.default_rng(0).random((h, w, 3)).astype(np.float16) * 4
    img = tmp_path / "ai_001_001" / "images"
    (img / "scene_cam_00_final_hdf5").mkdir(parents=True)
    (img / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    with h5py.File(img / "scene_cam_00_final_hdf5" / "frame.0007.color.hdf5", "w") as f:
        f["dataset"] = hdr
    with h5py.File(img / "scene_cam_00_geometry_hdf5" / "frame.0007.depth_meters.hdf5", "w") as f:
        f["dataset"] = distance.astype(np.float16)

    ds = HypersimDataset(tmp_path)
    assert len(ds) == 1 and ds.native_size == (768, 1024)
    s = ds[0]
    assert s.rgb.shape == (h, w, 3) and 0 <= s.rgb.min() and s.rgb.max() <= 1
    assert not s.valid[:10, :10].any() and s.valid[10:, 10:].all()
    np.testing.assert_allclose(s.depth[s.valid], 3.0, rtol=2e-3)  # float16 storage
    # the tone mapping puts the 90th brightness percentile at 0.8
    bright = 0.3 * s.rgb[..., 0] + 0.59 * s.rgb[..., 1] + 0.11 * s.rgb[..., 2]
    assert 0.6 < np.percentile(bright, 90) < 0.85


def test_hypersim_split_file_and_distance_formula(tmp_path):
    d = distance_to_planar(np.full((4, 8), 2.0, np.float32), focal=FOCAL * 1024 / 8)
    assert d.shape == (4, 8) and (d < 2.0).all() and d.max() > 1.9
    assert tonemap(np.zeros((4, 4, 3))).max() == 0.0
    with pytest.raises(FileNotFoundError):
        HypersimDataset(tmp_path)


# --------------------------------------------------------------------------------------------------- vKITTI


def test_vkitti_reads_png16_centimetres_and_crops_to_benchmark(tmp_path):
    rgb_dir = tmp_path / "vkitti_2.0.3_rgb" / "Scene01" / "clone" / "frames" / "rgb" / "Camera_0"
    dep_dir = tmp_path / "vkitti_2.0.3_depth" / "Scene01" / "clone" / "frames" / "depth" / "Camera_0"
    rgb_dir.mkdir(parents=True)
    dep_dir.mkdir(parents=True)
    Image.fromarray(_rgb(375, 1242)).save(rgb_dir / "rgb_00000.jpg")
    cm = np.full((375, 1242), 1234, np.uint16)  # 12.34 m
    cm[-1, :] = 65535  # sky: 655.35 m, beyond 80 m
    write_png16(dep_dir / "depth_00000.png", cm)
    ds = VKittiDataset(tmp_path)
    assert len(ds) == 1
    s = ds[0]
    assert s.rgb.shape == (352, 1216, 3) and s.depth.shape == (352, 1216)
    np.testing.assert_allclose(s.depth[s.valid], 12.34, rtol=1e-6)
    assert not s.valid[-1].any() and s.valid[:-1].all()


# --------------------------------------------------------------------------------------------------- folder


@pytest.mark.parametrize("kind", ["png", "npy", "exr"])
def test_folder_reads_png16_npy_and_exr(tmp_path, kind):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    depth = np.linspace(0.5, 4.0, 24 * 32, dtype=np.float32).reshape(24, 32)
    depth[0, 0] = 0  # invalid
    Image.fromarray(_rgb(24, 32)).save(tmp_path / "rgb" / "a.png")
    if kind == "png":
        write_png16(tmp_path / "depth" / "a.png", np.round(depth * 1000))
    elif kind == "npy":
        np.save(tmp_path / "depth" / "a.npy", depth)
    else:
        write_exr(tmp_path / "depth" / "a.exr", depth)
    ds = FolderDataset(tmp_path)
    s = ds[0]
    assert ds.native_size == (24, 32) and not s.valid[0, 0] and s.valid.sum() == 24 * 32 - 1
    np.testing.assert_allclose(s.depth[s.valid], depth[s.valid], atol=1e-3 if kind == "png" else 1e-6)


def test_folder_flat_layout_and_missing_data(tmp_path):
    Image.fromarray(_rgb(8, 8)).save(tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError, match="no RGB \\+ depth pairs"):
        FolderDataset(tmp_path)
    np.save(tmp_path / "x_depth.npy", np.ones((8, 8, 1), np.float32))
    assert FolderDataset(tmp_path)[0].depth.shape == (8, 8)


# --------------------------------------------------------------------------------------------------- synthetic


def test_synthetic_render_is_exact_and_deterministic():
    a, b = render(3, 48, 64), render(3, 48, 64)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert a.rgb.shape == (48, 64, 3) and a.depth.shape == (48, 64)
    assert a.valid.all() and (a.depth > 0.5).all()
    np.testing.assert_allclose(np.linalg.norm(a.normals, axis=-1), 1.0, atol=1e-5)
    assert not np.array_equal(render(4, 48, 64).depth, a.depth)
    # held-out scenes are never training scenes
    train = SyntheticDataset(5, 16, 16, "train")
    held = SyntheticDataset(5, 16, 16, "heldout")
    assert all(not np.array_equal(train[i].depth, held[j].depth) for i in range(5) for j in range(5))


def test_flat_texture_keeps_the_scene_and_colours_each_surface_once():
    """``texture="flat"`` (the tiny CPU setup's scenes): the same geometry as the photo-textured scene, and on one
    plane (the floor, one palette colour) the only change across pixels is the shading, which is constant on a
    plane under a directional light. ``synthetic:flat`` / ``synthetic-video:flat`` select it in a data spec."""
    from train.data import build_dataset
    from train.data.video import build_video_dataset

    photo = render(11, 48, 64, supersample=1, objects=False)
    flat = render(11, 48, 64, supersample=1, objects=False, texture="flat")
    assert np.array_equal(photo.depth, flat.depth) and np.array_equal(photo.normals, flat.normals)
    floor = flat.normals[..., 1] > 0.95
    assert floor.sum() > 100
    assert np.ptp(flat.rgb[floor], axis=0).max() < 1e-6 < np.ptp(photo.rgb[floor], axis=0).max()
    ds = build_dataset(parse_spec("synthetic:flat"))
    assert ds.texture == "flat" and np.array_equal(ds[0].rgb, render(0, 96, 128, texture="flat").rgb)
    assert build_video_dataset(parse_spec("synthetic-video:flat", video=True)).texture == "flat"
    assert build_dataset(parse_spec("synthetic")).texture == "photo"
    with pytest.raises(ValueError, match="texture must be one of photo, flat"):
        build_dataset(parse_spec("synthetic:marble"))


def test_synthetic_depth_is_exact_planar_depth():
    """On a plane n·P = c seen by a pinhole camera, 1/z is an affine function of the pixel coordinates; the
    floor pixels of a render (normal pointing up) must satisfy that to float precision."""
    s = render(11, 96, 128, supersample=1, objects=False)
    floor = s.normals[..., 1] > 0.95
    assert floor.sum() > 200
    ys, xs = np.nonzero(floor)
    a = np.stack([xs, ys, np.ones_like(xs)], 1).astype(np.float64)
    inv = 1.0 / s.depth[floor].astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, inv, rcond=None)
    assert np.abs(a @ coef - inv).max() < 1e-5 * inv.max()


# --------------------------------------------------------------------------------------------------- common


def test_normalize_depth_uses_2_and_98_percent_quantiles():
    d = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    valid = np.ones_like(d, bool)
    n = normalize_depth(d, valid)
    assert n.min() == -1.0 and n.max() == 1.0
    lo, hi = np.quantile(d, [0.02, 0.98])
    inner = (d > lo) & (d < hi)
    np.testing.assert_allclose(n[inner], (d[inner] - lo) / (hi - lo) * 2 - 1, rtol=1e-5)


def test_prepare_fills_invalid_flips_and_resizes():
    depth = np.tile(np.arange(16, dtype=np.float32) + 1, (8, 1))
    valid = np.ones_like(depth, bool)
    valid[:, :4] = False
    s = DepthSample(rgb=np.zeros((8, 16, 3), np.float32), depth=np.where(valid, depth, 0), valid=valid)
    out = prepare(s, "depth", size=(8, 16), flip=False)
    assert out["rgb"].shape == (3, 8, 16) and out["rgb"].min() == -1
    assert out["target"].shape == (3, 8, 16) and torch.equal(out["target"][0], out["target"][1])
    assert torch.all(out["target"][:, :, :4] == out["target"][:, :, 4:5])  # filled from the nearest valid
    assert not out["valid"][0, :, :4].any()
    flipped = prepare(s, "depth", size=(8, 16), flip=True)
    assert torch.equal(flipped["valid"][0], out["valid"][0].flip(-1))
    small = prepare(s, "depth", size=(4, 8))
    assert small["target"].shape == (3, 4, 8)
    filled = fill_invalid(np.array([[0.0, 5.0]]), np.array([[False, True]]))
    assert filled[0, 0] == 5.0


def test_prepare_normals_flip_negates_x():
    s = render(2, 16, 16)
    a = prepare(s, "normals")
    b = prepare(s, "normals", flip=True)
    assert torch.allclose(b["target"][0], -a["target"][0].flip(-1))
    assert torch.allclose(b["target"][1:], a["target"][1:].flip(-1))


# --------------------------------------------------------------------------------------------------- stream


def test_stream_is_a_pure_function_of_seed_and_position():
    stream = make_stream(["synthetic"], 32, batch_size=2, seed=5, task="depth", flip_p=0.5)
    again = make_stream(["synthetic"], 32, batch_size=2, seed=5, task="depth", flip_p=0.5)
    assert stream.sizes == [(24, 32)]
    for k in (0, 3, 17):
        assert torch.equal(stream[k]["rgb"], again[k]["rgb"])
    other = make_stream(["synthetic"], 32, batch_size=2, seed=6, task="depth", flip_p=0.5)
    assert not torch.equal(stream[0]["rgb"], other[0]["rgb"])
    # a resumed sampler continues exactly where the numbering says
    full = StreamSampler(2, rank=1, world=2, start=0)
    it = iter(full)
    first = [next(it) for _ in range(8)]
    assert first == [2, 3, 6, 7, 10, 11, 14, 15]
    resumed = iter(StreamSampler(2, rank=1, world=2, start=2))
    assert [next(resumed) for _ in range(4)] == first[4:]


def test_mixing_probabilities_pick_whole_batches_per_data_set():
    class Const:
        def __init__(self, v, n=10):
            self.v, self.n, self.native_size = v, n, (8, 8)

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return DepthSample(rgb=np.full((8, 8, 3), self.v, np.float32), depth=np.ones((8, 8), np.float32),
                               valid=np.ones((8, 8), bool))

    s = MixedStream([Const(0.0), Const(1.0)], [0.9, 0.1], [(8, 8), (8, 8)], batch_size=4, seed=0)
    picks = [s.choose(k)[0] for k in range(4000)]
    batches = np.array(picks).reshape(-1, 4)
    assert (batches == batches[:, :1]).all()  # one data set per micro-batch
    share = batches[:, 0].mean()
    assert 0.06 < share < 0.14
    assert parse_spec("hypersim:/d@0.9") == {"name": "hypersim", "path": "/d", "prob": 0.9}
    with pytest.raises(ValueError, match="needs a path"):
        parse_spec("vkitti")
    assert training_size((480, 640), 320) == (240, 320) and training_size((352, 1216), None) == (352, 1216)
