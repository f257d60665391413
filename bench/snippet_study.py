"""Issue #34, item 3: where the small snippet model's clip AbsRel cost comes from, and its RollingDepth path.

    python -m bench.snippet_study align --arm snippet=DIR --arm single-frame=DIR [...] --out runs/align.json
    python -m bench.snippet_study video --snippet DIR --single DIR --out runs/video.json

Not a test; the models are bench.quality's snippet pair (``--only snippet``, cached in ``.cache/quality``) and the
extra trainings of docs/lab/2026-12-07-snippet-cost.md.

``align``: bench.quality's snippet protocol (6 held-out clips of 48 frames, 4 snippets of 3 frames per clip and
dilation 4 and 8; the snippet model predicts each snippet jointly, an arm whose name starts with ``single`` frame by
frame, the same noise) scored several ways on the same predictions: one alignment per snippet in disparity (the
bench's), in depth, in disparity with the aligned depth capped at the clip's farthest true depth (a fitted
disparity ≤ 0 otherwise becomes a depth of 1e12), and one alignment per clip (the clip's 4 snippets together).

``video``: whole held-out clips (bench.quality's VIDEO_CLIPS kinds) through the snippet model's RollingDepth path
(``marigold.predict_video``: snippets, co-alignment, and the "full" preset's refinement) and the single-frame
control through the Marigold path (the same checkpoint read as a Marigold disparity model: video mode with its
default temporal fusion, and frames one by one); one alignment per clip in disparity; AbsRel, δ1, TE (all and
moving pixels), TAE (``train.video_metrics.evaluate_video``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = (96, 128)  # bench.quality.SIZE: the clips' size and the models' training size
VIDEO_KINDS = ("moving camera", "+ all four", "+ a ball rolling across + all four")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _load_parts(folder: Path):
    import torch

    from marigold.core import checkpoint as ckpt

    unet = ckpt.load_component(folder, "unet", torch.float32).eval()
    vae = ckpt.load_component(folder, "vae", torch.float32).eval()
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    return unet, vae, ckpt.empty_text_embedding(folder), {k: v for k, v in sched.items() if not k.startswith("_")}


def snippet_predictions(folder: Path, joint: bool, clips, dilations=(4, 8), per_video: int = 4) -> dict:
    """{dilation: [(clip index, frame indices, prediction [3,H,W])]}: train.video_eval.evaluate_snippets's
    predictions (the same snippets, noise and seed), kept so that every scoring reads the same maps."""
    import torch

    from train.snippet_infer import predict_snippets, snippet_clips

    unet, vae, text, sched = _load_parts(folder)
    out: dict = {}
    with torch.no_grad():
        for g in dilations:
            for ci, c in enumerate(clips):
                for idx in snippet_clips(c.rgb.shape[0], 3, g, per_video):
                    rgb = torch.from_numpy(c.rgb[idx]).permute(0, 3, 1, 2)[None]  # [1,3,3,H,W]
                    if joint:
                        p = predict_snippets(unet, vae, text, sched, rgb, steps=1, seed=0)[0]  # [3,H,W]
                    else:  # each frame alone, the noise a snippet would get
                        p = predict_snippets(unet, vae, text, sched, rgb.transpose(0, 1), steps=1, seed=0)[:, 0]
                    out.setdefault(g, []).append((ci, idx, p.numpy()))
    return out


def _metrics(pred, gt, valid, space: str, cap: bool, K=None, poses=None) -> dict:
    from train.video_metrics import evaluate_video

    mask = valid & (gt > 1e-3)
    far = float(gt[mask].max()) if cap else np.inf  # cap: no aligned depth beyond the clip's farthest truth
    m = evaluate_video(pred, gt, valid, space=space, intrinsics=K, poses=poses, max_depth=far)
    return {k: m[k] for k in ("abs_rel", "delta1", "temporal_error") if k in m}


def score_ways(preds: dict, clips) -> dict:
    """{dilation: {way: {metric: mean over snippets (per clip for the per-clip ways)}}} plus, per snippet way,
    the median over snippets and the share of valid pixels whose fitted disparity is ≤ 0 (depth blown up)."""
    from train.metrics import fit_scale_shift

    out = {}
    for g, rows in preds.items():
        ways: dict[str, list] = {}
        blown = []
        for ci, idx, p in rows:
            c = clips[ci]
            gt, va = c.depth[idx], c.valid[idx]
            for name, space, cap in (("snippet, disparity", "disparity", False), ("snippet, depth", "depth", False),
                                     ("snippet, disparity, capped", "disparity", True)):
                ways.setdefault(name, []).append(_metrics(p, gt, va, space, cap, c.intrinsics, c.poses[idx]))
            mask = va & (gt > 1e-3)
            s, t = fit_scale_shift(p, np.where(mask, 1.0 / np.maximum(gt, 1e-3), 0.0), mask)
            blown.append(float(np.mean((p[mask] * s + t) <= 0)))
        for ci, c in enumerate(clips):  # one alignment per clip: its snippets' frames together (no TE: not a run)
            mine = [(idx, p) for cj, idx, p in rows if cj == ci]
            idx = [k for i, _ in mine for k in i]
            pred = np.concatenate([p for _, p in mine])  # [4·3,H,W]
            for space in ("disparity", "depth"):
                ways.setdefault(f"clip, {space}", []).append(_metrics(pred, c.depth[idx], c.valid[idx], space, False))
        res = {w: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for w, v in ways.items()}
        for w in ("snippet, disparity", "snippet, depth"):
            res[w]["abs_rel_median"] = float(np.median([r["abs_rel"] for r in ways[w]]))
            res[w]["abs_rel_per_snippet"] = [round(r["abs_rel"], 4) for r in ways[w]]
        res["blown_pixels"] = float(np.mean(blown))
        out[f"dilation {g}"] = res
    return out


def marigold_view(folder: Path, into: Path) -> Path:
    """The RollingDepth-layout checkpoint at ``folder`` read as a Marigold depth model predicting disparity (the
    single-frame control's weights through the Marigold path): its parts linked, a Marigold model_index.json."""
    into.mkdir(parents=True, exist_ok=True)
    for part in ("unet", "vae", "scheduler", "text_encoder", "tokenizer"):
        if not (into / part).exists():
            os.symlink((folder / part).resolve(), into / part)
    index = json.loads((folder / "model_index.json").read_text())
    index.update({"_class_name": "MarigoldDepthPipeline", "prediction_type": "disparity", "scale_invariant": True,
                  "shift_invariant": True, "default_denoising_steps": 1, "default_processing_resolution": max(SIZE)})
    (into / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return into


VIDEO_METRICS = ("abs_rel", "delta1", "temporal_error", "temporal_error_moving", "tae")


def video_paths(snippet: Path, single: Path, clips: int = 3, frames: int = 32, kinds=VIDEO_KINDS,
                refine: bool = True) -> dict:
    """{kind: {path: {metric: mean over clips}}} (see the module docstring)."""
    import torch

    import marigold
    from bench.quality import VIDEO_CLIPS
    from train.video_eval import appearance_flicker, synthetic_videos
    from train.video_metrics import evaluate_video

    tmp = Path(tempfile.mkdtemp(prefix="snippet-study-"))
    try:
        rd = marigold.load(snippet, device="cpu", dtype="fp32")
        views = {"snippet": marigold.load(marigold_view(snippet, tmp / "snippet"), device="cpu", dtype="fp32"),
                 "single": marigold.load(marigold_view(single, tmp / "single"), device="cpu", dtype="fp32")}
        res = max(SIZE)  # the models' own 128 px (the presets' 768 is for 768-px checkpoints)
        paths = {
            "snippet model, RollingDepth path (fast: dilations 1, 25)":
                lambda x: marigold.predict_video(rd, x, preset="fast", processing_resolution=res, seed=0),
            "snippet model, frames one by one":
                lambda x: _frames(views["snippet"], x),
            "single-frame model, Marigold video mode (default fusion)":
                lambda x: marigold.predict_video(views["single"], x, processing_resolution=res, seed=0),
            "single-frame model, frames one by one":
                lambda x: _frames(views["single"], x)}
        if refine:
            paths["snippet model, RollingDepth path (full: dilations 1, 10, 25 + 10 refinement steps)"] = \
                lambda x: marigold.predict_video(rd, x, preset="full", processing_resolution=res, seed=0)
        sets = {mv: synthetic_videos(clips, frames, *SIZE, split="heldout", path="random", texture="flat",
                                     moving=mv) for mv in {VIDEO_CLIPS[k][0] for k in kinds}}
        out: dict = {}
        for kind in kinds:
            moving, flick = VIDEO_CLIPS[kind]
            per: dict[str, list] = {}
            for i, c in enumerate(sets[moving]):
                rgb = appearance_flicker(c.rgb, flick, seed=i) if flick else c.rgb
                x = torch.from_numpy(rgb).permute(0, 3, 1, 2)  # [T,3,H,W]
                for name, run in paths.items():
                    with torch.no_grad():
                        o = run(x)
                    pred, space = (o if isinstance(o, tuple) else (o.depth[:, 0].numpy(), o.space))
                    m = evaluate_video(pred, c.depth, c.valid, space=space, intrinsics=c.intrinsics, poses=c.poses,
                                       moving=c.moving, motion=c.motion, with_tae=True)
                    per.setdefault(name, []).append([m.get(k, np.nan) for k in VIDEO_METRICS])
            out[kind] = {n: {k: float(v) for k, v in zip(VIDEO_METRICS, np.array(r, float).mean(0)) if np.isfinite(v)}
                         for n, r in per.items()}
            log(f"{kind}: " + json.dumps(out[kind]))
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _frames(model, x) -> tuple[np.ndarray, str]:
    import marigold

    pred = np.stack([marigold.predict(model, f, seed=0).prediction[0, 0].numpy() for f in x])  # [T,H,W]
    return pred, "disparity"


def main(argv=None) -> int:
    import torch

    torch.set_flush_denormal(True)
    ap = argparse.ArgumentParser(prog="python -m bench.snippet_study", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    al = sub.add_parser("align", help="the snippet protocol's predictions, scored several ways")
    al.add_argument("--arm", action="append", required=True, metavar="NAME=DIR",
                    help="a final checkpoint folder; a NAME starting with 'single' predicts frame by frame")
    al.add_argument("--per-frame", action="append", default=[], metavar="NAME=DIR",
                    help="a checkpoint scored frame by frame whatever its name (a snippet model's frames alone)")
    al.add_argument("--clips", type=int, default=6, help="held-out clips (the first 6 are bench.quality's)")
    al.add_argument("--dilations", type=int, nargs="+", default=[4, 8])
    al.add_argument("--out", required=True)
    vi = sub.add_parser("video", help="the RollingDepth path beside the Marigold path on whole clips")
    vi.add_argument("--snippet", required=True)
    vi.add_argument("--single", required=True)
    vi.add_argument("--clips", type=int, default=3)
    vi.add_argument("--no-refine", action="store_true", help="leave out the 'full' preset (its refinement)")
    vi.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "align":
        from train.video_eval import synthetic_videos

        clips = synthetic_videos(a.clips, 48, *SIZE, split="heldout", texture="flat")
        res = {}
        for spec, alone in [(s, False) for s in a.arm] + [(s, True) for s in a.per_frame]:
            name, _, folder = spec.partition("=")
            if not (Path(folder) / "unet").is_dir():
                ap.error(f"--arm {spec}: no checkpoint folder (no unet/) at {folder}")
            joint = not (alone or name.startswith("single"))
            res[name] = score_ways(snippet_predictions(Path(folder), joint, clips, tuple(a.dilations)), clips)
            log(f"{name}: " + json.dumps({g: {w: round(v["abs_rel"], 4) for w, v in r.items() if isinstance(v, dict)}
                                          for g, r in res[name].items()}))
    else:
        res = video_paths(Path(a.snippet), Path(a.single), a.clips, refine=not a.no_refine)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
