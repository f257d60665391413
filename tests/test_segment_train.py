"""Training text-grounded segmentation: the COCO 2017 panoptic loader on a fixture in the real layout, the
synthetic renderer's surface labels, the painted/binary targets, IoU scoring, and a short --task segmentation run
that exports a checkpoint the library segments with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train.data import make_stream
from train.data.coco import COCOGOLD_CLASSES, CocoPanoptic, panoptic_ids
from train.data.segmentation import SegmentationSample, SyntheticSegmentation, prepare_segmentation
from train.data.synthetic import SURFACE_LABELS, render
from train.segmentation_eval import SegItem, SegSet, evaluate_segmentation, iou

ROOT = Path(__file__).resolve().parents[1]


def _write_coco(root: Path) -> None:
    """Two val images in COCO 2017 panoptic's layout: a car (two segments) and a dog in one, a person in the other."""
    (root / "val2017").mkdir(parents=True)
    (root / "annotations" / "panoptic_val2017").mkdir(parents=True)
    cats = [{"id": 1, "name": "person", "isthing": 1}, {"id": 3, "name": "car", "isthing": 1},
            {"id": 18, "name": "dog", "isthing": 1}, {"id": 184, "name": "sky-other-merged", "isthing": 0}]
    cats += [{"id": 100 + k, "name": n, "isthing": 1} for k, n in enumerate(COCOGOLD_CLASSES)
             if n not in ("car", "dog")]
    images, anns = [], []
    for k, segs in enumerate([[(3, 1001, (slice(0, 10), slice(0, 10))), (3, 1002, (slice(20, 30), slice(30, 40))),
                                (18, 2001, (slice(5, 25), slice(12, 20)))],
                               [(1, 3001, (slice(0, 40), slice(0, 20)))]]):
        rgb = np.random.default_rng(k).integers(0, 255, (40, 60, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "val2017" / f"{k:012d}.jpg", quality=95)
        ids = np.full((40, 60), 7 + 256 * 3, dtype=np.int64)  # the background stuff segment
        info = [{"id": 7 + 256 * 3, "category_id": 184, "area": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0}]
        for cat, sid, where in segs:
            ids[where] = sid
            info.append({"id": sid, "category_id": cat, "area": int((ids == sid).sum()), "bbox": [0, 0, 1, 1],
                         "iscrowd": 0})
        png = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)  # R + 256·G + 256²·B
        Image.fromarray(png).save(root / "annotations" / "panoptic_val2017" / f"{k:012d}.png")
        images.append({"id": k, "file_name": f"{k:012d}.jpg", "height": 40, "width": 60})
        anns.append({"image_id": k, "file_name": f"{k:012d}.png", "segments_info": info})
    (root / "annotations" / "panoptic_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))


def test_coco_panoptic_gives_one_mask_per_class_present(tmp_path):
    _write_coco(tmp_path)
    ds = CocoPanoptic(tmp_path, "val", classes=None, crop="none")
    assert sorted(ds[i].prompt for i in range(len(ds))) == ["car", "dog", "person", "sky-other-merged",
                                                             "sky-other-merged"]  # stuff counts too
    car = next(ds[i] for i in range(len(ds)) if ds[i].prompt == "car")
    assert car.rgb.shape == (40, 60, 3) and car.mask.sum() == 200  # the union of its two segments
    assert car.mask[0, 0] and car.mask[25, 35] and not car.mask[15, 15]
    dog = next(ds[i] for i in range(len(ds)) if ds[i].prompt == "dog")
    assert dog.mask.sum() == 160
    # Cocogold's 14 classes: the person and the stuff class are left out; square crops are square
    cg = CocoPanoptic(tmp_path, "val", classes=COCOGOLD_CLASSES, crop="square", seed=3)
    assert {cg[i].prompt for i in range(len(cg))} == {"car", "dog"}
    assert all(cg[i].rgb.shape == (40, 40, 3) and cg[i].mask.shape == (40, 40) for i in range(len(cg)))
    assert panoptic_ids(np.array([[[1, 2, 3]]], np.uint8))[0, 0] == 1 + 512 + 3 * 65536
    with pytest.raises(ValueError, match="panoptic_train2017.json"):
        CocoPanoptic(tmp_path, "train")
    with pytest.raises(ValueError, match="unknown classes"):
        CocoPanoptic(tmp_path, "val", classes=["unicorn"])


def test_synthetic_scenes_label_their_surfaces():
    s = render(3, 48, 64, texture="flat")
    assert s.labels.shape == (48, 64) and s.labels.dtype == np.int8
    names = {SURFACE_LABELS[k] for k in np.unique(s.labels) if k >= 0}
    assert {"floor", "wall", "ball"} <= names
    # the labels follow the geometry: floor pixels share one normal, pointing up (the camera is pitched a little)
    floor = s.labels == SURFACE_LABELS.index("floor")
    n = s.normals[floor]  # [P,3]
    assert floor.any() and np.allclose(n, n[:1], atol=1e-4) and n[0, 1] > 0.95
    ds = SyntheticSegmentation(4, 48, 64, "train")
    a = ds[0]
    assert a.prompt in SURFACE_LABELS and a.mask.any() and a.mask.mean() >= 0.02


def test_painted_and_binary_targets():
    rgb = np.full((16, 16, 3), 0.25, np.float32)
    mask = np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    s = SegmentationSample(rgb, mask, "box")
    p = prepare_segmentation(s, target="painted")
    assert p["prompt"] == "box" and p["rgb"].shape == p["target"].shape == (3, 16, 16)
    assert torch.allclose(p["target"][:, 4:8, 4:8], torch.ones(3, 4, 4))  # the object white
    assert torch.allclose(p["target"][:, 0, 0], torch.full((3,), -0.5))  # the rest the image (-1..1)
    b = prepare_segmentation(s, size=(8, 8), flip=True, target="binary")
    assert b["target"].shape == (3, 8, 8) and set(b["target"].unique().tolist()) == {-1.0, 1.0}
    assert b["mask"][0, 2:4, 4:6].all()  # flipped
    stream = make_stream(["synthetic:flat"], 64, 2, 0, "segmentation", 0.5)
    batch = torch.utils.data.default_collate([stream[0], stream[1]])
    assert isinstance(batch["prompt"], list) and batch["target"].shape == (2, 3, 48, 64)


def test_iou_scores_and_baselines():
    g = np.zeros((4, 4), bool)
    g[:2] = True
    assert iou(g, g)[0] == 1.0 and iou(~g, g)[0] == 0.0 and iou(np.ones_like(g), g)[0] == 0.5
    assert iou(np.zeros_like(g), np.zeros_like(g))[0] == 1.0


def test_a_short_segmentation_run_exports_a_model_that_segments(tiny_sd2, tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "MARIGOLD_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "train.finetune", "--config", "train/configs/cpu_tiny_segmentation.yaml",
                        "--base", str(tiny_sd2), "--output", str(out), "--max-steps", "3", "--num-workers", "0",
                        "--set", "checkpoint_every=0", "--set", "validation.every=3",
                        "--set", "validation.num_images=1"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "step 3: miou" in r.stdout  # the validation line: IoU on held-out synthetic scenes
    import marigold

    model = marigold.load(out / "final", device="cpu", dtype="fp32", cache_dir=tmp_path / "cache")
    assert model.task == "segmentation" and model.takes_prompt
    res = evaluate_segmentation(model, SegSet("one", [SegItem(np.full((48, 64, 3), 0.5, np.float32), "floor",
                                                               np.ones((48, 64), bool), "s0"),
                                                       SegItem(np.full((48, 64, 3), 0.5, np.float32), "wall",
                                                               np.zeros((48, 64), bool), "s0")]), steps=1)
    m = res["metrics"]
    assert res["n"] == 2 and 0.0 <= m["miou"] <= 1.0 and m["constant_miou"] == 0.5
    assert {"iou/floor", "iou/wall", "wrong_prompt_miou", "cross_prompt_overlap", "ciou"} <= set(m)
    # train.evaluate asks the entry how to score it (train.segmentation_eval.EVALUATION): IoU, not depth metrics
    from train.evaluate import main as evaluate_main

    assert evaluate_main(["--checkpoint", str(out / "final"), "--dataset", "synthetic:1", "--steps", "1",
                          "--json", str(tmp_path / "eval.json")]) == 0
    assert "synthetic-heldout" in capsys.readouterr().out
    got = json.loads((tmp_path / "eval.json").read_text())[0]
    assert got["n"] >= 2 and {"miou", "ciou", "wrong_prompt_miou"} <= set(got["metrics"])


def test_segmentation_check_takes_another_recipe(tiny_sd2, tmp_path):
    """train.segmentation_tiny --config: the small recipe (cpu_small_segmentation.yaml, 128 px) trains and is scored
    on scenes at its own 96×128 (a 2-step run on the tiny stand-in: the plumbing, not the numbers)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "MARIGOLD_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "res.json"
    r = subprocess.run([sys.executable, "-m", "train.segmentation_tiny", "--config",
                        "train/configs/cpu_small_segmentation.yaml", "--base", str(tiny_sd2), "--runs",
                        str(tmp_path / "runs"), "--seeds", "0", "--train", "--steps", "2", "--val-scenes", "1",
                        "--heldout-scenes", "2", "--json", str(out)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    import marigold

    model = marigold.load(tmp_path / "runs" / "seed0" / "final", device="cpu", dtype="fp32",
                          cache_dir=tmp_path / "cache")
    assert model.default_processing_resolution == 128
    row = json.loads(out.read_text())["0"]
    assert 0.0 <= row["miou"] <= 1.0 and row["n"] >= 2 and "margin over the best prompt-blind answer" in r.stdout
