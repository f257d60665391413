"""The trainer end to end: a killed run resumes to the same weights, two gloo processes stay in lock-step,
and a tiny model fine-tuned on the CPU on the synthetic set gets measurably better on held-out scenes, in a
checkpoint the core library loads as it is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

import marigold

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


def _cmd(base, out, *extra):
    return [sys.executable, "-m", "train.finetune", "--base", str(base), "--data", "synthetic", "--output", str(out),
            "--seed", "3", *extra]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert diff == 0.0, f"weights differ by up to {diff}"


RESUME_ARGS = ["--mode", "diffusion", "--resolution", "32", "--batch-size", "2", "--grad-accum", "2",
               "--max-steps", "12", "--checkpoint-every", "3", "--keep-last", "2", "--num-workers", "1",
               "--lr", "1e-3", "--set", "ema.enabled=true", "--set", "ema.decay=0.9",
               "--set", "lr_schedule.warmup_steps=2", "--no-progress"]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_sd2, tmp_path):
    env = _env()
    full = tmp_path / "full"
    subprocess.run(_cmd(tiny_sd2, full, *RESUME_ARGS), check=True, env=env, cwd=ROOT, capture_output=True)
    kept = sorted(p.name for p in (full / "checkpoints").iterdir())
    assert kept == ["step-0000009", "step-0000012"]  # keep-last 2, no temporary folders left

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(tiny_sd2, killed, *RESUME_ARGS, "--set", "debug_step_sleep=0.4"), env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "checkpoints" / "step-0000006"
    deadline = time.time() + 240
    while not target.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # a real SIGKILL: no handler, no cleanup
    assert proc.wait() == -signal.SIGKILL
    assert target.is_dir() and not (killed / "final").exists()
    assert not (killed / "checkpoints" / "step-0000009").exists()

    res = subprocess.run(_cmd(tiny_sd2, killed, *RESUME_ARGS, "--resume"), env=env, cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "at step 6" in res.stdout  # lost only the steps after the last checkpoint
    # the exported weights (EMA) and the live weights, optimizer and data order all continued exactly
    _assert_same(_weights(full / "final"), _weights(killed / "final"))
    live_a = load_file(str(full / "checkpoints" / "step-0000012" / "train_state" / "unet_live.safetensors"))
    live_b = load_file(str(killed / "checkpoints" / "step-0000012" / "train_state" / "unet_live.safetensors"))
    _assert_same(live_a, live_b)
    assert not torch.equal(live_a["conv_in.weight"], _weights(full / "final")["conv_in.weight"])  # EMA ≠ live


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_hold_identical_weights(tiny_sd2, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()),
           "-m", "train.finetune", "--base", str(tiny_sd2), "--data", "synthetic", "--output", str(out),
           "--mode", "diffusion", "--resolution", "32", "--batch-size", "1", "--grad-accum", "2",
           "--max-steps", "3", "--checkpoint-every", "2", "--num-workers", "0", "--lr", "1e-3", "--no-progress",
           "--set", "dump_rank_weights=true"]
    res = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = load_file(str(out / "rank-0-unet.safetensors"))
    r1 = load_file(str(out / "rank-1-unet.safetensors"))
    _assert_same(r0, r1)
    from train.base import load_base

    start = load_base(tiny_sd2).unet.state_dict()
    assert any(not torch.equal(r0[k], start[k]) for k in r0)  # they trained, and in lock-step
    st = out / "checkpoints" / "step-0000002" / "train_state"
    assert (st / "rng-rank0.pt").is_file() and (st / "rng-rank1.pt").is_file()
    assert marigold.load(out / "final", device="cpu", dtype="fp32").task == "depth"


def test_tiny_model_learns_depth_on_synthetic_scenes(tiny_sd2, tmp_path):
    """A few hundred CPU steps of end-to-end fine-tuning from the tiny SD2 stand-in (configs/cpu_tiny.yaml, flat
    synthetic scenes): on held-out scenes the model's AbsRel (one least-squares alignment per scene) falls clearly
    and beats the training set's mean map, and its maps change with the scene (tiny models used to learn one
    constant layout: scene-to-scene change < 0.003); the written checkpoint loads in the core library and
    predicts."""
    from train.base import in_memory_model, load_base, noise_scheduler_config
    from train.config import DEFAULTS
    from train.evaluate import evaluate_model, synthetic_eval_set
    from train.metrics import evaluate_prediction

    torch.set_flush_denormal(True)

    def heldout():
        return synthetic_eval_set(8, "heldout", 48, 64, texture="flat")

    # the constant map a model that ignores its input converges to: the mean normalised depth of 256 training scenes
    from bench.quality import mean_map

    const = mean_map(256, (48, 64))  # [48,64]
    items = list(heldout().items)
    const_abs_rel = float(np.mean([evaluate_prediction(const, it.depth, it.valid, min_depth=1e-3)["abs_rel"]
                                   for it in items]))

    base = load_base(tiny_sd2)
    before_model = in_memory_model(base, base.unet.eval(), noise_scheduler_config(base, DEFAULTS), "depth", "cpu",
                                   processing_resolution=64)
    before = evaluate_model(before_model, heldout(), steps=1, processing_resolution=64, seed=0)["metrics"]

    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "train.finetune", "--base", str(tiny_sd2), "--output", str(out),
                          "--config", str(ROOT / "train" / "configs" / "cpu_tiny.yaml"), "--seed", "3",
                          "--checkpoint-every", "200"],  # the config's data: synthetic:flat
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "samples_per_s" in res.stdout + res.stderr  # the progress bar reports throughput
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    model = marigold.load(out / "final", device="cpu", dtype="fp32")
    assert model.default_denoising_steps == 1
    after = evaluate_model(model, heldout(), steps=1, processing_resolution=64, seed=0)["metrics"]
    preds = np.stack([marigold.predict(model, it.rgb, processing_resolution=64, seed=0).prediction[0, 0].numpy()
                      for it in items])  # [8,H,W] 0..1, the same noise for every scene
    scene_change = float(np.abs(preds[1:] - preds[0]).mean())
    # the right way up (near = 0): an unconstrained alignment would hide an inverted map (train/losses.py)
    from train.metrics import fit_scale_shift

    scales = [fit_scale_shift(p, it.depth, it.valid & (it.depth > 1e-3))[0] for p, it in zip(preds, items)]
    print(f"held-out synthetic AbsRel {before['abs_rel']:.4f} -> {after['abs_rel']:.4f} (training mean map "
          f"{const_abs_rel:.4f}), delta1 {before['delta1']:.4f} -> {after['delta1']:.4f}, "
          f"scene change {scene_change:.4f}")
    assert after["abs_rel"] < 0.75 * before["abs_rel"]
    assert after["delta1"] > before["delta1"]
    assert after["abs_rel"] < 0.98 * const_abs_rel  # it uses the image: the constant it would learn scores worse
    assert scene_change > 0.02
    assert sum(sc > 0 for sc in scales) >= 7, scales  # not inverted (every tiny model was, before the fix)
    pred = marigold.predict(model, np.random.default_rng(0).random((48, 64, 3)).astype(np.float32), seed=0)
    assert pred.prediction.shape == (1, 1, 48, 64) and torch.isfinite(pred.prediction).all()


def test_normals_with_bf16_autocast_and_gradient_checkpointing(tiny_sd2, tmp_path):
    """The normals task, mixed precision (bf16 autocast on the CPU) and gradient checkpointing run, and the
    export keeps fp32 UNet weights and the base's untouched VAE."""
    out = tmp_path / "normals"
    res = subprocess.run(_cmd(tiny_sd2, out, "--task", "normals", "--mode", "diffusion", "--resolution", "32",
                              "--batch-size", "2", "--grad-accum", "1", "--max-steps", "2", "--num-workers", "0",
                              "--checkpoint-every", "0", "--mixed-precision", "bf16", "--no-progress",
                              "--set", "gradient_checkpointing=true"),
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    w = _weights(out / "final")
    assert all(v.dtype == torch.float32 for v in w.values())
    vae_name = "vae/diffusion_pytorch_model.safetensors"
    _assert_same(load_file(str(out / "final" / vae_name)), load_file(str(Path(tiny_sd2) / vae_name)))
    model = marigold.load(out / "final", device="cpu", dtype="fp32")
    assert model.task == "normals"
    pred = marigold.predict(model, np.random.default_rng(0).random((32, 32, 3)).astype(np.float32), seed=0,
                            processing_resolution=32)
    assert pred.prediction.shape == (1, 3, 32, 32)
    np.testing.assert_allclose(pred.prediction.norm(dim=1).numpy(), 1.0, atol=1e-3)
