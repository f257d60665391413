"""Video training data: the synthetic camera paths (exact geometry), the folder-of-frames format, the paper's
video sets on files fabricated in their published layouts, and snippets with one normalisation each."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from train.data import parse_spec
from train.data.formats import write_png16
from train.data.synthetic import SyntheticVideoDataset, render_video
from train.data.video import SnippetStream, make_snippet_stream, normalize_snippet, prepare_snippet
from train.data.video_folder import VideoFolderDataset, write_sequence
from train.data.video_sets import NED_FROM_CAM, CsvVideoSet, TartanAirDataset, tartanair_poses
from train.video_metrics import correspondences, evaluate_video


@pytest.fixture(scope="module")
def clip():
    return render_video(500_007, 48, 24, 32)


# --------------------------------------------------------------------------------------------------- synthetic


def test_synthetic_video_moves_smoothly_with_exact_geometry(clip):
    assert clip.rgb.shape == (48, 24, 32, 3) and clip.poses.shape == (48, 4, 4)
    steps = np.linalg.norm(np.diff(clip.poses[:, :3, 3], axis=0), axis=1)
    assert steps.sum() > 0.1 and steps.max() < 0.05  # it moves, smoothly: no jumps between frames
    yaw = np.arctan2(clip.poses[:, 0, 2], clip.poses[:, 2, 2])
    assert np.abs(np.diff(yaw)).max() < 0.05
    # exact: a surface point seen in frame k lands at the depth the renderer gives it in frame k+1 (0.1 %)
    v, *_ = correspondences(clip.depth[0], clip.valid[0], clip.depth[1], clip.valid[1], clip.intrinsics,
                            clip.poses[0], clip.poses[1], tol=1e-3)
    assert v.size > 0.6 * clip.valid[0].sum()
    gt = evaluate_video(clip.depth, clip.depth, clip.valid, intrinsics=clip.intrinsics, poses=clip.poses)
    assert gt["abs_rel"] < 1e-12 and gt["temporal_error"] < 1e-12 and gt["correspondences"] > 10_000


def test_synthetic_video_dataset_renders_single_frames_of_the_same_clip(clip):
    ds = SyntheticVideoDataset(3, 48, 24, 32, split="train")
    ds.seed = lambda i: 500_007  # the fixture's video
    f = ds.frame(0, 17)
    np.testing.assert_array_equal(f.rgb, clip.rgb[17])
    np.testing.assert_array_equal(f.depth, clip.depth[17])
    np.testing.assert_allclose(ds.poses(0), clip.poses)
    a, b = SyntheticVideoDataset(2, 4, 24, 32, "train"), SyntheticVideoDataset(2, 4, 24, 32, "heldout")
    assert not np.array_equal(a.frame(0, 0).rgb, b.frame(0, 0).rgb)  # splits never share a video


def test_dolly_path_changes_the_visible_depth_range_with_exact_geometry(clip):
    dolly = render_video(500_007, 48, 24, 32, path="dolly")
    np.testing.assert_array_equal(render_video(500_007, 2, 24, 32).poses[0], clip.poses[0])  # default unchanged
    z = dolly.poses[:, 2, 3]
    assert abs(z[-1] - z[0]) >= 2.0 and z.max() <= 1e-9  # a long dolly, never past the objects (z >= 0.7)
    assert np.linalg.norm(np.diff(dolly.poses[:, :3, 3], axis=0), axis=1).max() < 0.15  # smooth
    far = [dolly.depth[k][dolly.valid[k]].max() for k in (0, 47)]
    assert abs(far[1] - far[0]) > 1.5  # what makes per-frame normalisation flicker
    gt = evaluate_video(dolly.depth, dolly.depth, dolly.valid, intrinsics=dolly.intrinsics, poses=dolly.poses)
    assert gt["temporal_error"] < 1e-12 and gt["correspondences"] > 5_000
    with pytest.raises(ValueError, match="camera path"):
        render_video(500_007, 2, 24, 32, path="orbit")


# --------------------------------------------------------------------------------------------------- folder

def test_video_folder_round_trip_with_intrinsics_and_poses(clip, tmp_path):
    write_sequence(tmp_path / "walk", clip.rgb[:6], clip.depth[:6], clip.valid[:6], clip.intrinsics,
                   clip.poses[:6], depth_format="npy")
    write_sequence(tmp_path / "mm", clip.rgb[:4], clip.depth[:4], clip.valid[:4])
    ds = VideoFolderDataset(tmp_path)
    assert len(ds) == 2 and [ds.name(i) for i in range(2)] == ["mm", "walk"]
    assert ds.num_frames(0) == 4 and ds.num_frames(1) == 6 and ds.native_size == (24, 32)
    f = ds.frame(1, 3)
    np.testing.assert_array_equal(f.depth, np.where(clip.valid[3], clip.depth[3], 0))
    assert np.abs(f.rgb - clip.rgb[3]).max() <= 0.5 / 255 + 1e-6
    mm = ds.frame(0, 2)
    np.testing.assert_allclose(mm.depth[mm.valid], clip.depth[2][mm.valid], atol=5e-4)  # 16-bit millimetres
    assert ds.intrinsics(0) is None and ds.poses(0) is None
    np.testing.assert_allclose(ds.intrinsics(1), clip.intrinsics)
    np.testing.assert_allclose(ds.poses(1), clip.poses[:6])
    one = VideoFolderDataset(tmp_path / "walk")  # a sequence folder itself
    assert len(one) == 1 and one.num_frames(0) == 6
    with pytest.raises(FileNotFoundError, match="no sequences"):
        VideoFolderDataset(tmp_path / "walk" / "depth")


# --------------------------------------------------------------------------------------------------- TartanAir


def _to_tartanair_line(pose: np.ndarray) -> str:
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(pose[:3, :3] @ NED_FROM_CAM.T).as_quat()  # (x, y, z, w)
    return " ".join(f"{x:.10f}" for x in [*pose[:3, 3], *q])


def test_tartanair_layout_and_ned_poses(clip, tmp_path):
    traj = tmp_path / "abandonedfactory" / "Easy" / "P001"
    (traj / "image_left").mkdir(parents=True)
    (traj / "depth_left").mkdir(parents=True)
    for k in range(5):
        Image.fromarray((clip.rgb[k] * 255).astype(np.uint8)).save(traj / "image_left" / f"{k:06d}_left.png")
        np.save(traj / "depth_left" / f"{k:06d}_left_depth.npy", np.where(clip.valid[k], clip.depth[k], np.inf))
    (traj / "pose_left.txt").write_text("\n".join(_to_tartanair_line(p) for p in clip.poses[:5]) + "\n")
    ds = TartanAirDataset(tmp_path)
    assert len(ds) == 1 and ds.num_frames(0) == 5 and ds.name(0) == "abandonedfactory/Easy/P001"
    f = ds.frame(0, 2)
    assert not f.valid[~clip.valid[2]].any()  # TartanAir's huge/inf sky depth: invalid only if non-finite
    np.testing.assert_allclose(f.depth[f.valid], clip.depth[2][f.valid])
    np.testing.assert_allclose(ds.poses(0), clip.poses[:5], atol=1e-8)
    np.testing.assert_allclose(ds.intrinsics(0), [[16, 0, 16], [0, 16, 12], [0, 0, 1]])  # f = 320 px at 640 × 480
    # loaded back, the poses reproject the loaded depth exactly
    depth = np.stack([ds.frame(0, k).depth for k in range(5)])
    valid = np.stack([ds.frame(0, k).valid for k in range(5)])
    assert evaluate_video(depth, depth, valid, intrinsics=clip.intrinsics, poses=ds.poses(0))["temporal_error"] < 1e-12
    # TartanAir's body x is forward: moving 1 m along it moves our camera 1 m along its z
    p = tmp_path / "pose.txt"
    p.write_text("0 0 0 0 0 0 1\n1 0 0 0 0 0 1\n")
    a, b = tartanair_poses(p)
    np.testing.assert_allclose(np.linalg.inv(a) @ b[:, 3], [0, 0, 1, 1], atol=1e-12)


# --------------------------------------------------------------------------------------------------- paper sets


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rgb", "depth"])
        w.writerows(rows)


def _ramp(h=12, w=16, lo=1.0, hi=4.0):
    return np.repeat(np.linspace(lo, hi, h, dtype=np.float32)[:, None], w, 1)


def test_bonn_pointodyssey_dydtof_from_rollingdepth_csvs(tmp_path):
    d = _ramp()
    # Bonn RGB-D dynamic: TUM format, 16-bit PNG = metres × 5000
    seq = tmp_path / "bonn" / "rgbd_bonn_balloon2"
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    for t in ("1548266531.51903", "1548266531.55255"):
        Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(seq / "rgb" / f"{t}.png")
    write_png16(seq / "depth" / "1548266531.50882.png", np.round(d * 5000))
    write_png16(seq / "depth" / "1548266531.54220.png", np.zeros((12, 16)))
    _write_csv(tmp_path / "bonn" / "rgbd_bonn_balloon2.csv",
               [["rgb/1548266531.51903.png", "depth/1548266531.50882.png"],
                ["rgb/1548266531.55255.png", "depth/1548266531.54220.png"]])
    ds = CsvVideoSet("bonn", tmp_path / "bonn")
    assert len(ds) == 1 and ds.num_frames(0) == 2 and ds.name(0) == "rgbd_bonn_balloon2"
    np.testing.assert_allclose(ds.frame(0, 0).depth, d, rtol=1e-4)
    assert not ds.frame(0, 1).valid.any()
    # PointOdyssey: 16-bit PNG, metres = value / 65535 · 1000; "^" in the CSV name is a folder separator
    seq = tmp_path / "po" / "test" / "cab_e_3rd"
    (seq / "rgbs").mkdir(parents=True)
    (seq / "depths_masked").mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(seq / "rgbs" / "rgb_00240.jpg")
    write_png16(seq / "depths_masked" / "depth_00240.png", np.round(d / 1000 * 65535))
    splits = tmp_path / "splits"
    splits.mkdir()
    _write_csv(splits / "test^cab_e_3rd.csv", [["rgbs/rgb_00240.jpg", "depths_masked/depth_00240.png"]])
    ds = CsvVideoSet("pointodyssey", tmp_path / "po", split_dir=splits)
    np.testing.assert_allclose(ds.frame(0, 0).depth, d, atol=0.01)
    # DyDToF: float .npy depth
    seq = tmp_path / "dy" / "apartment_big" / "ba_shot1"
    (seq / "ColorImage").mkdir(parents=True)
    (seq / "DepthMap").mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(seq / "ColorImage" / "shot1.0050.jpeg", format="JPEG")
    np.save(seq / "DepthMap" / "shot1.0050.npy", d)
    _write_csv(tmp_path / "dy" / "apartment_big^ba_shot1.csv", [["ColorImage/shot1.0050.jpeg",
                                                                 "DepthMap/shot1.0050.npy"]])
    ds = CsvVideoSet("dydtof", tmp_path / "dy")
    np.testing.assert_array_equal(ds.frame(0, 0).depth, d)
    with pytest.raises(FileNotFoundError, match="split CSVs"):
        CsvVideoSet("bonn", tmp_path / "po")


def test_scannet_video_with_intrinsics_and_poses(tmp_path):
    seq = tmp_path / "scene0707_00"
    for sub in ("color", "depth", "pose", "intrinsic"):
        (seq / sub).mkdir(parents=True)
    rows = []
    for n in (0, 3):
        Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(seq / "color" / f"{n}.jpg")
        write_png16(seq / "depth" / f"{n}.png", np.round(_ramp(24, 32) * 1000))
        pose = np.eye(4)
        pose[2, 3] = 0.1 * n
        np.savetxt(seq / "pose" / f"{n}.txt", pose)
        rows.append([f"color/{n}.jpg", f"depth/{n}.png"])
    k4 = np.eye(4)
    k4[:3, :3] = [[30, 0, 16], [0, 30, 12], [0, 0, 1]]
    np.savetxt(seq / "intrinsic" / "intrinsic_depth.txt", k4)
    _write_csv(tmp_path / "scene0707_00.csv", rows)
    ds = CsvVideoSet("scannet-video", tmp_path)
    f = ds.frame(0, 1)
    assert f.rgb.shape == (24, 32, 3) and abs(f.rgb.mean() - 200 / 255) < 0.01  # colour resized to the depth
    np.testing.assert_allclose(f.depth, _ramp(24, 32), atol=5e-4)
    np.testing.assert_allclose(ds.intrinsics(0), k4[:3, :3])
    assert ds.poses(0).shape == (2, 4, 4) and ds.poses(0)[1, 2, 3] == pytest.approx(0.3)
    assert (ds.min_depth, ds.max_depth) == (1e-3, 10.0)


# --------------------------------------------------------------------------------------------------- snippets


def test_one_normalisation_per_snippet_in_inverse_depth(clip):
    frames = [SyntheticVideoDataset(1, 48, 24, 32).frame(0, k) for k in (0, 5, 10)]
    out = prepare_snippet(frames, size=(24, 32), flip=True)
    assert out["rgb"].shape == (3, 3, 24, 32) and out["target"].shape == (3, 3, 24, 32)
    assert out["valid"].shape == (3, 1, 24, 32) and out["valid"].dtype == torch.bool
    t = out["target"][:, 0].numpy()
    disp = np.zeros_like(t)
    v = out["valid"][:, 0].numpy()
    disp[v] = 1.0 / out["depth"][:, 0].numpy()[v]
    inner = v & (np.abs(t) < 0.999)  # not clipped
    # ONE affine map from inverse depth to the target across all three frames (near = high)
    a = np.stack([disp[inner], np.ones(inner.sum())], 1)
    (s, c), res, *_ = np.linalg.lstsq(a, t[inner], rcond=None)
    assert s > 0 and np.abs(a @ [s, c] - t[inner]).max() < 1e-4
    assert all(inner[i].any() for i in range(3))
    flipped = np.ascontiguousarray(frames[0].rgb[:, ::-1].transpose(2, 0, 1)) * 2 - 1  # the same flip for all
    np.testing.assert_allclose(out["rgb"][0].numpy(), flipped, atol=1e-6)
    # the depth space is the Marigold convention: near = low
    nd = normalize_snippet(out["depth"][:, 0].numpy(), v, "depth")
    assert np.corrcoef(nd[inner], t[inner])[0, 1] < -0.5


def test_unjoint_snippets_are_the_same_frames_each_normalised_alone():
    """``snippet.joint: false`` (the single-frame control of train.video_benchmark): the stream picks the very
    frames and flips a snippet model gets with the same seed, but every frame's target spans -1..1 on its own."""
    ds = SyntheticVideoDataset(3, 24, 24, 32, path="dolly")  # dolly: the depth range changes along the clip
    joint = SnippetStream([ds], [1.0], [(24, 32)], batch_size=2, seed=3, frames=3, max_dilation=10)
    alone = SnippetStream([ds], [1.0], [(24, 32)], batch_size=2, seed=3, frames=3, max_dilation=10, joint=False)
    for k in range(4):
        assert joint.choose(k) == alone.choose(k)
        a, b = joint[k], alone[k]
        torch.testing.assert_close(a["rgb"], b["rgb"], rtol=0, atol=0)
        torch.testing.assert_close(a["depth"], b["depth"], rtol=0, atol=0)
        assert not torch.allclose(a["target"], b["target"], atol=1e-3)
        for i in range(3):
            v = b["valid"][i, 0]
            t = b["target"][i, 0][v].numpy()
            assert t.min() == -1.0 and t.max() == 1.0  # each frame spans -1..1 on its own
            # ... by its own 2 % / 98 % quantiles of inverse depth
            disp = 1.0 / b["depth"][i, 0][v].numpy()
            lo, hi = np.quantile(disp, [0.02, 0.98])
            np.testing.assert_allclose(t, np.clip((disp - lo) / (hi - lo) * 2 - 1, -1, 1), atol=1e-5)
    s = make_snippet_stream(["synthetic-video"], 32, 2, 0, 0.5, frames=3, joint=False)
    assert s.joint is False and s[0]["target"].shape == (3, 3, 24, 32)


def test_snippet_stream_is_deterministic_and_dilated():
    ds = SyntheticVideoDataset(4, 20, 16, 16)
    st = SnippetStream([ds], [1.0], [(16, 16)], batch_size=2, seed=5, frames=3, max_dilation=6)
    picks = [st.choose(k) for k in range(60)]
    assert picks == [st.choose(k) for k in range(60)]
    gaps = {idx[1] - idx[0] for _, _, idx, _ in picks}
    assert len(gaps) > 2 and max(gaps) <= 6 and min(gaps) >= 1
    assert all(idx[2] - idx[1] == idx[1] - idx[0] and idx[2] < 20 for _, _, idx, _ in picks)
    s = make_snippet_stream(["synthetic-video"], 32, 2, 0, 0.5, frames=2)
    assert s[0]["rgb"].shape == (2, 3, 24, 32)
    with pytest.raises(ValueError, match="use --mode snippet"):
        parse_spec("synthetic-video")
    with pytest.raises(ValueError, match="snippet mode trains on videos"):
        parse_spec("hypersim:/x", video=True)
