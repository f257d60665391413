"""The synthetic scenes' opt-in field-of-view range (``fov``, ``crop``; issue #35): without it every scene, focal
length and video is bit-identical to what it was before the option existed (the eval sets, the bench's stamps
and cached models rest on that); with it the camera's field of view lies in the range, its focal length is the
one ``focal_px`` reports (checked against a second rendered camera), and the data spec and the FOV recipe reach
it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from train.data import build_dataset, make_stream, parse_spec
from train.data.synthetic import SyntheticDataset, SyntheticVideoDataset, _narrow_view, focal_px, render, render_video
from train.video_metrics import evaluate_video


def _hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# computed with main's train/data/synthetic.py before the option existed (commit 008ca1e)
BEFORE = {(0, ()): "d282156609a74979", (1_000_005, (("texture", "flat"),)): "52a8bd9748aa7254",
          (7, (("materials", True),)): "d41e560e5306a5fc",
          (1_000_003, (("fine", True), ("texture", "flat"))): "6ffedddf849ef4db",
          (1_000_004, (("camera_x", 0.1), ("texture", "flat"))): "5fb7686ff74a4287"}
FOCAL_BEFORE = [98.6899096471343, 136.34425528350747, 99.26647124413172]  # focal_px(seed, 128), seeds 0, 5, 1_000_003


@pytest.mark.parametrize("seed,kw", list(BEFORE))
def test_without_fov_every_scene_is_bit_identical_to_before(seed, kw):
    s = render(seed, 24, 32, **dict(kw))
    assert _hash(s.rgb, s.depth, s.normals, *[s.targets[k] for k in sorted(s.targets)], s.labels) == BEFORE[seed, kw]
    assert [focal_px(x, 128) for x in (0, 5, 1_000_003)] == FOCAL_BEFORE


def test_without_fov_videos_and_datasets_are_bit_identical_to_before():
    v = render_video(500_001, 3, 24, 32, texture="flat", moving=True)
    assert _hash(v.rgb, v.depth, v.intrinsics, v.poses, v.moving) == "99b9d549d36503fe"
    ds = build_dataset(parse_spec({"name": "synthetic", "path": "flat", "size": 3, "height": 24, "width": 32}))
    assert ds.fov is None
    assert _hash(*[ds[i].rgb for i in range(3)], *[ds[i].depth for i in range(3)]) == "2b147a5a62b3ed47"


def test_fov_is_drawn_log_uniformly_in_range_and_keeps_the_room():
    fovs = np.rad2deg([2 * np.arctan(64 / focal_px(s, 128, (6, 70))) for s in range(400)])
    assert 6 <= fovs.min() and fovs.max() <= 70
    assert abs(np.median(fovs) / np.sqrt(6 * 70) - 1) < 0.15  # log-uniform: the median is the geometric mean
    assert (fovs < 20).mean() > 0.4  # a tile's fields of view (7-19 degrees at 4x and 8x) are common
    # the same room from the same spot, rendered directly (not a resized crop): the centred zoomed camera's pixel
    # (u, v) looks along the whole-room camera's ray through (u, v) · f_wide / f_zoom, at the same depth
    seed, h, w = 1_000_003, 48, 64
    wide = render(seed, h, w, supersample=1, objects=False)
    centred = render(seed, h, w, supersample=1, objects=False, fov=(20, 20), crop=False)
    ratio = focal_px(seed, w) / focal_px(seed, w, (20, 20))
    assert 0.2 < ratio < 0.4
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    uw = np.floor((xs - w / 2) * ratio + w / 2).astype(int)  # [H,W] the whole view's pixel under each ray
    vw = np.floor((ys - h / 2) * ratio + h / 2).astype(int)
    rel = np.abs(wide.depth[vw, uw] / centred.depth - 1)
    assert np.median(rel) < 0.01 and not np.array_equal(wide.rgb, centred.rgb)
    np.testing.assert_allclose(np.linalg.norm(centred.normals, axis=-1), 1.0, atol=1e-5)
    # crop (the default) aims the same zoomed camera elsewhere: the same focal length, another picture
    crop = render(seed, h, w, supersample=1, objects=False, fov=(20, 20))
    assert not np.array_equal(crop.depth, centred.depth)
    yaws = [abs(np.arctan2(*_narrow_view(s, np.deg2rad(60), (10, 10), 0.75, True)[1][[0, 2], 2])) for s in range(200)]
    assert max(yaws) <= np.deg2rad(25) + 1e-9 and np.mean(yaws) > np.deg2rad(8)  # uniform over ±25 degrees


@pytest.mark.parametrize("seed,crop,fov", [(1_000_006, True, (10, 25)), (1_000_009, True, (10, 25)),
                                           (1_000_007, False, (20, 40))])
def test_focal_length_matches_the_camera_actually_rendered(seed, crop, fov):
    """A second camera b metres to the right (along the zoomed camera's own x axis) sees a point at depth Z
    ``focal_px · b / Z`` pixels to the left, at the same depth: on the room's planes 1/Z is affine along a row,
    so the right view's 1/Z interpolated there equals the left's exactly. Scored on the pixels whose depth
    changes along the row (a wall seen face on fits any focal length)."""
    h, w, b = 48, 64, 0.05
    left = render(seed, h, w, supersample=1, objects=False, fov=fov, crop=crop)
    right = render(seed, h, w, supersample=1, objects=False, fov=fov, crop=crop, camera_x=b)
    assert left.valid.all() and right.valid.all()
    inv_l, inv_r = 1 / left.depth.astype(np.float64), 1 / right.depth.astype(np.float64)  # [H,W]
    slanted = np.abs(np.gradient(inv_l, axis=1)) > 1e-4 * inv_l

    def exact_share(focal: float) -> float:
        u = np.arange(w)[None] - focal * b * inv_l  # [H,W] column of each left pixel in the right view
        got = np.stack([np.interp(u[y], np.arange(w), inv_r[y]) for y in range(h)])  # [H,W]
        scored = slanted & (u >= 0) & (u <= w - 1)
        assert scored.sum() > 200
        return float((np.abs(got - inv_l) < 1e-6 * inv_l)[scored].mean())

    assert exact_share(focal_px(seed, w, fov)) > 0.8  # the rest: next to the room's corners
    assert exact_share(focal_px(seed, w)) < 0.05  # the whole-room camera's focal length does not fit


def test_video_intrinsics_follow_the_fov():
    v = render_video(500_003, 4, 24, 32, texture="flat", fov=(20, 20))
    np.testing.assert_allclose(v.intrinsics[0, 0], 16 / np.tan(np.deg2rad(10)))
    gt = evaluate_video(v.depth, v.depth, v.valid, intrinsics=v.intrinsics, poses=v.poses)
    assert gt["temporal_error"] < 1e-12 and gt["correspondences"] > 500  # K agrees with the frames rendered
    assert np.array_equal(SyntheticVideoDataset(2, 4, 24, 32, fov=(20, 20)).intrinsics(1),
                          render_video(SyntheticVideoDataset(2, 4, 24, 32).seed(1), 1, 24, 32, fov=(20, 20)).intrinsics)


def test_data_spec_and_the_fov_recipe_reach_the_renderer():
    from train.config import load_file

    spec = parse_spec({"name": "synthetic", "path": "flat", "size": 5, "fov": [6, 70], "crop": True})
    ds = build_dataset(spec)
    assert isinstance(ds, SyntheticDataset) and ds.fov == (6.0, 70.0) and ds.texture == "flat"
    np.testing.assert_array_equal(ds[2].rgb, render(2, 96, 128, texture="flat", fov=(6, 70)).rgb)
    thin = build_dataset(parse_spec({"name": "synthetic", "size": 2, "height": 24, "width": 32, "fine": True}))
    np.testing.assert_array_equal(thin[1].depth, render(1, 24, 32, fine=True).depth)
    root = Path(__file__).resolve().parents[1] / "train" / "configs"
    small, fov = load_file(root / "cpu_small.yaml"), load_file(root / "cpu_small_fov.yaml")
    assert {k for k in small if small[k] != fov.get(k)} == {"data"} and set(fov) == set(small)  # data alone differs
    stream = make_stream(fov["data"], fov["resolution"], 2, 0, "depth", 0.5)
    assert [d.fov for d in stream.datasets] == [None, (6.0, 70.0)] and stream.probs == [0.5, 0.5]
    for bad, msg in (([6], "must be \\[low, high\\]"), ([70, 6], "1 <= low <= high <= 120"), ("wide", "must be")):
        with pytest.raises(ValueError, match=msg):
            build_dataset(parse_spec({"name": "synthetic", "fov": bad}))


def test_quality_bench_trains_the_fov_recipe_apart_from_the_small_one(tmp_path, quality_commands):
    """``python -m bench.quality --small-recipe small-fov``: its models are cached beside the small recipe's under
    a name and a stamp of their own (neither reuses nor overwrites the other), and its results go elsewhere."""
    from bench import quality as Q

    cmds = quality_commands
    small, _ = Q.build_models(tmp_path, [0], ["small"])
    fov, _ = Q.build_models(tmp_path, [0], ["small-fov"])
    assert fov["small-fov", 0] == tmp_path / "small-fov-s0" / "final" != small["small", 0]
    trainings = [c for c in cmds if "train.finetune" in c]
    assert [Path(c[c.index("--config") + 1]).name for c in trainings] == ["cpu_small.yaml", "cpu_small_fov.yaml"]
    stamps = [(tmp_path / f"{r}-s0.stamp").read_text() for r in ("small", "small-fov")]
    assert stamps[0] != stamps[1]
    n = len(cmds)
    Q.build_models(tmp_path, [0], ["small", "small-fov"])
    assert len(cmds) == n  # both cached: nothing rebuilt
    assert Q.results_paths("small") == (Q.RESULTS_JSON, "quality")
    assert Q.results_paths("small-fov")[0].name == "quality_small-fov_results.json"
    with pytest.raises(SystemExit):
        Q.main(["--small-recipe", "wide"])


def test_fov_match_cuts_the_tiles_predict_tiled_cuts_and_scores_views():
    """bench.fov_match: the tiles of a 2× scene are predict_tiled's (128 px, covering the image), and its
    statistics tell a view of one surface from a view with depth edges."""
    from bench import fov_match as F
    from marigold.core.tiling import plan_tiles

    got = list(F.tiles(1_000_003, 2))
    plan = plan_tiles((192, 256), 128, 32)
    assert len(got) == plan.count == 6 and all(t[0].shape == (128, 128, 3) and t[1].shape == (128, 128) for t in got)
    whole = render(1_000_003, 192, 256, texture="flat")
    y0, x0, y1, x1 = list(plan.boxes())[-1]
    np.testing.assert_array_equal(got[-1][1], whole.depth[y0:y1, x0:x1])
    wall = F.view_stats(np.full((32, 32, 3), 0.5), np.full((32, 32), 4.0), np.ones((32, 32), bool))
    assert wall["edge_share"] == 0 and wall["depth_range"] == 0 and wall["colour_var"] == 0
    room = render(1_000_003, 96, 128, texture="flat")
    s = F.view_stats(room.rgb, room.depth, room.valid)
    assert s["edge_share"] > 0.01 and s["depth_range"] > 0.2 and s["colour_var"] > 0
    table = F.markdown({"x": F.summarise([s, wall])})
    assert "| x | 2 |" in table and "50%" in table


def test_quality_bench_trains_the_zoom_recipe_from_the_small_model_of_the_same_seed(tmp_path, quality_commands,
                                                                                     monkeypatch):
    """``--small-recipe small-zoom`` continues the small recipe's model of each seed (built first when missing),
    and a retrained small model retrains it (its stamp is in the zoom model's)."""
    from bench import quality as Q

    cmds = quality_commands
    got, _ = Q.build_models(tmp_path, [0, 1], ["small-zoom"])
    trainings = [c for c in cmds if "train.finetune" in c]
    assert [Path(c[c.index("--config") + 1]).name for c in trainings] == ["cpu_small.yaml"] * 2 + \
        ["cpu_small_zoom.yaml"] * 2  # the small models first, the zoom ones from them
    for seed, c in zip((0, 1), trainings[2:]):
        assert c[c.index("--base") + 1] == str(tmp_path / f"small-s{seed}" / "final")
        assert c[c.index("--seed") + 1] == str(seed)
    assert got["small-zoom", 1] == tmp_path / "small-zoom-s1" / "final"
    n = len(cmds)
    Q.build_models(tmp_path, [0, 1], ["small", "small-zoom"])
    assert len(cmds) == n  # all cached
    config, base, _ = Q.RECIPES["small"]
    monkeypatch.setitem(Q.RECIPES, "small", (config, base, ["--lr", "1e-4"]))  # the small recipe changed
    Q.build_models(tmp_path, [1], ["small-zoom"])
    again = [c for c in cmds[n:] if "train.finetune" in c]
    assert [c[c.index("--output") + 1] for c in again] == [str(tmp_path / "small-s1"), str(tmp_path / "small-zoom-s1")]
