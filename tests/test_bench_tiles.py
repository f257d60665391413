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


def test_oracle_row_detail_merge_keeps_edges_and_drops_drift():
    """The row with oracle tiles (true detail, drifting shape) on the bench's own scenes, at 2× (small, fast)."""
    exact = QT.oracle_row(n=1, scales=(2,), drift=0.0)
    bent = QT.oracle_row(n=1, scales=(2,), drift=0.2)
    for kind in QT.SCENE_KINDS:
        g = f"{kind} 2×{QT.SEP}"
        one = exact[g + "one pass"]
        for merge in ("coalign", "detail"):  # exact tiles: both merges restore the edges one pass blurs
            assert exact[g + f"tiled 2×, {merge}"]["edge_abs_rel"] < 0.5 * one["edge_abs_rel"]
            assert exact[g + f"tiled 2×, {merge}"]["edge_sharpness"] > 0.9 > one["edge_sharpness"]
        # drifting tiles: kept whole they bend the scene; their detail alone does not
        assert bent[g + "tiled 2×, detail"]["abs_rel"] < bent[g + "tiled 2×, coalign"]["abs_rel"]
        assert bent[g + "tiled 2×, detail"]["edge_abs_rel"] < one["edge_abs_rel"]


def test_oracle_row_through_a_vae_is_the_ceiling_of_a_perfect_unet(depth_checkpoint):
    """``--vae``: every pass through the checkpoint's VAE round trip; the tiny random VAE blurs and bends, so the
    oracle through it scores worse than the exact one, on the same scenes and keys."""
    rt = QT.vae_round_trip(str(depth_checkpoint / "vae"))
    d = torch.linspace(2.0, 5.0, 64 * 64).reshape(1, 1, 64, 64)
    out = rt(d)
    assert out.shape == d.shape and torch.isfinite(out).all() and not torch.allclose(out, d)
    exact = QT.oracle_row(n=1, scales=(2,), drift=0.0)
    through = QT.oracle_row(n=1, scales=(2,), drift=0.0, vae=str(depth_checkpoint / "vae"))
    assert [k for k in through if not k.startswith("_")] == [k for k in exact if not k.startswith("_")]
    assert through["_setup"]["vae"] == str(depth_checkpoint / "vae")
    key = f"rooms 2×{QT.SEP}tiled 2×, detail"
    assert through[key]["edge_abs_rel"] > exact[key]["edge_abs_rel"]


def test_sharpness_row_scores_the_model_and_its_vae_ceiling(depth_checkpoint):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    row = QT.sharpness_row(model, n=2)
    assert set(row) == {"model", "VAE round trip"}
    for v in row.values():
        assert v["edge_abs_rel"] > 0 and 0 <= v["edge_sharpness"] < 5
