"""bench/snippet_study.py's scoring and its Marigold view of a RollingDepth-layout checkpoint (no model runs)."""

import json

import numpy as np

from bench.snippet_study import marigold_view, score_ways
from train.snippet_infer import snippet_clips
from train.video_eval import synthetic_videos


def test_exact_disparity_scores_zero_every_way_and_a_warped_one_does_not():
    clips = synthetic_videos(1, 12, 48, 64, split="heldout", texture="flat")
    c = clips[0]
    rows, warped = [], []
    ok = c.valid & (c.depth > 1e-3)
    lo, hi = (1.0 / c.depth[ok]).min(), (1.0 / c.depth[ok]).max()  # one affine map for the clip: every way exact
    for idx in snippet_clips(12, 3, 2, 2):
        disp = np.where(ok[idx], 1.0 / np.maximum(c.depth[idx], 1e-3), 0.0)
        x = (disp - lo) / (hi - lo)  # [3,H,W] normalised inverse depth
        rows.append((0, idx, x.astype(np.float32)))
        warped.append((0, idx, (x ** 3).astype(np.float32)))  # not affine in disparity
    res = score_ways({2: rows}, clips)["dilation 2"]
    for way in ("snippet, disparity", "snippet, disparity, capped", "clip, disparity"):
        assert res[way]["abs_rel"] < 1e-5, (way, res[way])
    assert res["snippet, depth"]["abs_rel"] > 1e-3  # a disparity map is not affine in depth
    assert res["blown_pixels"] == 0.0
    bad = score_ways({2: warped}, clips)["dilation 2"]
    assert bad["snippet, disparity"]["abs_rel"] > 0.01 and bad["clip, disparity"]["abs_rel"] > 0.01


def test_marigold_view_reads_the_weights_as_a_disparity_model(tmp_path):
    src = tmp_path / "rd"
    for part in ("unet", "vae", "scheduler", "text_encoder", "tokenizer"):
        (src / part).mkdir(parents=True)
    (src / "model_index.json").write_text(json.dumps({"_class_name": "RollingDepthPipeline"}))
    view = marigold_view(src, tmp_path / "view")
    index = json.loads((view / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldDepthPipeline" and index["prediction_type"] == "disparity"
    assert (view / "unet").resolve() == (src / "unet").resolve()
