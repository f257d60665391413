"""Depth-completion evaluation (train.completion_eval): the sparse-input sets read in their published layouts, the
points drawn as Marigold-DC draws them, KITTI-DC's LiDAR filter, and ``python -m train.evaluate --complete``."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from PIL import Image

from train import evaluate
from train.completion_eval import dc_items, filter_lidar, interpolate, sample_points

H, W = 24, 32


def _png16(path, metres, factor):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(metres * factor).astype(np.uint16)).save(path)


def _rgb(path, g):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(g.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def scene():
    g = np.random.default_rng(0)
    depth = (2.0 + 3.0 * g.uniform(size=(H, W))).astype(np.float32)
    sparse = np.where(sample_points(np.ones((H, W), bool), 40), depth, 0).astype(np.float32)
    return g, depth, sparse


def test_points_are_drawn_as_the_reference_draws_them():
    valid = np.random.default_rng(1).uniform(size=(20, 30)) > 0.3
    coords = np.argwhere(valid)
    want = coords[np.random.RandomState(2024).permutation(len(coords))[:50]]  # the legacy generator, seed 2024
    got = sample_points(valid, 50)
    assert got.sum() == 50 and not (got & ~valid).any()
    assert {tuple(c) for c in np.argwhere(got)} == {tuple(c) for c in want}
    assert sample_points(valid, 10 ** 6).sum() == valid.sum()  # k above the count: every valid pixel


def test_lidar_filter_drops_returns_seen_through_a_foreground_edge():
    d = np.zeros((20, 20), np.float32)
    d[5, 5] = 5.0  # a foreground return
    d[5, 7] = 20.0  # background, 2 px away: seen through the edge
    d[15, 15] = 20.0  # background far from any foreground
    d[6, 5] = 5.5  # foreground, 0.5 m behind its neighbour: kept
    out = filter_lidar(d)
    assert out[5, 7] == 0 and out[15, 15] == 20.0 and out[5, 5] == 5.0 and out[6, 5] == 5.5


def test_interpolation_baselines():
    s = np.zeros((10, 10), np.float32)
    s[0, 0], s[0, 9], s[9, 0], s[9, 9] = 1.0, 1.0, 3.0, 3.0
    lin = interpolate(s, "linear")
    assert lin[0, 4] == pytest.approx(1.0) and lin[9, 4] == pytest.approx(3.0) and 1.0 < lin[5, 5] < 3.0
    assert set(np.unique(interpolate(s, "nearest"))) == {1.0, 3.0}


def test_sets_read_in_their_published_layouts(tmp_path, scene):
    g, depth, sparse = scene
    # Marigold-DC's processed folder
    f = tmp_path / "folder"
    _rgb(f / "rgb" / "0000.png", g)
    for sub, arr in (("sparse", sparse), ("gt", depth)):
        (f / sub).mkdir(parents=True)
        np.save(f / sub / "0000.npy", arr)
    # KITTI-DC's validation selection (16-bit PNGs, metres × 256)
    k = tmp_path / "kitti" / "depth_selection" / "val_selection_cropped"
    _rgb(k / "image" / "a_image_02.png", g)
    _png16(k / "velodyne_raw" / "a_velodyne_raw_02.png", sparse, 256)
    _png16(k / "groundtruth_depth" / "a_groundtruth_depth_02.png", depth, 256)
    # VOID: list files of paths under the release folder
    v = tmp_path / "void"
    _rgb(v / "void_150" / "data" / "seq" / "image" / "1.png", g)
    _png16(v / "void_150" / "data" / "seq" / "sparse_depth" / "1.png", sparse, 256)
    _png16(v / "void_150" / "data" / "seq" / "ground_truth" / "1.png", depth, 256)
    for kind, sub in (("image", "image"), ("sparse_depth", "sparse_depth"), ("ground_truth", "ground_truth")):
        (v / "void_150" / f"test_{kind}.txt").write_text(f"void_150/data/seq/{sub}/1.png\n")
    # NYUv2 as the HDF5 pair
    n = tmp_path / "nyu"
    n.mkdir()
    with h5py.File(n / "nyu_img_gt.h5", "w") as h:
        h["img"] = g.integers(0, 255, (2, H, W, 3), dtype=np.uint8)
        h["gt"] = np.stack([depth, depth])[..., None]
    with h5py.File(n / "nyu_pred_with_500.h5", "w") as h:
        h["hints"] = np.stack([sparse, sparse])[..., None]
    # ScanNet: colour and 16-bit millimetres; 500 points drawn from the truth
    s = tmp_path / "scannet" / "scene0000_00"
    _rgb(s / "color" / "0.jpg", g)
    _png16(s / "depth" / "0.png", depth, 1000)

    for spec, count, points in ((f"dc-folder:{f}", 1, 40), (f"kitti-dc:{tmp_path / 'kitti'}", 1, None),
                                (f"void:{v}:150", 1, 40), (f"nyu-dc:{n}", 2, 40),
                                (f"scannet-dc:{tmp_path / 'scannet'}", 1, 500), ("synthetic-dc:2:30", 2, 30)):
        items = list(dc_items(spec))
        assert len(items) == count, spec
        it = items[0]
        assert it.rgb.shape[-1] == 3 and it.sparse.shape == it.depth.shape == it.rgb.shape[:2], spec
        if points is not None:
            assert int((it.sparse > 0).sum()) == points, spec
        m = it.sparse > 0
        if "synthetic" not in spec:
            assert np.allclose(it.sparse[m], depth[m], atol=5e-3), spec  # the PNGs' 1/256 m (or 1 mm) steps
    kitti = next(dc_items(f"kitti-dc:{tmp_path / 'kitti'}"))
    assert 0 < (kitti.sparse > 0).sum() <= 40  # filtered: never more than given
    with pytest.raises(ValueError, match="unknown depth-completion set"):
        dc_items("lidar:/x")


def test_evaluate_complete_end_to_end(depth_checkpoint, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = evaluate.main(["--checkpoint", str(depth_checkpoint), "--dtype", "fp32", "--complete", "--dataset",
                        "synthetic-dc:2:30", "--complete-steps", "2", "--processing-resolution", "32",
                        "--baseline", "fit", "--baseline", "fit+snap", "--baseline", "linear", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())[0]
    assert res["n"] == 2 and set(res["means"]) == {"completion", "completion, no snap", "fit", "fit + snap", "linear"}
    assert all(np.isfinite(v["mae"]) and v["rmse"] >= v["mae"] > 0 for v in res["means"].values())
    assert "| completion |" in capsys.readouterr().out
    m = res["means"]
    assert m["completion"]["mae"] < m["completion, no snap"]["mae"] and m["fit + snap"]["mae"] < m["fit"]["mae"]
    rc = evaluate.main(["--checkpoint", str(depth_checkpoint), "--dtype", "fp32", "--complete", "--dataset",
                        "synthetic-dc:1:30", "--complete-steps", "1", "--processing-resolution", "32", "--no-snap",
                        "--json", str(out)])
    assert rc == 0 and set(json.loads(out.read_text())[0]["means"]) == {"completion"}
