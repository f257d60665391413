"""Video depth: the evaluation's numbers (ground truth scores 0; fixed baselines score hand-computed numbers),
snippet-mode fine-tuning (resume after SIGKILL, the RollingDepth folder layout) and snippet inference."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from test_train_finetune import _env  # the trainer's subprocess environment, one definition
from train.video_metrics import evaluate_video, temporal_error

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------- metrics


def _wall_clip():
    """Two frames of a fronto-parallel wall: at 4 m, then 3 m after the camera moved 1 m straight at it."""
    h, w = 12, 16
    K = np.array([[10.0, 0, 7.5], [0, 10.0, 5.5], [0, 0, 1]])
    poses = np.stack([np.eye(4), np.eye(4)])
    poses[1, 2, 3] = 1.0
    gt = np.stack([np.full((h, w), 4.0), np.full((h, w), 3.0)])
    return gt, np.ones_like(gt, bool), K, poses


def test_ground_truth_scores_zero_and_baselines_score_hand_computed_numbers():
    gt, valid, K, poses = _wall_clip()
    r = evaluate_video(gt, gt, valid, intrinsics=K, poses=poses)
    assert r["abs_rel"] < 1e-12 and r["delta1"] == 1.0 and r["temporal_error"] < 1e-12
    # moving 1 m forward, a pixel at (u, v) moves away from the centre by 4/3: the inner pixels stay in view
    assert 0 < r["correspondences"] < valid[0].sum()
    # a constant map: one alignment in depth makes it the mean depth 3.5 m:
    # AbsRel = (0.5/4 + 0.5/3) / 2 = 0.1458333; the wall's true change (−1 m) is all missed: 1/4 = 0.25
    const = np.full_like(gt, 0.7)
    r = evaluate_video(const, gt, valid, intrinsics=K, poses=poses)
    assert r["abs_rel"] == pytest.approx(0.1458333, abs=1e-6) and r["delta1"] == 1.0
    assert r["temporal_error"] == pytest.approx(0.25, abs=1e-12)
    # aligned in disparity: 1 / mean(1/4, 1/3) = 3.428571 m, AbsRel = 1/7 on both frames
    r = evaluate_video(const, gt, valid, space="disparity", intrinsics=K, poses=poses)
    assert r["abs_rel"] == pytest.approx(1 / 7, abs=1e-9) and r["temporal_error"] == pytest.approx(0.25, abs=1e-12)
    # the second frame 10 % too far (no alignment): the change is off by 0.1 · 3 m, relative to 4 m: 0.075
    te, n = temporal_error(gt * np.array([1.0, 1.1])[:, None, None], gt, valid, K, poses)
    assert te == pytest.approx(0.075, abs=1e-12) and n == r["correspondences"]
    # an affine map of inverse depth is exact after alignment in disparity, not in depth
    assert evaluate_video(2.0 / gt + 1.0, gt, valid, space="disparity")["abs_rel"] < 1e-9
    assert evaluate_video(2.0 / gt[:, :, ::2] * np.linspace(1, 2, 8), gt[:, :, ::2], valid[:, :, ::2],
                          space="depth")["abs_rel"] > 0.01
    with pytest.raises(ValueError, match=r"\[T,H,W\]"):
        evaluate_video(gt[0], gt[0], valid[0])


def test_occluded_points_do_not_count():
    gt, valid, K, poses = _wall_clip()
    gt[1, 4:8, 6:10] = 1.0  # something appears right in front of the camera in frame 1
    v_all = evaluate_video(gt, gt, valid, intrinsics=K, poses=poses)
    clean = _wall_clip()[0]
    r = evaluate_video(clean, clean, valid, intrinsics=K, poses=poses)
    assert v_all["temporal_error"] < 1e-12 and v_all["correspondences"] < r["correspondences"] - 10


# --------------------------------------------------------------------------------------------------- training


ARGS = ["--mode", "snippet", "--resolution", "32", "--batch-size", "1", "--grad-accum", "2", "--max-steps", "8",
        "--checkpoint-every", "2", "--keep-last", "2", "--num-workers", "1", "--lr", "1e-3", "--seed", "3",
        "--set", "ema.enabled=true", "--set", "ema.decay=0.9", "--set", "lr_schedule.warmup_steps=2",
        "--set", "snippet.max_dilation=5", "--no-progress"]


def _cmd(base, out, *extra):
    return [sys.executable, "-m", "train.finetune", "--base", str(base), "--output", str(out), *ARGS, *extra]


def _weights(p: Path) -> dict:
    return load_file(str(p / "unet" / "diffusion_pytorch_model.safetensors"))


def _same(a, b):
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0.0


def test_snippet_mode_resumes_after_sigkill_to_the_same_weights(tiny_sd2, tmp_path):
    env = _env()
    full = tmp_path / "full"
    res = subprocess.run(_cmd(tiny_sd2, full), env=env, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tiny_sd2, killed, "--set", "debug_step_sleep=0.4"), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "checkpoints" / "step-0000004"
    deadline = time.time() + 240
    while not target.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert target.is_dir() and not (killed / "final").exists()
    res = subprocess.run(_cmd(tiny_sd2, killed, "--resume"), env=env, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "at step 4" in res.stdout
    _same(_weights(full / "final"), _weights(killed / "final"))
    live = "checkpoints/step-0000008/train_state/unet_live.safetensors"
    _same(load_file(str(full / live)), load_file(str(killed / live)))
    start = load_file(str(Path(tiny_sd2) / "unet" / "diffusion_pytorch_model.safetensors"))
    assert not torch.equal(_weights(full / "final")["conv_in.weight"][:, 4:], start["conv_in.weight"])  # it trained
    # every checkpoint, like the final folder, is a complete RollingDepth folder
    _assert_rollingdepth_layout(full / "checkpoints" / "step-0000006", tiny_sd2)
    _assert_rollingdepth_layout(full / "final", tiny_sd2)


def _assert_rollingdepth_layout(folder: Path, base: Path):
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "RollingDepthPipeline"
    assert set(index) == {"_class_name", "_diffusers_version", "unet", "vae", "scheduler", "text_encoder",
                          "tokenizer"}  # no Marigold keys
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDIMScheduler" and sched["prediction_type"] == "v_prediction"
    assert sched["timestep_spacing"] == "trailing" and sched["rescale_betas_zero_snr"] is True
    assert sched["steps_offset"] == 1
    for part in ("unet", "vae", "text_encoder", "tokenizer"):
        assert (folder / part).is_dir()
    assert not list(folder.glob("*.safetensors"))  # no Marigold embedding cache in the published layout


def test_snippet_checkpoint_matches_the_published_layout_and_predicts_snippets(tiny_sd2, make_checkpoint, tmp_path):
    """Same files as ``make_marigold_checkpoint.py --task rollingdepth`` writes (the layout of
    prs-eth/rollingdepth-v1-0), and a snippet of 3 frames runs through it jointly."""
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "train.finetune", "--base", str(tiny_sd2), "--output", str(out),
                          "--mode", "snippet", "--resolution", "32", "--batch-size", "1", "--grad-accum", "1",
                          "--max-steps", "1", "--checkpoint-every", "0", "--num-workers", "0", "--no-progress",
                          "--set", "snippet.objective=e2e", "--set", "validation.every=1",
                          "--set", "validation.num_images=1"],
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ref = make_checkpoint("rollingdepth")
    def listing(folder):  # the empty-text cache appears beside any checkpoint once something has loaded it
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                      if p.is_file() and p.name != "marigold_empty_text_embedding.safetensors")

    assert listing(out / "final") == listing(ref)
    for f in ("scheduler/scheduler_config.json", "model_index.json"):
        a, b = (json.loads((d / f).read_text()) for d in (ref, out / "final"))
        a.pop("_diffusers_version"), b.pop("_diffusers_version")
        assert a == b, f
    from marigold.core import checkpoint as ckpt
    from train.snippet_infer import predict_snippets

    folder = out / "final"
    unet = ckpt.load_component(folder, "unet", torch.float32).eval()
    vae = ckpt.load_component(folder, "vae", torch.float32).eval()
    sched = {k: v for k, v in json.loads((folder / "scheduler" / "scheduler_config.json").read_text()).items()
             if not k.startswith("_")}
    rgb = torch.rand(2, 3, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    text = ckpt.empty_text_embedding(folder)
    joint = predict_snippets(unet, vae, text, sched, rgb)
    alone = predict_snippets(unet, vae, text, sched, rgb.reshape(6, 1, 3, 16, 24)).reshape(2, 3, 16, 24)
    assert joint.shape == (2, 3, 16, 24) and torch.isfinite(joint).all()
    assert (joint - alone).abs().max() > 1e-5  # the frames of a snippet see each other
    # the core library reads it as a RollingDepth model and the video pipeline runs it, with no conversion
    import marigold
    from marigold.video.pipeline import predict_video

    model = marigold.load(folder, device="cpu", dtype="fp32")
    assert model.video_model and model.prediction_type == "disparity"
    video = predict_video(model, torch.rand(7, 3, 24, 32, generator=torch.Generator().manual_seed(1)),
                          processing_resolution=32, dilations=[1, 2])
    assert video.depth.shape == (7, 1, 24, 32) and video.space == "disparity" and torch.isfinite(video.depth).all()
    # and the CLI's --video takes it as it is: a folder of frames → a depth video and 16-bit disparity frames
    from PIL import Image

    frames = tmp_path / "clip"
    frames.mkdir()
    for i in range(5):
        Image.fromarray((torch.rand(24, 32, 3, generator=torch.Generator().manual_seed(i)) * 255).byte().numpy()
                        ).save(frames / f"{i:06d}.png")
    res = subprocess.run([sys.executable, "-m", "marigold", str(frames), "--video", "-o", str(tmp_path / "cli"),
                          "--checkpoint", str(folder), "--processing-resolution", "32", "--dilations", "1,2",
                          "--dtype", "fp32", "--fps", "5"], env=_env(), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(list((tmp_path / "cli" / "clip_disparity_16bit").glob("*.png"))) == 5
    assert (tmp_path / "cli" / "clip_depth.mp4").stat().st_size > 0


def test_evaluate_cli_scores_videos_frame_by_frame(depth_checkpoint, tmp_path, capsys):
    """``python -m train.evaluate`` on a synthetic video and on the same video written as a folder of frames
    (npy depth, intrinsics, poses): both give finite AbsRel and temporal error, and the same numbers."""
    from train.data.synthetic import render_video
    from train.data.video_folder import write_sequence
    from train.evaluate import main

    c = render_video(1_000_003 + 500_000, 4, 48, 64)  # held-out synthetic video 0, first 4 frames
    write_sequence(tmp_path / "vid" / "seq", c.rgb, c.depth, c.valid, c.intrinsics, c.poses, depth_format="npy")
    out = tmp_path / "eval.json"
    assert main(["--checkpoint", str(depth_checkpoint), "--dataset", "synthetic-video:1", "--dataset",
                 f"video-folder:{tmp_path / 'vid'}", "--video-mode", "frames", "--max-frames", "4",
                 "--processing-resolution", "32", "--steps", "1", "--device", "cpu", "--dtype", "fp32",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["dataset"] for r in res] == ["synthetic-video-frames", "video-folder-frames"]
    for r in res:
        assert r["n"] == 1 and 0 < r["metrics"]["abs_rel"] < 2 and 0 < r["metrics"]["temporal_error"] < 2
    # the folder holds the same video (8-bit frames): nearly the same numbers
    assert res[1]["metrics"]["abs_rel"] == pytest.approx(res[0]["metrics"]["abs_rel"], rel=0.05)
    assert "temporal_error" in capsys.readouterr().out


def test_snippet_mode_two_gloo_processes_hold_identical_weights(tiny_sd2, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), "-m", "train.finetune", "--base", str(tiny_sd2), "--output", str(out),
           "--mode", "snippet", "--resolution", "32", "--batch-size", "1", "--grad-accum", "2", "--max-steps", "2",
           "--checkpoint-every", "0", "--num-workers", "0", "--lr", "1e-3", "--no-progress",
           "--set", "dump_rank_weights=true"]
    res = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = load_file(str(out / "rank-0-unet.safetensors"))
    _same(r0, load_file(str(out / "rank-1-unet.safetensors")))
    start = load_file(str(Path(tiny_sd2) / "unet" / "diffusion_pytorch_model.safetensors"))
    assert not torch.equal(r0["conv_out.weight"], start["conv_out.weight"])
    _assert_rollingdepth_layout(out / "final", tiny_sd2)
