"""In-process node tests with the real ``comfy`` modules; run by test_nodes_inprocess.py in ComfyUI's own venv.

Arguments come by environment: COMFYUI_DIR (the ComfyUI tree), MARIGOLD_TINY_DEPTH (a tiny depth checkpoint).
The pack is imported the way ComfyUI imports it: as a package from the repository root.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ["COMFYUI_DIR"])

import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True  # as `main.py --cpu`: these machines have no GPU (torch is a CUDA build)
import comfy.model_management as mm  # noqa: E402
import comfy.utils  # noqa: E402


def _load_pack():
    spec = importlib.util.spec_from_file_location("marigold_pack", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["marigold_pack"] = pack
    spec.loader.exec_module(pack)
    import marigold_pack.nodes  # noqa: F401

    return sys.modules["marigold_pack.nodes"]


N = _load_pack()
IMAGE = torch.rand(2, 40, 56, 3)  # two frames, IMAGE [B,H,W,C]
SAMPLING = dict(denoising_steps=3, ensemble_size=2, processing_resolution=32, match_input_resolution=True,
                resample_method="bilinear", seed=0, batch_size=1)


@pytest.fixture(scope="module")
def model():
    return N.comfy_glue.load(os.environ["MARIGOLD_TINY_DEPTH"], "tiny-depth", "fp32")


@pytest.fixture
def progress_events(monkeypatch):
    events = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None:
                        events.append((value, total)))
    return events


def test_progress_bar_advances_per_denoising_step(model, progress_events):
    out = N.predict.MarigoldDepth.execute(model=model, image=IMAGE, **SAMPLING)
    members, preview = out.args
    assert preview.shape == (2, 40, 56, 3)
    assert len(members.frames) == 2 and members.frames[0].values.shape[0] == 2
    total = 2 * 2 * 3  # frames × members × steps
    assert progress_events[-1] == (total, total)
    values = [v for v, _ in progress_events]
    assert values == sorted(values) and len(values) >= 2


def test_cancel_is_honoured_between_steps(model, monkeypatch):
    seen = []
    original = N.comfy_glue.Progress.__call__

    def progress(self, done, total):  # ComfyUI throttles its hook; watch the core's callback instead
        original(self, done, total)
        seen.append(done)
        if done == 2:
            mm.interrupt_current_processing(True)  # what the Cancel button does

    monkeypatch.setattr(N.comfy_glue.Progress, "__call__", progress)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            N.predict.MarigoldDepth.execute(model=model, image=IMAGE, **SAMPLING)
    finally:
        mm.interrupt_current_processing(False)
    assert max(seen) == 2  # no step ran after the cancel


def test_tiled_depth_node_progress_and_cancel_between_tiles(model, monkeypatch, progress_events):
    tiled = dict(SAMPLING, tile_factor=2.0, tile_overlap=8)  # 56×40 in 32-px tiles: 2 × 2 tiles per frame
    depth, unc = N.predict.MarigoldTiledDepth.execute(model=model, image=IMAGE, **tiled).args
    assert depth.shape == (2, 40, 56, 3) and unc.shape == (2, 40, 56)
    assert float(depth.min()) >= 0.0 and float(depth.max()) <= 1.0 and float(depth.std()) > 0.01
    total = 2 * (1 + 4) * 2 * 3  # frames × (global pass + tiles) × members × steps
    assert progress_events[-1] == (total, total)
    seen = []
    original = N.comfy_glue.Progress.__call__

    def progress(self, done, total):
        original(self, done, total)
        seen.append(done)
        if done == 2 * 3 + 1:  # the first step of the first tile
            mm.interrupt_current_processing(True)

    monkeypatch.setattr(N.comfy_glue.Progress, "__call__", progress)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            N.predict.MarigoldTiledDepth.execute(model=model, image=IMAGE, **tiled)
    finally:
        mm.interrupt_current_processing(False)
    assert max(seen) == 2 * 3 + 1


def test_model_is_loaded_and_offloaded_through_model_management(model, monkeypatch):
    asked = []
    real = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, memory_required=0, **kw: (
        asked.append((models, memory_required)), real(models, memory_required=memory_required, **kw))[1])
    N.predict.MarigoldDepth.execute(model=model, image=IMAGE[:1], **SAMPLING)
    (models, need), = asked
    assert models == [model.patcher]
    assert need == N.comfy_glue.sampling_memory(model, 32 * 24, 1) > 0  # 56×40 at 32 → 32×22, padded 32×24
    loaded = [lm.model for lm in mm.current_loaded_models]
    assert model.patcher in loaded  # ComfyUI manages it like its own models
    assert model.model.device == mm.get_torch_device()
    mm.unload_all_models()
    assert model.patcher not in [lm.model for lm in mm.current_loaded_models]
    assert all(p.device == mm.unet_offload_device() for p in model.patcher.model.parameters())
    # and it comes back on the next run
    N.predict.MarigoldDepth.execute(model=model, image=IMAGE[:1], **SAMPLING)
    assert model.patcher in [lm.model for lm in mm.current_loaded_models]


def test_auto_dtype_never_picks_fp16_on_a_cpu():
    assert N.comfy_glue.marigold_dtype("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)


def test_checkpoint_listing_and_model_folder(tmp_path, monkeypatch):
    import folder_paths

    root = tmp_path / "marigold"
    (root / "mine").mkdir(parents=True)
    (root / "mine" / "model_index.json").write_text("{}")
    (root / "models--prs-eth--marigold-depth-v1-1").mkdir()  # the download cache is not a checkpoint
    (root / "notes").mkdir()
    N.comfy_glue.register_model_folder()
    folder_paths.add_model_folder_path("marigold", str(root), is_default=True)
    found = N.comfy_glue.local_checkpoints()
    assert found["marigold/mine"] == str(root / "mine")
    assert not any("models--" in k or k.endswith("/notes") for k in found)
    assert N.comfy_glue.download_dir() == str(root)
    options = N.loader.LoadMarigold.define_schema().inputs[0].options
    assert "marigold/mine" in options and "prs-eth/marigold-depth-v1-1" in options


def test_ensemble_align_and_colorize_and_normals(model):
    members, _ = N.predict.MarigoldDepth.execute(model=model, image=IMAGE, **SAMPLING).args
    depth, unc = N.predict.EnsembleAlign.execute(members=members, reduction="median", regularizer_strength=0.02,
                                                 max_iter=2, tol=1e-3, max_res=1024).args
    assert depth.shape == (2, 40, 56, 3) and unc.shape == (2, 40, 56)
    (rgb,) = N.visual.Colorize.execute(depth=depth, preset="controlnet (gray, near = white)", colormap="Spectral",
                                       invert=False, percentile_low=0.0, percentile_high=100.0).args
    assert torch.allclose(rgb[..., 0], rgb[..., 1])  # grey
    assert torch.allclose(rgb[..., 0], 1 - depth[..., 0], atol=1 / 255 + 1e-6)  # near = white
    (normals,) = N.visual.DepthToNormal.execute(depth=depth, fov_degrees=60.0, far_over_near=3.0).args
    assert normals.shape == (2, 40, 56, 3) and 0 <= normals.min() and normals.max() <= 1


def test_published_model_downloads_into_models_marigold_with_the_progress_bar(monkeypatch, progress_events):
    import huggingface_hub

    seen = {}

    def fake_snapshot_download(repo_id, cache_dir=None, tqdm_class=None, **kwargs):
        seen.update(repo_id=repo_id, cache_dir=cache_dir)
        bar = tqdm_class(total=3, desc="Fetching 3 files")
        for _ in range(3):
            bar.update(1)
        bar.close()
        return os.environ["MARIGOLD_TINY_DEPTH"]

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    loaded = N.loader.LoadMarigold.execute(checkpoint="prs-eth/marigold-depth-v1-1", dtype="fp32").args[0]
    assert loaded.task == "depth"
    assert seen["repo_id"] == "prs-eth/marigold-depth-v1-1" and seen["cache_dir"] == N.comfy_glue.download_dir()
    import folder_paths

    assert seen["cache_dir"] == folder_paths.get_folder_paths("marigold")[0]  # models/marigold/ (or its override)
    assert progress_events[-1] == (3, 3)


# --- MarigoldVideoDepth ------------------------------------------------------------------------------------------

CLIP = torch.rand(9, 40, 56, 3)  # nine frames, IMAGE [T,H,W,C]: enough for dilation 2 (capped below 3·(2+1))
VIDEO = dict(preset="fast", dilations="1,2", snippet_length=-1, refine_steps=-1, processing_resolution=32, seed=0,
             batch_size=1)


@pytest.fixture(scope="module")
def rolling():
    return N.comfy_glue.load(os.environ["MARIGOLD_TINY_ROLLINGDEPTH"], "tiny-rollingdepth", "fp32")


def test_video_node_gives_one_normalisation_for_the_clip_with_progress(rolling, progress_events):
    depth, lo, hi = N.video.MarigoldVideoDepth.execute(model=rolling, frames=CLIP, **VIDEO).args
    assert depth.shape == (9, 40, 56, 3) and lo < hi
    assert depth.min() == 0.0 and depth.max() == 1.0  # the clip spans 0..1 ...
    per_frame = [(d.min().item(), d.max().item()) for d in depth]
    assert not all(f == (0.0, 1.0) for f in per_frame)  # ... no frame is stretched on its own
    total = (9 - 2) + (9 - 4)  # snippets of 3 at dilations 1 and 2, stride 1
    assert progress_events[-1] == (total, total)
    # RollingDepth gives disparity; the node flips it after the one normalisation, so near = 0 as in MarigoldDepth
    (rgb,) = N.visual.Colorize.execute(depth=depth, preset="custom", colormap="gray", invert=False,
                                       percentile_low=2.0, percentile_high=98.0, range="whole batch").args
    assert rgb.shape == depth.shape


def test_video_node_cancel_stops_within_one_snippet(rolling, monkeypatch):
    seen = []
    original = N.comfy_glue.Progress.__call__

    def progress(self, done, total):
        original(self, done, total)
        seen.append(done)
        if done == 1:
            mm.interrupt_current_processing(True)  # Cancel pressed while the first snippet finished

    monkeypatch.setattr(N.comfy_glue.Progress, "__call__", progress)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            N.video.MarigoldVideoDepth.execute(model=rolling, frames=CLIP, **VIDEO)
    finally:
        mm.interrupt_current_processing(False)
    assert seen == [1]  # no snippet ran after the cancel


def test_temporal_fusion_node_takes_any_depth_batch():
    depth = torch.rand(5, 40, 56, 1).expand(-1, -1, -1, 3)  # another model's depth IMAGE batch
    (same,) = N.video.MarigoldTemporalFusion.execute(frames=CLIP[:5], depth=depth, strength=0.0).args
    assert torch.equal(same, depth)  # strength 0: the input itself
    if importlib.util.find_spec("cv2") is None:  # the pack does not install OpenCV (it clashes with other packs'):
        with pytest.raises(Exception, match="opencv-python-headless"):  # the user is told what to install
            N.video.MarigoldTemporalFusion.execute(frames=CLIP[:5], depth=depth, strength=1.0)
        return
    (fused,) = N.video.MarigoldTemporalFusion.execute(frames=CLIP[:5], depth=depth, strength=1.0).args
    assert fused.shape == (5, 40, 56, 3) and 0.0 <= fused.min() and fused.max() <= 1.0
    assert not torch.equal(fused, depth)


def test_video_node_runs_a_marigold_depth_checkpoint(model):
    depth, lo, hi = N.video.MarigoldVideoDepth.execute(model=model, frames=CLIP[:3], **VIDEO).args
    assert depth.shape == (3, 40, 56, 3) and depth.min() == 0.0 and depth.max() == 1.0 and lo < hi


def test_video_node_without_opencv_runs_at_0_and_says_so_once(model, monkeypatch, caplog):
    """The pack does not install OpenCV; saved graphs carry temporal_strength 1 (the default): without OpenCV the
    node runs the alignment alone (exactly strength 0's output) and logs why once per ComfyUI process."""
    import logging

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    monkeypatch.setattr(N.video, "_SAID", set())
    off = N.video.MarigoldVideoDepth.execute(model=model, frames=CLIP[:3], temporal_strength=0.0, **VIDEO).args[0]
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            on = N.video.MarigoldVideoDepth.execute(model=model, frames=CLIP[:3], temporal_strength=1.0,
                                                    **VIDEO).args[0]
            assert torch.equal(on, off)
    said = [r for r in caplog.records if "needs OpenCV" in r.getMessage()]
    assert len(said) == 1 and "MarigoldVideoDepth" in said[0].getMessage()


# --- MarigoldDepthCompletion -------------------------------------------------------------------------------------

COMPLETE = dict(known_points="5,5,2.0; 50,35,4.0", denoising_steps=3, ensemble_size=2, processing_resolution=32,
                seed=0)


def test_completion_node_progress_per_step_under_comfyuis_inference_mode(model, progress_events):
    with torch.inference_mode():  # ComfyUI runs every node so (execution.py); the completion needs gradients
        metric, depth, preview = N.metric.MarigoldDepthCompletion.execute(model=model, image=IMAGE,
                                                                          **COMPLETE).args
    assert metric.depth.shape == (2, 1, 40, 56) and depth.shape == (2, 40, 56, 3)
    assert preview.shape[:3] == (2, 40, preview.shape[2]) and preview.shape[2] > 56  # the metre scale bar beside
    assert float(depth.min()) == 0.0 and float(depth.max()) == 1.0  # one range for the batch, near = 0
    assert 0.5 < float(metric.depth.min()) and 3.0 < float(metric.depth.max()) < 6.0  # the points' metres, not 0..1
    total = 2 * 2 * 3  # images × members × steps
    assert progress_events[-1] == (total, total)


def test_completion_node_snaps_to_the_points_unless_told_not_to(model):
    one = dict(COMPLETE, ensemble_size=1)
    snapped = N.metric.MarigoldDepthCompletion.execute(model=model, image=IMAGE[:1], **one).args[0].depth
    raw = N.metric.MarigoldDepthCompletion.execute(model=model, image=IMAGE[:1], snap_to_points=False,
                                                   **one).args[0].depth
    miss = [abs(float(d[0, 0, 5, 5]) - 2.0) + abs(float(d[0, 0, 35, 50]) - 4.0) for d in (snapped, raw)]
    assert miss[0] < 0.2 * miss[1]  # drawn to the known distances; off = the method's own map


def test_fit_node_snaps_with_the_photo_as_guide():
    depth = torch.linspace(0, 1, 56).expand(1, 40, 56)[..., None].expand(1, 40, 56, 3).clone()  # [1,H,W,3] a ramp
    pts = "5,5,2.0; 50,35,4.0; 30,20,2.2"  # the third off the ramp's line: only a snap meets it
    plain = N.metric.MarigoldFitMetric.execute(depth=depth, depth_near="dark (Marigold)", known_points=pts,
                                               robust=False).args[0].depth
    snapped = N.metric.MarigoldFitMetric.execute(depth=depth, depth_near="dark (Marigold)", known_points=pts,
                                                 robust=False, snap_to_points=True, image=IMAGE[:1]).args[0].depth
    assert abs(float(snapped[0, 0, 20, 30]) - 2.2) < 0.5 * abs(float(plain[0, 0, 20, 30]) - 2.2)


def test_completion_node_cancel_between_steps(model, monkeypatch):
    seen = []
    original = N.comfy_glue.Progress.__call__

    def progress(self, done, total):
        original(self, done, total)
        seen.append(done)
        if done == 2:
            mm.interrupt_current_processing(True)

    monkeypatch.setattr(N.comfy_glue.Progress, "__call__", progress)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            N.metric.MarigoldDepthCompletion.execute(model=model, image=IMAGE, **COMPLETE)
    finally:
        mm.interrupt_current_processing(False)
    assert max(seen) == 2  # no step ran after the cancel


def test_stereo_node_takes_one_far_near_ratio_for_a_metric_batch():
    """Frames are warped four at a time; a metric batch must still get ONE far/near ratio (its own), so a frame's
    pair does not depend on which frames share its chunk."""
    near = torch.linspace(1.0, 2.0, 40 * 56).reshape(1, 1, 40, 56)  # [1,1,H,W] metres: 1..2 m
    far = near * 2.0  # 2..4 m: the batch's far/near ratio is 4, the first four frames' own only 2
    photo = torch.rand(1, 40, 56, 3)
    options = dict(depth_near="dark (Marigold)", layout="side by side (full)", divergence=4.0, convergence=0.5,
                   far_over_near=3.0, balance=0.0)

    def run(*maps):
        metric = N.wires.MetricBatch(torch.cat(maps), "test")
        return N.stereo.DepthToStereo.execute(image=photo, metric=metric, **options).args[0]

    long, short = run(near, near, near, near, far), run(near, far)
    assert long.shape == (5, 40, 112, 3)
    assert torch.allclose(long[0], short[0], atol=1e-5) and torch.allclose(long[4], short[1], atol=1e-5)
    assert not torch.allclose(long[0], run(near)[0], atol=1e-3)  # the ratio does matter: 2 alone, 4 with far
