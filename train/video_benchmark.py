r"""Snippet model vs the same model trained on single frames; Marigold's video mode vs frame by frame. Tiny
models trained here on the CPU on synthetic data; measured on held-out synthetic videos with exact geometry.

    python -m train.video_benchmark --base TINY_SD2 --out runs/video-bench [--steps 400] [--seeds 0 1 2] [--jobs 2]
    python -m train.video_benchmark --base TINY_SD2 --out runs/video-mode --marigold-video [--frames 48]

Every model ("arm", ``--arms``) starts from the same tiny SD2 stand-in (``python -m train.tiny``) and uses
``--mode snippet`` with the same data (synthetic videos), steps and learning rate. The default pair has the same
number of frames per optimiser step: the snippet model sees B snippets of 3 frames with cross-frame attention and
one normalisation per snippet; the single-frame model sees 3·B single frames (``snippet.frames: 1``) from 3·B
videos, each normalised on its own. Other budgets: ``single-same-frames`` trains on exactly the snippet model's
frames (the same snippets, ``snippet.joint: false``: each frame alone), ``snippet-same-videos`` and
``single-same-videos`` match the number of videos per step instead. ``--seeds``: every arm once per training
seed, reported per seed and as mean ± standard deviation, with the snippet − single difference paired by seed.

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
          seed: int, lr: float, texture: str = "flat", joint: bool = True) -> float:
    cfg = {"data": [{"name": "synthetic-video", "height": size[0], "width": size[1], "frames": 48, "size": 400,
                     "texture": texture}]}
    cfg_path = out.with_suffix(".yaml")
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "train.finetune", "--base", str(base), "--output", str(out), "--config",
           str(cfg_path), "--mode", "snippet", "--resolution", str(max(size)), "--batch-size", str(batch),
           "--grad-accum", "1", "--max-steps", str(steps), "--checkpoint-every", "0", "--num-workers", "1",
           "--lr", str(lr), "--seed", str(seed), "--no-progress", "--set", f"snippet.frames={frames}",
           "--set", f"snippet.objective={objective}", "--set", f"snippet.joint={str(joint).lower()}",
           "--set", "lr_schedule.warmup_steps=20",
           "--set", f"lr_schedule.decay_steps={steps}", "--set", "lr_schedule.final_ratio=1.0"]
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

    from marigold.core import checkpoint as ckpt

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


def _core_scales(stream) -> dict:
    sc, sh = stream.snippet_scales, stream.snippet_shifts
    return {"core_scale_min": min(sc), "core_scale_max": max(sc), "core_shift_min": min(sh), "core_shift_max": max(sh)}


def _video_mode(model, clip, maps=None, **kw):
    """The core's Marigold video mode on ``clip`` → (prediction [T,H,W], fitted per-frame scales/shifts). ``maps``
    (``[T,H,W]`` 0..1): feed these as the per-frame predictions instead of the model's (the oracle run), so the
    core's own co-alignment and normalisation are measured on inputs whose errors we choose."""
    import importlib
    import types

    import numpy as np
    import torch

    from marigold.video.pipeline import iter_video_depth

    predict_mod = importlib.import_module("marigold.core.predict")
    real = predict_mod.iter_members
    if maps is not None:
        it = iter(maps)
        predict_mod.iter_members = lambda *a, **k: iter(
            [types.SimpleNamespace(values=torch.from_numpy(np.ascontiguousarray(next(it))).float()[None, None])])
    try:
        stream = iter_video_depth(model, torch.from_numpy(clip.rgb).permute(0, 3, 1, 2), **kw)
        values = np.stack([f.value[0].numpy() for f in stream])  # [T,H,W], one affine frame for the clip
    finally:
        predict_mod.iter_members = real
    return values, _core_scales(stream)


def _oracle_maps(clip, gamma: float, seed: int):
    """Exact depth, each frame normalised to 0..1 on its own (a perfect per-frame model), after a per-frame random
    power ``x ** exp(gamma·N(0,1))``: a non-affine per-frame change, which per-frame normalisation cannot undo."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for d, ok in zip(clip.depth, clip.valid & (clip.depth > 1e-3)):
        x = (d - d[ok].min()) / (d[ok].max() - d[ok].min())
        x = np.where(ok, x, 1.0) ** np.exp(gamma * rng.standard_normal())
        out.append(((x - x[ok].min()) / (x[ok].max() - x[ok].min())).astype(np.float32))
    return np.stack(out)  # [T,H,W]


def marigold_video_mode(base: Path, out: Path, steps: int, videos: int, frames: int, seed: int, path: str = "random",
                        size: tuple[int, int] = (48, 64), model_dir: Path | None = None,
                        oracle: float | None = None, window: int | None = None, texture: str = "flat") -> dict:
    """Issue 10's measurement: a tiny Marigold depth model (``configs/cpu_tiny.yaml``: e2e, 48×64) trained here
    (or ``model_dir``), run on whole held-out synthetic videos (camera ``path``) frame by frame and in video mode
    (:func:`marigold.video.pipeline.predict_video`'s core); one alignment per video (in depth), AbsRel, δ1, temporal error,
    and what explains them: how much the per-frame predictions change from frame to frame and from scene to scene,
    the spread of their per-frame least-squares fits to the truth, and the core's fitted per-frame scales/shifts.
    ``oracle`` (a flicker strength): instead of the model, exact per-frame-normalised depth (:func:`_oracle_maps`)."""
    import numpy as np
    import torch

    import marigold

    from .data.synthetic import render
    from .metrics import fit_scale_shift
    from .video_eval import synthetic_videos
    from .video_metrics import evaluate_video

    run = model_dir or out / "marigold" / "final"
    if model_dir is None and not run.is_dir():
        cmd = [sys.executable, "-m", "train.finetune", "--base", str(base), "--output", str(run.parent), "--config",
               str(ROOT / "train" / "configs" / "cpu_tiny.yaml"), "--max-steps", str(steps), "--checkpoint-every",
               "0", "--seed", str(seed), "--no-progress", "--set", "validation.every=0"]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"training failed:\n{res.stderr[-3000:]}")
    model = marigold.load(run, device="cpu", dtype="fp32")
    clips = synthetic_videos(videos, frames, *size, split="heldout", path=path, texture=texture)
    res_kw = dict(processing_resolution=max(size), seed=0)
    vid_kw = res_kw if window is None else {**res_kw, "window": window}
    # frames: each frame on its own with the same seed (one noise for all); frames_batch: the clip as one batch with
    # one seed, so every frame draws its own noise (what the image node did on a frame batch before the video node)
    per = {"frames": [], "video": []} if oracle is not None else {"frames": [], "frames_batch": [], "video": []}
    diag: dict[str, list] = {}
    for i, c in enumerate(clips):
        mask = c.valid & (c.depth > 1e-3)
        preds = {}
        if oracle is None:
            fr = np.stack([marigold.predict(model, f, **res_kw).prediction[0, 0].numpy() for f in c.rgb])
            preds["frames_batch"] = marigold.predict(model, torch.from_numpy(c.rgb).permute(0, 3, 1, 2),
                                                     **res_kw).prediction[:, 0].numpy()  # [T,H,W]
            vid, core = _video_mode(model, c, **vid_kw)
        else:
            fr = _oracle_maps(c, oracle, seed + i)
            vid, core = _video_mode(model, c, fr, **vid_kw)
        preds.update(frames=fr, video=vid)
        for mode, pred in preds.items():
            m = evaluate_video(pred, c.depth, c.valid, space="depth", intrinsics=c.intrinsics, poses=c.poses)
            per[mode].append([m["abs_rel"], m["delta1"], m["temporal_error"]])
        fits = np.array([fit_scale_shift(fr[k], c.depth[k], mask[k]) for k in range(len(fr))])  # [T,2]
        rng_ = [(c.depth[k][mask[k]].min(), c.depth[k][mask[k]].max()) for k in (0, len(fr) - 1)]
        d = {"gt_range_first_last": [round(float(v), 2) for r in rng_ for v in r],
             "frame_change": float(np.abs(np.diff(fr, axis=0)).mean()),  # mean |p[k+1] − p[k]|, same pixel
             "gt_change": float(np.abs(np.diff(c.depth / c.depth[mask].max(), axis=0))[mask[1:]].mean()),
             "saturated": float(np.mean((fr < 0.05) | (fr > 0.95))),
             "fit_scale_rel_std": float(fits[:, 0].std() / abs(fits[:, 0].mean())),
             "fit_shift_std": float(fits[:, 1].std()), **core}
        for k, v in d.items():
            diag.setdefault(k, []).append(v)
    if oracle is None:  # does the model look at its input? the same seed on different held-out image scenes
        ps = [marigold.predict(model, render(1_000_003 + i, *size, texture=texture).rgb, **res_kw)
              .prediction[0, 0].numpy() for i in range(4)]
        diag["scene_change"] = [float(np.mean([np.abs(p - ps[0]).mean() for p in ps[1:]]))]
    rows = {}
    for mode, v in per.items():
        a = np.mean(v, 0)
        rows[mode] = {"abs_rel": float(a[0]), "delta1": float(a[1]), "temporal_error": float(a[2]),
                      "per_video": v}
        print(mode, {k: round(x, 4) for k, x in rows[mode].items() if k != "per_video"}, flush=True)
    rows["diagnostics"] = diag
    for k, v in diag.items():
        print(f"  {k}: {np.round(v, 4).tolist()}")
    return rows


def main(argv=None) -> int:
    import torch

    torch.set_flush_denormal(True)
    ap = argparse.ArgumentParser(prog="python -m train.video_benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="tiny SD2 stand-in (python -m train.tiny)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--snippets-per-step", type=int, default=2)
    ap.add_argument("--objective", choices=("diffusion", "e2e"), default="e2e")
    ap.add_argument("--lr", type=float, default=1e-3, help="constant after 20 warm-up steps (configs/cpu_tiny.yaml)")
    ap.add_argument("--texture", choices=("flat", "photo"), default="flat",
                    help="synthetic surfaces of the training and test videos (flat: what tiny models can learn; "
                         "train/README.md, 'Tiny models')")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+",
                    help="train every arm once per seed; report each seed and the mean ± spread (overrides --seed)")
    ap.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=["snippet", "single"],
                    help="which models to train (see ARMS): the default pair has the same frames per step; "
                         "single-same-frames sees the snippet model's very frames, each alone; *-same-videos "
                         "match the number of videos per step instead")
    ap.add_argument("--jobs", type=int, default=1, help="training runs at once (each one CPU thread)")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--reuse", action="store_true", help="score runs already in OUT instead of training again")
    ap.add_argument("--dilations", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--marigold-video", action="store_true",
                    help="instead: Marigold's video mode vs frame by frame on whole videos (issue 10)")
    ap.add_argument("--frames", type=int, default=48, help="--marigold-video: frames per video")
    ap.add_argument("--path", choices=("random", "dolly"), default="random",
                    help="--marigold-video: camera path of the test videos (dolly: the visible depth range changes)")
    ap.add_argument("--size", type=int, nargs=2, default=(48, 64), metavar=("H", "W"),
                    help="--marigold-video: frame size (the processing resolution is the longer side)")
    ap.add_argument("--model", help="--marigold-video: a Marigold depth checkpoint trained earlier (skips training)")
    ap.add_argument("--oracle", type=float, metavar="GAMMA",
                    help="--marigold-video: feed the core exact per-frame-normalised depth with a per-frame random "
                         "power exp(GAMMA·N(0,1)) instead of the model's predictions (the model only sets the type)")
    ap.add_argument("--window", type=int, help="--marigold-video: the video mode's solve window (default: the core's; "
                    "at least the frame count: one global solve, no streaming)")
    a = ap.parse_args(argv)
    if a.marigold_video:
        rows = marigold_video_mode(Path(a.base), Path(a.out), a.steps, a.videos, a.frames, a.seed, a.path,
                                   tuple(a.size), Path(a.model) if a.model else None, a.oracle, a.window, a.texture)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "marigold_video.json").write_text(json.dumps(rows, indent=2))
        what = f"oracle, flicker γ={a.oracle}" if a.oracle is not None else "tiny Marigold trained here"
        print(f"\n| {what}, {a.videos} held-out videos × {a.frames} frames {a.size[0]}×{a.size[1]}, {a.path} path "
              f"| AbsRel | δ1 | temporal error |\n|---|---|---|---|")
        base = [k for k in ("frames", "frames_batch") if k in rows]
        for k in (*base, "video"):
            m = rows[k]
            print(f"| {k} | {m['abs_rel']:.4f} | {m['delta1']:.4f} | {m['temporal_error']:.4f} |")
        for k in base:
            ratio = rows["video"]["temporal_error"] / rows[k]["temporal_error"]
            print(f"temporal error, video mode / {k}: {ratio:.3f}")
        return 0
    out, base, size = Path(a.out), Path(a.base), (48, 64)
    from .video_eval import synthetic_videos

    seeds = a.seeds if a.seeds else [a.seed]
    arms = {k: ARMS[k] for k in a.arms}
    jobs = [(name, seed) for seed in seeds for name in arms]  # seed-major: the first seed's arms finish first
    todo = [(n, s) for n, s in jobs if not (a.reuse and (run_dir(out, n, s, len(seeds)) / "final").is_dir())]

    def _train(job):
        name, seed = job
        frames, per, joint = arms[name]
        return job, train(base, run_dir(out, name, seed, len(seeds)), frames, per * a.snippets_per_step, a.steps,
                          a.objective, size, seed, a.lr, a.texture, joint)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, a.jobs)) as pool:  # each job a training subprocess (OMP_NUM_THREADS=1 each)
        secs = dict(pool.map(_train, todo))
    videos = synthetic_videos(a.videos, 48, *size, split="heldout", texture=a.texture)
    rows = {"untrained": {"seeds": {"-": score(base, 1, videos, a.dilations, 4, 1, True)}}}
    for name, (frames, _, joint) in arms.items():
        rows[name] = {"label": arm_label(name, a.snippets_per_step), "seeds": {}}
        for seed in seeds:
            r = score(run_dir(out, name, seed, len(seeds)) / "final", frames if joint else 1, videos, a.dilations,
                      4, 1)
            rows[name]["seeds"][str(seed)] = r | {"train_s": round(secs.get((name, seed), float("nan")), 1)}
            print(name, seed, r, flush=True)
        rows[name]["mean"] = summarise(rows[name]["seeds"], a.dilations)
    for other in arms:  # the snippet model against every other arm, seed by seed
        if "snippet" in arms and other != "snippet" and len(seeds) > 1:
            rows[f"snippet − {other} (paired by seed)"] = {"mean": paired_difference(
                rows["snippet"]["seeds"], rows[other]["seeds"], a.dilations)}
    result = {"steps": a.steps, "objective": a.objective, "size": size, "videos": a.videos, "texture": a.texture,
              "lr": a.lr, "snippets_per_step": a.snippets_per_step, "seeds": seeds, "dilations": a.dilations,
              "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(markdown_table(result))
    return 0


# name → (frames sampled per snippet, snippets per step in units of --snippets-per-step, joint). "joint": the
# frames of a snippet share one normalisation, the self-attention and one loss alignment (the snippet model);
# otherwise each frame is alone (a single-frame model).
ARMS = {
    "snippet": (3, 1, True),  # B snippets × 3 frames: 3B frames, B videos per step
    "single": (1, 3, True),  # 3B single frames from 3B videos: the same frames per step (the budget)
    "single-same-frames": (3, 1, False),  # the snippet model's very frames (same seed), each frame alone
    "snippet-same-videos": (3, 3, True),  # 3B snippets: as many videos per step as "single", 3× the frames
    "single-same-videos": (1, 1, True),  # B single frames: as many videos per step as "snippet", ⅓ the frames
}


def arm_label(name: str, b: int) -> str:
    return {"snippet": f"snippet model ({b} snippets × 3 frames per step)",
            "single": f"single-frame model ({3 * b} frames from {3 * b} videos per step)",
            "single-same-frames": f"single-frame model on the snippet model's frames ({b} snippets × 3 frames per "
                                  "step, each frame alone)",
            "snippet-same-videos": f"snippet model, {3 * b} snippets × 3 frames per step ({3 * b} videos, 3× frames)",
            "single-same-videos": f"single-frame model, {b} frames per step ({b} videos, ⅓ frames)"}[name]


def run_dir(out: Path, name: str, seed: int, n_seeds: int) -> Path:
    return out / (f"{name}-seed{seed}" if n_seeds > 1 else name)


def summarise(per_seed: dict, dilations: list[int]) -> dict:
    """Per dilation and metric: mean, sample standard deviation and range over the seeds."""
    import numpy as np

    out = {}
    for g in dilations:
        key = f"dilation {g}"
        out[key] = {}
        for m in ("abs_rel", "delta1", "temporal_error"):
            v = np.array([r[key][m] for r in per_seed.values()], float)
            out[key][m] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                           "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}
    return out


def paired_difference(a: dict, b: dict, dilations: list[int]) -> dict:
    """``a − b`` per seed (the same seed: the same held-out videos, training noise and data order where the arms
    share them), summarised as :func:`summarise` does."""
    diff = {}
    for seed in a:
        if seed in b:
            diff[seed] = {f"dilation {g}": {m: a[seed][f"dilation {g}"][m] - b[seed][f"dilation {g}"][m]
                                            for m in ("abs_rel", "delta1", "temporal_error")} for g in dilations}
    return summarise(diff, dilations)


def markdown_table(result: dict) -> str:
    """Per seed and mean ± sample std over seeds (the spread: [min, max])."""
    lines = [f"| tiny models, our trainer, CPU, synthetic videos, {result['steps']} steps ({result['objective']}) | "
             "seed | snippet dilation | AbsRel | δ1 | temporal error |", "|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        label = r.get("label", name)
        for seed, m in r.get("seeds", {}).items():
            for g in result["dilations"]:
                x = m[f"dilation {g}"]
                lines.append(f"| {label} | {seed} | {g} | {x['abs_rel']:.4f} | {x['delta1']:.4f} | "
                             f"{x['temporal_error']:.4f} |")
        if "mean" in r and (len(r.get("seeds", {})) > 1 or "seeds" not in r):
            for g in result["dilations"]:
                x = r["mean"][f"dilation {g}"]
                cell = [f"{x[k]['mean']:+.4f} ± {x[k]['std']:.4f} [{x[k]['min']:+.4f}, {x[k]['max']:+.4f}]"
                        if "seeds" not in r else f"{x[k]['mean']:.4f} ± {x[k]['std']:.4f}"
                        for k in ("abs_rel", "delta1", "temporal_error")]
                lines.append(f"| **{label}** | mean ± std | {g} | " + " | ".join(cell) + " |")
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
