"""Evaluation: the metric code, each benchmark loader on files fabricated in its published format, the
Middlebury real-data reference numbers, and ``python -m train.evaluate`` end to end on a tiny checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from train import metrics as M
from train.data.formats import write_png16
from train.evaluate import (diode_items, eth3d_items, kitti_items, main, make_eval_set,
                            middlebury_motorcycle, nyu_items, scannet_items, score)


def _ramp(h, w, lo=1.0, hi=5.0):
    return np.repeat(np.linspace(lo, hi, h, dtype=np.float32)[:, None], w, 1)


# --------------------------------------------------------------------------------------------------- metrics


def test_least_squares_alignment_recovers_an_affine_prediction():
    gt = _ramp(20, 30) + np.random.default_rng(0).random((20, 30)).astype(np.float32)
    mask = np.ones_like(gt, bool)
    pred = (gt - 1.0) / 3.0
    np.testing.assert_allclose(M.align(pred, gt, mask), gt, rtol=1e-6)
    m = M.evaluate_prediction(pred, gt, mask)
    assert m["abs_rel"] < 1e-6 and m["delta1"] == 1.0
    # in disparity: an affine function of 1/depth is recovered exactly there, not in depth
    disp_pred = 2.0 / gt + 0.5
    assert M.evaluate_prediction(disp_pred, gt, mask, space="disparity")["abs_rel"] < 1e-6
    assert M.evaluate_prediction(disp_pred, gt, mask, space="depth")["abs_rel"] > 1e-3


def test_metric_values_by_hand():
    gt = np.array([[1.0, 2.0, 4.0, 8.0]])
    mask = np.ones_like(gt, bool)
    m = M.depth_metrics(gt * 1.1, gt, mask)
    assert m["abs_rel"] == pytest.approx(0.1) and m["delta1"] == 1.0
    m = M.depth_metrics(np.array([[1.0, 2.0, 4.0, 16.0]]), gt, mask)
    assert m["abs_rel"] == pytest.approx(0.25) and m["delta1"] == 0.75 and m["delta3"] == 0.75
    assert m["rmse"] == pytest.approx(np.sqrt(64 / 4))
    # invalid pixels and the depth range are excluded before the alignment
    gt2 = np.array([[1.0, 2.0, 0.0, 100.0]])
    m = M.evaluate_prediction(np.array([[1.0, 2.0, 50.0, 50.0]]), gt2, gt2 > 0, max_depth=10.0)
    assert m["abs_rel"] < 1e-9


def test_image_metrics_psnr_and_ssim_by_hand():
    """The IID scores (prs-eth's evaluation reports PSNR and SSIM): identical maps give SSIM 1 and the PSNR cap,
    a constant 0.1 offset gives MSE 0.01 → PSNR 20 dB, and structure lost (a flat map) drops SSIM far below 1."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.2, 0.8, (24, 32, 3))
    mask = np.ones((24, 32), bool)
    same = M.image_metrics(gt, gt, mask)
    assert same["mse"] == 0 and same["ssim"] == pytest.approx(1.0)
    off = M.image_metrics(gt + 0.1, gt, mask)
    assert off["mse"] == pytest.approx(0.01) and off["psnr"] == pytest.approx(20.0)
    flat = M.image_metrics(np.full_like(gt, gt.mean()), gt, mask)
    assert flat["ssim"] < 0.1 < off["ssim"]
    assert np.isnan(M.image_metrics(gt[:5, :5], gt[:5, :5], mask[:5, :5])["ssim"])  # smaller than one window


def test_eval_crops():
    assert M.nyu_eigen_crop().sum() == (471 - 45) * (601 - 41)
    eig, garg = M.kitti_crop((352, 1216), "eigen"), M.kitti_crop((352, 1216), "garg")
    assert not eig[:117].any() and eig[117, 44:1172].all() and not eig[:, :43].any() and not eig[322:].any()
    assert not garg[:143].any() and garg[143, 44:1172].all() and garg[348].any()


# --------------------------------------------------------------------------------------------------- Middlebury


def test_middlebury_motorcycle_reference_numbers():
    """Real data that ships with scikit-image: depth = f·B / (d + doffs). The ground truth scores AbsRel 0;
    a vertical ramp (far at the top, near at the bottom) scores fixed reference numbers."""
    item = middlebury_motorcycle()
    es = make_eval_set("middlebury")
    assert item.depth.shape == (500, 741) and 0.92 < item.valid.mean() < 0.93
    assert item.depth[item.valid].min() == pytest.approx(2.1104, abs=1e-3)
    assert item.depth[item.valid].max() == pytest.approx(5.0169, abs=1e-3)
    gt = score(es, item.depth, item)
    assert gt["abs_rel"] < 1e-9 and gt["delta1"] == 1.0
    h, w = item.depth.shape
    ramp = np.repeat(np.linspace(1.0, 0.0, h)[:, None], w, 1)
    r = score(es, ramp, item)
    assert r["abs_rel"] == pytest.approx(0.14781, abs=1e-4)
    assert r["delta1"] == pytest.approx(0.78912, abs=1e-4)
    assert r["rmse"] == pytest.approx(0.56791, abs=1e-4)
    assert score(es, ramp, item, space="disparity")["abs_rel"] == pytest.approx(0.14088, abs=1e-4)


# --------------------------------------------------------------------------------------------------- loaders


def test_nyu_labeled_mat_with_test_split(tmp_path):
    import h5py
    from scipy.io import savemat

    n, h, w = 3, 480, 640
    depth = np.stack([_ramp(h, w, 1.0 + i, 4.0 + i) for i in range(n)])  # [N,H,W]
    rgb = np.zeros((n, h, w, 3), np.uint8)
    rgb[:, :240, :, 0] = 255  # top half red
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:  # MATLAB v7.3 stores column-major
        f["images"] = rgb.transpose(0, 3, 2, 1)  # [N,3,W,H]
        f["depths"] = depth.transpose(0, 2, 1)  # [N,W,H]
    savemat(tmp_path / "splits.mat", {"testNdxs": np.array([[1], [3]]), "trainNdxs": np.array([[2]])})
    items = list(nyu_items(tmp_path / "nyu_depth_v2_labeled.mat"))
    assert [it.name for it in items] == ["nyu_0001", "nyu_0003"]
    assert items[1].rgb.shape == (480, 640, 3) and items[1].rgb[0, 0, 0] == 1.0 and items[1].rgb[-1, 0, 0] == 0
    np.testing.assert_allclose(items[1].depth, depth[2])
    es = make_eval_set(f"nyu:{tmp_path / 'nyu_depth_v2_labeled.mat'}")
    assert es.crop == "nyu" and es.max_depth == 10.0
    assert score(es, items[0].depth, items[0])["abs_rel"] < 1e-9


def test_kitti_eigen_split_png16(tmp_path):
    rgb_rel = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    dep_rel = "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    (tmp_path / rgb_rel).parent.mkdir(parents=True)
    (tmp_path / dep_rel).parent.mkdir(parents=True)
    Image.fromarray(np.zeros((375, 1242, 3), np.uint8)).save(tmp_path / rgb_rel)
    depth = _ramp(375, 1242, 5.0, 60.0)
    raw = np.round(depth * 256).astype(np.uint16)
    raw[::2] = 0  # sparse LiDAR: no return
    write_png16(tmp_path / dep_rel, raw)
    (tmp_path / "eigen_test_files_with_gt.txt").write_text(
        f"{rgb_rel} {dep_rel} 721.5377\n2011_09_26/x.png None 721.5377\n")
    items = list(kitti_items(tmp_path))
    assert len(items) == 1
    it = items[0]
    assert it.rgb.shape == (352, 1216, 3) and it.depth.shape == (352, 1216)  # KITTI benchmark crop
    np.testing.assert_allclose(it.depth[it.valid], (raw[23:, 13:1229] / 256.0)[it.valid], rtol=1e-6)
    assert 0.4 < it.valid.mean() < 0.6
    es = make_eval_set(f"kitti:{tmp_path}")
    assert es.crop == "kitti-eigen" and score(es, it.depth, it)["abs_rel"] < 1e-9


def test_eth3d_raw_float32_depth(tmp_path):
    scene = tmp_path / "courtyard"
    (scene / "images" / "dslr_images").mkdir(parents=True)
    (scene / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(scene / "images" / "dslr_images" / "DSC_0286.JPG",
                                                          format="JPEG")
    depth = _ramp(40, 60, 2.0, 9.0)
    depth[0] = np.inf  # no ground truth
    depth.astype("<f4").tofile(scene / "ground_truth_depth" / "dslr_images" / "DSC_0286.JPG")
    it = next(eth3d_items(tmp_path))
    assert it.depth.shape == (40, 60) and not it.valid[0].any() and it.valid[1:].all()
    np.testing.assert_allclose(it.depth[1:], depth[1:])


def test_scannet_jpg_and_png16_millimetres(tmp_path):
    (tmp_path / "scene0707_00" / "color").mkdir(parents=True)
    (tmp_path / "scene0707_00" / "depth").mkdir(parents=True)
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(tmp_path / "scene0707_00" / "color" / "000100.jpg")
    mm = np.round(_ramp(24, 32, 0.5, 3.0) * 1000).astype(np.uint16)
    mm[0, 0] = 0
    write_png16(tmp_path / "scene0707_00" / "depth" / "000100.png", mm)
    it = next(scannet_items(tmp_path))
    assert it.rgb.shape == (24, 32, 3)  # colour resized to the depth frame
    assert not it.valid[0, 0] and it.valid.sum() == 24 * 32 - 1
    np.testing.assert_allclose(it.depth[it.valid], mm[it.valid] / 1000.0, rtol=1e-6)


def test_diode_npy_depth_and_mask(tmp_path):
    d = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00183"
    d.mkdir(parents=True)
    stem = "00019_00183_indoors_000_010"
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(d / f"{stem}.png")
    depth = _ramp(24, 32, 1.0, 6.0)[..., None]
    mask = np.ones((24, 32), np.float32)
    mask[:, 0] = 0
    np.save(d / f"{stem}_depth.npy", depth)
    np.save(d / f"{stem}_depth_mask.npy", mask)
    it = next(diode_items(tmp_path))
    assert it.depth.shape == (24, 32) and not it.valid[:, 0].any() and it.valid[:, 1:].all()
    es = make_eval_set(f"diode:{tmp_path}")
    assert es.min_depth == 0.6 and score(es, it.depth, it)["abs_rel"] < 1e-9


# --------------------------------------------------------------------------------------------------- CLI


def test_evaluate_cli_on_a_tiny_checkpoint(depth_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["--checkpoint", str(depth_checkpoint), "--dataset", "synthetic:2", "--dataset", "middlebury",
                 "--processing-resolution", "32", "--steps", "1", "--device", "cpu", "--dtype", "fp32",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["dataset"] for r in res] == ["synthetic-heldout", "middlebury"] and res[0]["n"] == 2
    for r in res:
        assert set(M.METRICS) <= set(r["metrics"]) and all(np.isfinite(v) for v in r["metrics"].values())
        assert 0 < r["metrics"]["abs_rel"] < 2
    assert "abs_rel" in capsys.readouterr().out


def test_each_modality_entry_picks_how_it_is_scored(depth_checkpoint, make_checkpoint):
    """train.evaluate and the trainer's validation ask the entry (Modality.evaluation): depth-like entries get the
    depth protocol, other maps the per-target scores, segmentation its IoU module; a broken hook is one line."""
    import marigold
    from marigold.core import modality as mod
    from marigold.errors import InputError
    from train import segmentation_eval
    from train.evaluate import DEPTH_EVALUATION, TARGETS_EVALUATION, evaluation_for

    assert evaluation_for(mod.get("depth")) is DEPTH_EVALUATION is evaluation_for(mod.get("disparity"))
    assert evaluation_for(mod.get("normals")) is TARGETS_EVALUATION is evaluation_for(mod.get("iid-lighting"))
    assert evaluation_for(mod.get("segmentation")) is segmentation_eval.EVALUATION
    bad = mod.Modality("x", "x", (mod.Target("x", 1),), "MarigoldDepthPipeline", "depth", evaluation="train.nope")
    with pytest.raises(InputError, match="names its evaluation 'train.nope', which cannot be imported"):
        evaluation_for(bad)
    # the trainer's validation through the hooks, at the training size: depth with pictures, normals per target
    vcfg = {"num_images": 1, "split": "val", "texture": "flat", "steps": 1, "ensemble_size": 1,
            "processing_resolution": 32}
    depth = DEPTH_EVALUATION.validate(marigold.load(depth_checkpoint, device="cpu", dtype="fp32"), vcfg, (24, 32))
    assert depth["n"] == 1 and 0 < depth["metrics"]["abs_rel"] < 2 and depth["images"][0].shape[-1] == 3
    normals = marigold.load(make_checkpoint("normals"), device="cpu", dtype="fp32")
    res = evaluation_for(normals.modality).validate(normals, vcfg, (24, 32))
    assert res["n"] == 1 and np.isfinite(res["metrics"]["normals_mean_angle"])
