r"""Snippet model vs the same model trained on single frames; Marigold's video mode vs frame by frame. Tiny
models trained here on the CPU on synthetic data; measured on held-out synthetic videos with exact geometry.

    python -m train.video_benchmark --base TINY_SD2 --out runs/video-bench [--steps 300] [--objective e2e]
    python -m train.video_benchmark --base TINY_SD2 --out runs/video-mode --marigold-video [--frames 48]

Both runs start from the same tiny SD2 stand-in (``python -m train.tiny``), use ``--mode snippet`` with the same
seed, data (synthetic videos), steps, learning rate and number of frames per optimiser step: the snippet model
sees B snippets of 3 frames with cross-frame attention and one normalisation per snippet; the single-frame model
sees 3·B single frames (``snippet.frames: 1``), each normalised on its own. Both predict inverse depth.

Evaluation: held-out synthetic videos (never seen in training), snippets of 3 frames at dilation 4, one
least-squares alignment per snippet in disparity (RollingDepth's protocol), AbsRel, δ1 and the temporal error
(:mod:`train.video_metrics`). The snippet model predicts each snippet jointly; the single-frame model predicts
its frames one by one (the same noise). Writes ``OUT/results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(base: Path, out: Path, frames: int, batch: int, steps: int, objective: str, size: tuple[int, int],
          seed: int, lr: float) -> float:
    cfg = {"data": [{"name": "synthetic-video", "height": size[0], "width": size[1], "frames": 48, "size": 400}]}
    cfg_path = out.with_suffix(".yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "train.finetune", "--base", str(base), "--output", str(out), "--config",
           str(cfg_path), "--mode", "snippet", "--resolution", str(max(size)), "--batch-size", str(batch),
           "--grad-accum", "1", "--max-steps", str(steps), "--checkpoint-every", "0", "--num-workers", "1",
           "--lr", str(lr), "--seed", str(seed), "--no-progress", "--set", f"snippet.frames={frames}",
           "--set", f"snippet.objective={objective}", "--set", "lr_schedule.warmup_steps=20",
           "--set", f"lr_schedule.decay_steps={steps}", "--set", "lr_schedule.final_ratio=0.1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"training failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def score(folder: Path, frames: int, videos, dilations: list[int], per_video: int, steps: int,
          untrained: bool = False) -> dict:
    """Metrics per dilation of the model at ``folder`` (``untrained``: the widened base, before training)."""
    import torch

    from marigold import checkpoint as ckpt

    from .base import load_base, rollingdepth_scheduler_config
    from .config import DEFAULTS
    from .video_eval import evaluate_snippets

    if untrained:
        base = load_base(folder)
        unet, vae, text = base.unet.eval(), base.vae, base.empty_text_embedding
        from .base import noise_scheduler_config

        sched = rollingdepth_scheduler_config(noise_scheduler_config(base, DEFAULTS))
    else:
        unet = ckpt.load_component(folder, "unet", torch.float32).eval()
        vae = ckpt.load_component(folder, "vae", torch.float32).eval()
        text = ckpt.empty_text_embedding(folder)
        sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    sched = {k: v for k, v in sched.items() if not k.startswith("_")}
    out = {}
    for g in dilations:
        res = evaluate_snippets(unet, vae, text, sched, videos, frames=3, joint=frames > 1, dilation=g,
                                per_video=per_video, space="disparity", steps=steps)
        out[f"dilation {g}"] = {k: res["metrics"][k] for k in ("abs_rel", "delta1", "temporal_error")} | {
            "snippets": res["n"]}
    return out


def marigold_video_mode(base: Path, out: Path, steps: int, videos: int, frames: int, seed: int) -> dict:
    """Issue 10's measurement: a tiny Marigold depth model (``configs/cpu_tiny.yaml``: e2e, 48×64) trained here,
    run on whole held-out synthetic videos frame by frame and in video mode (:func:`marigold.video.predict_video`);
    one alignment per video (in depth), AbsRel, δ1, temporal error."""
    import marigold

    from .video_eval import evaluate_clips, synthetic_videos

    run = out / "marigold"
    if not (run / "final").is_dir():
        cmd = [sys.executable, "-m", "train.finetune", "--base", str(base), "--output", str(run), "--config",
               str(ROOT / "train" / "configs" / "cpu_tiny.yaml"), "--max-steps", str(steps), "--checkpoint-every",
               "0", "--seed", str(seed), "--no-progress", "--set", "validation.every=0"]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"training failed:\n{res.stderr[-3000:]}")
    model = marigold.load(run / "final", device="cpu", dtype="fp32")
    clips = synthetic_videos(videos, frames, 48, 64, split="heldout")
    rows = {}
    for mode, kw in (("frames", dict(num_inference_steps=None, processing_resolution=64, seed=0)),
                     ("video", dict(processing_resolution=64, seed=0))):
        t0 = time.perf_counter()
        res = evaluate_clips(model, clips, mode, **kw)
        rows[mode] = {k: res["metrics"][k] for k in ("abs_rel", "delta1", "temporal_error")} | {
            "seconds": round(time.perf_counter() - t0, 1)}
        print(mode, rows[mode], flush=True)
    return rows


def main(argv=None) -> int:
    import torch

    torch.set_flush_denormal(True)
    ap = argparse.ArgumentParser(prog="python -m train.video_benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="tiny SD2 stand-in (python -m train.tiny)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--snippets-per-step", type=int, default=2)
    ap.add_argument("--objective", choices=("diffusion", "e2e"), default="e2e")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--reuse", action="store_true", help="score runs already in OUT instead of training again")
    ap.add_argument("--dilations", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--marigold-video", action="store_true",
                    help="instead: Marigold's video mode vs frame by frame on whole videos (issue 10)")
    ap.add_argument("--frames", type=int, default=48, help="--marigold-video: frames per video")
    a = ap.parse_args(argv)
    if a.marigold_video:
        rows = marigold_video_mode(Path(a.base), Path(a.out), a.steps, a.videos, a.frames, a.seed)
        (Path(a.out) / "marigold_video.json").write_text(json.dumps(rows, indent=2))
        print(f"\n| tiny Marigold ({a.steps} CPU steps), {a.videos} held-out videos × {a.frames} frames | AbsRel | δ1 "
              f"| temporal error |\n|---|---|---|---|")
        for k, m in rows.items():
            print(f"| {k} | {m['abs_rel']:.4f} | {m['delta1']:.4f} | {m['temporal_error']:.4f} |")
        ratio = rows["video"]["temporal_error"] / rows["frames"]["temporal_error"]
        print(f"temporal error, video mode / frame by frame: {ratio:.3f}")
        return 0
    out, base, size = Path(a.out), Path(a.base), (48, 64)
    runs = {"snippet (3 frames, cross-frame attention)": (3, a.snippets_per_step),
            "single frames (same frames per step)": (1, 3 * a.snippets_per_step)}
    from .video_eval import synthetic_videos

    videos = synthetic_videos(a.videos, 48, *size, split="heldout")
    rows = {"untrained (widened SD2 stand-in, per frame)": score(base, 1, videos, a.dilations, 4, 1, True)}
    for name, (frames, batch) in runs.items():
        run = out / f"frames{frames}"
        if (run / "final").is_dir() and a.reuse:
            secs = float("nan")
        else:
            secs = train(base, run, frames, batch, a.steps, a.objective, size, a.seed, a.lr)
        rows[name] = score(run / "final", frames, videos, a.dilations, 4, 1) | {"train_s": round(secs, 1)}
        print(name, rows[name], flush=True)
    result = {"steps": a.steps, "objective": a.objective, "size": size, "videos": a.videos,
              "dilations": a.dilations, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"\n| model (tiny, {a.steps} CPU steps, {a.objective}) | snippet dilation | AbsRel | δ1 | temporal error |"
          "\n|---|---|---|---|---|")
    for name, r in rows.items():
        for g in a.dilations:
            m = r[f"dilation {g}"]
            print(f"| {name} | {g} | {m['abs_rel']:.4f} | {m['delta1']:.4f} | {m['temporal_error']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
