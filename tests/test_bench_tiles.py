"""bench/quality_tiles.py: the tiles row's plumbing on a tiny random checkpoint, its edge-sharpness measure, and the
fine-structure scenes it renders (train.data.synthetic.render(fine=True))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import marigold
from bench import quality_tiles as QT
from train.data.synthetic import SPLIT_SEEDS, render


def test_fine_scenes_add_thin_things_to_the_same_room():
    seed = SPLIT_SEEDS["heldout"]
    plain, fine = render(seed, 96, 128, texture="flat"), render(seed, 96, 128, texture="flat", fine=True)
    same = np.isclose(plain.depth, fine.depth)
    assert 0.5 < same.mean() < 0.99  # the same room and camera, with things in front of it
    assert (fine.depth[~same] < plain.depth[~same] + 1e-6).all()  # added objects only ever occlude
    assert np.array_equal(render(seed, 96, 128, texture="flat").rgb, plain.rgb)  # a plain scene is unchanged
    assert set(np.unique(fine.labels)) <= set(range(-1, 5))


def test_edge_sharpness_is_one_for_the_truth_and_falls_with_blur():
    s = render(SPLIT_SEEDS["heldout"] + 1, 96, 128, texture="flat", fine=True)
    mask = s.valid & (s.depth > 1e-3)
    d = np.where(mask, s.depth, 0).astype(np.float64)
    assert QT.edge_sharpness(d, d, mask) == pytest.approx(1.0)
    x = torch.from_numpy(d)[None, None].float()
    blurred = F.interpolate(F.interpolate(x, scale_factor=0.25, mode="area"), size=d.shape, mode="bilinear")
    assert QT.edge_sharpness(blurred[0, 0].double().numpy(), d, mask) < 0.6


def test_tiles_row_scores_both_merges_on_a_tiny_checkpoint(depth_checkpoint):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    model.default_processing_resolution = 64  # scenes at 2× the 96×128 size: 192×256, tiles of 64 px
    row = QT.tiles_row(model, n=1, scales=(2,), variants=True)
    runs = ["one pass", "tiled 2×, coalign", "tiled 2×, detail", *(f"tiled 2×, {v}" for v in QT.VARIANTS)]
    assert [k for k in row if not k.startswith("_")] == [f"{kind} 2×{QT.SEP}{r}" for kind in QT.SCENE_KINDS
                                                         for r in runs]
    for key, v in row.items():
        if key.startswith("_"):
            continue
        assert all(math.isfinite(x) for x in v.values()), key
        assert ("seam_ratio" in v) == ("tiled" in key) and v["edge_abs_rel"] > 0
    table = "\n".join(QT.markdown([row, row]))
    assert "| fine structure 2× | tiled 2×, detail |" in table and "| rooms 2× | one pass |" in table
    assert "1.00 | 1.00 |" in table  # one pass over itself
