r"""The quality bench: what our small model (``train/configs/cpu_small.yaml``) sees, against the baselines, on
synthetic scenes with exact ground truth. ``python -m bench.quality [--seeds 0 1 2] [--only image,react,video,
tiles,stereo,snippet,completion] [--cache DIR] [--no-write] [--small-recipe small-fov]``.

Not a test: it builds its models once into ``--cache`` (default ``.cache/quality``) and reuses them:

1. the tiny Marigold checkpoint (``../shared/tools/make_marigold_checkpoint.py --size tiny``, for its text
   encoder and tokenizer), the tiny SD2 stand-in (``python -m train.tiny --vae-steps 400``) and the small one
   (``--size small --vae-steps 600``);
2. for every ``--seeds`` seed, the small recipe's model and the tiny recipe's model (``configs/cpu_tiny.yaml``),
   and for the snippet row the small snippet model (``configs/cpu_small_snippet.yaml``) and its single-frame control,
   each trained by ``python -m train.finetune`` in its own process. A cached model is reused while its recipe
   (its settings, not its comments), seed and base (the stand-in's architecture and fitting arguments) are
   unchanged: a stamp beside it holds their hash; delete the cache folder after changing how ``train.tiny`` fits.

Then the rows (held-out synthetic scenes with flat-coloured surfaces, never seen in training; every number
is our own models, trained here on the CPU on synthetic data; no real weights):

* ``image``: AbsRel and δ1 (one least-squares scale and shift per scene, in depth) of each model on 32 scenes at
  96×128, against the training set's mean map (the constant a model that ignores its input converges to);
* ``react``: does the model look at the picture? Mean |difference| of its 0..1 maps between the same scene at
  0.8× and 1.2× exposure, between two noise seeds, and between different scenes (8 scenes);
* ``video``: whole held-out clips with a moving camera (32 frames), plain, with each per-frame appearance change of
  real footage (``train.video_eval.appearance_flicker``: ±20 % exposure, white balance, sensor noise, JPEG) and
  all four, and with a ball rolling across (``moving``): frame by frame with one seed (the same noise for every
  frame), frame by frame with a seed per frame (plain and exposure clips only), our video mode
  (``marigold.predict_video``: co-aligned Marigold), and the temporal fusion (``marigold.video.fusion``) after
  the video mode and after the frames; AbsRel and δ1 with one alignment per clip, the temporal error on all,
  static and moving pixels, and Video Depth Anything's TAE (``train.video_metrics``);
* ``tiles`` (bench/quality_tiles.py): held-out scenes, plain rooms and rooms with fine structure, rendered at 4×
  and 8× the model's 128 px: one pass, and ``marigold.predict_tiled`` at 2×, 4× (and 8×) with both merges
  (co-aligned whole tiles; the detail merge, the default); AbsRel against the full-resolution truth (one
  alignment), the error on depth edges (AbsRel on pixels within 2 px of a depth jump: the detail), edge sharpness
  (the depth step across true jumps over the truth's) and the seam ratio (mean |gradient| across tile borders over
  that inside tiles; 1 = no seam);
* ``stereo``: a second camera 0.1 m to the right renders the true right view; the left view warped with the
  model's depth (aligned to the truth by one scale and shift, disparity = f·b/Z, our z-buffered forward warp and
  background fill, ``marigold.geometry.stereo``) against that true view: mean |error| on the right view's valid
  pixels, against the same warp with the true depth (the warp's own floor), the mean map, and no warp at all;
* ``snippet``: the small snippet model (RollingDepth's cross-frame attention over 3 frames, one normalisation per
  snippet) against the single-frame model trained on as many frames per step from the same videos
  (``train.video_benchmark``'s protocol and its ``score``): held-out clips, snippets at dilations 4 and 8, one
  alignment per snippet in disparity; AbsRel, δ1, temporal error, and their difference paired by training seed;
* ``completion``: metric depth from 10 / 100 / 1000 points drawn from the truth of 8 held-out scenes
  (:func:`marigold.complete`, Marigold-DC in its one-step mode, 50 iterations: the small model is end-to-end
  fine-tuned), snapped to the points (the library's default; the published method's own map beside it, "no
  snap"), against the least-squares fit of the plain prediction to the same points (:func:`marigold.fit_metric`,
  plain and snapped) and the points interpolated alone (nearest, linear): MAE and RMSE in metres
  (:mod:`train.completion_eval`);
* ``modalities`` (only when asked, ``--only modalities``: nine more trainings): normals (``cpu_small.yaml`` with
  ``--task normals``, on a small stand-in whose VAE was also fitted on normal maps) and intrinsics
  (``configs/cpu_small_iid_lighting.yaml`` for lighting: each target's MSE weighed against its mean map's error,
  1200 steps; ``cpu_small_iid_appearance.yaml``, 1600 steps, for appearance, on one whose VAE was also fitted on the intrinsic layers and blends of material maps; lighting on
  one whose VAE is twice as wide, which the residual needs) on 192 held-out scenes with exact targets
  (``MODALITY_SCENES``), against the training set's mean map (``train.evaluate.mean_map_baseline``): angular error,
  MSE per target, and the interval a new draw of scenes would move each ratio in (:func:`scene_interval`).

It prints one Markdown table per row kind, writes ``bench/quality_results.json`` and replaces the "Quality"
section of ``bench/RESULTS.md`` (date, CPU flags, seeds, seconds spent building).

``--small-recipe small-fov``: the small model's rows measure the small recipe trained on views of many fields of
view instead (``configs/cpu_small_fov.yaml``, issue #35: a tile is a narrow view), cached as ``small-fov-sN``
beside the small recipe's models (its stamp hashes its own config), its rows named ``small-fov``, written to
``bench/quality_small-fov_results.json`` and a section of its own in ``bench/RESULTS.md``. ``--small-recipe
small-zoom``: the small recipe's model of each seed fine-tuned 1000 more steps on that mix
(``configs/cpu_small_zoom.yaml``; the small models are built first when missing), its own files likewise;
``small-zoom-grad``: the same with multi-scale gradient matching (``e2e.grad_weight`` 0.5) beside the L1;
``small-zoom-grad2``: with weight 2.

``--round-trip STAND_IN/vae --modalities TASK``: trains and writes nothing; prints that VAE's own round trip of the
task's held-out targets against the mean map, the best any model behind it can score (:func:`modality_round_trip`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "bench" / "quality_results.json"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
SIZE = (96, 128)  # the synthetic scenes' native size, the small recipe's training size
# name → (config, stand-in, extra arguments to train.finetune)
RECIPES = {"small": ("cpu_small.yaml", "sd2-small", []), "tiny": ("cpu_tiny.yaml", "sd2-tiny", []),
           # the small recipe on views of many fields of view (--small-recipe small-fov)
           "small-fov": ("cpu_small_fov.yaml", "sd2-small", []),
           # the small recipe's model of the same seed taught zoomed views after the fact (--small-recipe small-zoom)
           "small-zoom": ("cpu_small_zoom.yaml", "sd2-small", []),
           # the same with multi-scale gradient matching beside the affine-invariant L1 (sharper depth steps)
           "small-zoom-grad": ("cpu_small_zoom.yaml", "sd2-small", ["--set", "e2e.grad_weight=0.5"]),
           "small-zoom-grad2": ("cpu_small_zoom.yaml", "sd2-small", ["--set", "e2e.grad_weight=2.0"]),
           "snippet": ("cpu_small_snippet.yaml", "sd2-small", []),
           # the snippet model's control: the same frames per step, each from its own video, normalised alone
           "single-frame": ("cpu_small_snippet.yaml", "sd2-small", ["--set", "snippet.frames=1", "--batch-size", "9"]),
           # the other modalities on small stand-ins whose VAEs were fitted on their targets too
           "normals": ("cpu_small.yaml", "sd2-small-normals", ["--task", "normals"]),
           # the lighting models behind a VAE twice as wide: the small one's round trip of the residual is 2.9x the
           # mean map's error, so no model decoded through it can pass (docs/lab/2026-12-05-intrinsics-and-normals.md)
           "iid-lighting": ("cpu_small_iid_lighting.yaml", "sd2-small-iid-wide", ["--task", "iid-lighting"]),
           "iid-appearance": ("cpu_small_iid_appearance.yaml", "sd2-small-iid", ["--task", "iid-appearance"])}
MODALITIES = ("normals", "iid-lighting", "iid-appearance")
# a recipe that fine-tunes another recipe's trained model of the same seed (its --base) instead of a stand-in
AFTER = {"small-zoom": "small", "small-zoom-grad": "small", "small-zoom-grad2": "small"}
# what --small-recipe may name: the model of the small model's rows
SMALL_RECIPES = ("small", "small-fov", "small-zoom", "small-zoom-grad", "small-zoom-grad2")
# what the modality table shows per task: (metric, lower is better)
HEADLINE = {"normals": [("normals_mean_angle", True), ("normals_median_angle", True), ("normals_a11.25", False)],
            "iid-lighting": [("albedo_mse", True), ("shading_mse", True), ("residual_mse", True)],
            "iid-appearance": [("albedo_mse", True), ("material_mse", True)]}
BASES = {"sd2-tiny": ["--vae-steps", "400"], "sd2-small": ["--size", "small", "--vae-steps", "600"],
         # 3000 VAE steps: with 600 the VAE's own round trip of held-out targets was the IID models' ceiling (albedo
         # 0.75-0.77x the training mean map's MSE, material 1.20x, i.e. worse than the constant); with 3000 it is
         # 0.41-0.48x and 0.47x (train/README.md, "Other modalities"); 6000 since the material blends joined the fit
         # (with 3000 they took the albedo round trip back to 0.83x; "Sixth run")
         "sd2-small-iid": ["--size", "small", "--vae-steps", "6000", "--iid"],
         # the same pool behind a VAE twice as wide; 9000 steps: with 3000 its round trip kept 36 % of a photo's colour
         # and took residual / albedo / shading to 0.42 / 0.35 / 0.19x the mean map, the lighting models' floor; with
         # 9000, 65 % and 0.13 / 0.18 / 0.10x (docs/lab/2026-12-07-normals-lighting-ceiling.md)
         "sd2-small-iid-wide": ["--size", "small-wide", "--vae-steps", "9000", "--iid"],
         # the small stand-in's own VAE (never fitted on normal maps) takes held-out true normals to 54.9° by a
         # plain round trip, where the normals models then sat (54.2°, worse than the mean map's 38.0°)
         "sd2-small-normals": ["--size", "small", "--vae-steps", "3000", "--normals"]}
ROWS = ("image", "react", "video", "tiles", "stereo", "snippet", "completion", "modalities")
DEFAULT_ROWS = ROWS[:-1]  # the modality models (9 more trainings) only when asked: --only modalities
HELDOUT = 1_000_003  # train.data.synthetic.SPLIT_SEEDS["heldout"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cpu_flags() -> str:
    from marigold.core.devices import cpu_flags as read_flags

    flags = read_flags()
    if flags is None:
        return platform.processor() or platform.machine()
    have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{os.cpu_count()} cores, " + (" ".join(have) or "no AVX2")


# ---------------------------------------------------------------------------------------------------------------
# Building the models (each step in its own process, cached)


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
    return h.hexdigest()[:16]


def _fresh(folder: Path, key: str) -> bool:
    stamp = folder.parent / f"{folder.name}.stamp"
    return folder.is_dir() and stamp.is_file() and stamp.read_text().strip() == key


def _run(cmd: list[str], what: str, threads: int | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"bench.quality: {what} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def _build(folder: Path, key: str, cmd: list[str], what: str, spent: dict, threads: int | None = None) -> Path:
    if _fresh(folder, key):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    log(f"building {what} ...")
    spent[folder.name] = round(_run(cmd, what, threads), 1)
    (folder.parent / f"{folder.name}.stamp").write_text(key + "\n")
    log(f"  {what}: {spent[folder.name]:.0f} s")
    return folder


def _train_cmd(cfg: Path, base: Path, seed: int, extra: list[str], run: Path) -> list[str]:
    return [sys.executable, "-m", "train.finetune", "--config", str(cfg), "--base", str(base), "--seed", str(seed),
            "--no-progress", "--checkpoint-every", "0", *extra, "--output", str(run)]


def build_models(cache: Path, seeds: list[int], recipes: list[str], jobs: int = 1) -> tuple[dict, dict]:
    """→ ({(recipe, seed): final checkpoint folder}, {what: seconds spent building it in this run}). ``jobs``:
    trainings run side by side, each with ``cores // jobs`` threads (the stand-ins are built first, alone; a
    recipe of ``AFTER`` last, from the model it continues, which is built too)."""
    later = list(dict.fromkeys(r for r in recipes if r in AFTER))
    recipes = list(dict.fromkeys([r for r in recipes if r not in AFTER] + [AFTER[r] for r in later]))
    cache.mkdir(parents=True, exist_ok=True)
    spent: dict[str, float] = {}
    shared = Path(os.environ.get("MARIGOLD_SHARED", ROOT.parent / "shared"))
    tool = shared / "tools" / "make_marigold_checkpoint.py"
    if not tool.is_file():
        raise SystemExit(f"bench.quality: {tool} not found; set MARIGOLD_SHARED to the shared folder.")
    mg = _build(cache / "tiny-marigold", _digest(tool.read_bytes()),
                [sys.executable, str(tool), str(cache / "tiny-marigold"), "--size", "tiny", "--dtype", "fp32"],
                "the tiny Marigold checkpoint", spent)
    from train.config import load_file
    from train.data.synthetic import MATERIALS_VERSION
    from train.tiny import IID_POOL, SMALL_UNET, SMALL_VAE, WIDE_VAE

    bases = {}
    for name in sorted({RECIPES[r][1] for r in recipes}):  # the stand-ins
        # the tiny one comes from the shared tool
        arch = json.dumps([SMALL_UNET, WIDE_VAE if "small-wide" in BASES[name] else SMALL_VAE], sort_keys=True)
        # a stand-in fitted on the intrinsic layers is rebuilt (and its models retrained) when their renderer changes
        data = f"materials {MATERIALS_VERSION}, pool {IID_POOL}" if "--iid" in BASES[name] else ""
        key = _digest(arch, " ".join(BASES[name]), (cache / "tiny-marigold.stamp").read_text(), data)
        bases[name] = (_build(cache / name, key, [sys.executable, "-m", "train.tiny", str(cache / name), "--from",
                                                  str(mg)] + BASES[name], f"the {name} stand-in", spent), key)

    def recipe_key(cfg: Path, extra: list[str], seed: int, base_key: str) -> str:  # a loss change retrains
        return _digest(json.dumps(load_file(cfg), sort_keys=True), " ".join(extra), str(seed), base_key,
                       (ROOT / "train" / "losses.py").read_bytes())

    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))

    def build_all(todo: list) -> None:
        with ThreadPoolExecutor(max(1, jobs)) as pool:  # threads wait on the training processes
            list(pool.map(lambda t: _build(*t, spent, threads if jobs > 1 else None), todo))

    models, todo = {}, []
    for recipe in recipes:
        config, base, extra = RECIPES[recipe]
        cfg = ROOT / "train" / "configs" / config
        # a modality's base widened to its channels and not trained (seed-independent): what training must beat
        runs = [(s, f"s{s}", []) for s in seeds] + ([(seeds[0], "untrained", ["--max-steps", "0"])]
                                                   if recipe in MODALITIES else [])
        for seed, tag, more in runs:
            run = cache / f"{recipe}-{tag}"
            key = recipe_key(cfg, extra + more, seed, bases[base][1])
            todo.insert(0 if more else len(todo), (run, key, _train_cmd(cfg, bases[base][0], seed, extra + more, run),
                                                   f"the {recipe} recipe's model, "
                                                   f"{'untrained' if more else f'seed {seed}'}"))
            models[recipe, seed if not more else "untrained"] = run / "final"
    build_all(todo)
    todo = []  # then the recipes that continue one of those models (a retrained base retrains them: its stamp)
    for recipe in later:
        config, _, extra = RECIPES[recipe]
        cfg = ROOT / "train" / "configs" / config
        for seed in seeds:
            run, base = cache / f"{recipe}-s{seed}", models[AFTER[recipe], seed]
            key = recipe_key(cfg, extra, seed, (base.parent.parent / f"{base.parent.name}.stamp").read_text())
            todo.append((run, key, _train_cmd(cfg, base, seed, extra, run),
                         f"the {recipe} recipe's model, seed {seed}"))
            models[recipe, seed] = run / "final"
    build_all(todo)
    return models, spent


# ---------------------------------------------------------------------------------------------------------------
# Measuring


def _normalised(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    m = valid & (depth > 1e-3)
    return np.where(m, (depth - depth[m].min()) / max(float(np.ptp(depth[m])), 1e-9), 0.0)


def mean_map(n: int = 256, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The mean normalised depth of ``n`` training scenes ``[H,W]``: what a model blind to its input learns."""
    from train.data.synthetic import SyntheticDataset

    ds = SyntheticDataset(n, *size, "train", "flat")
    return np.mean([_normalised(s.depth, s.valid) for s in (ds[i] for i in range(n))], 0)


def _depth_of(model, rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    import marigold

    return marigold.predict(model, rgb, seed=seed).prediction[0, 0].numpy()  # [H,W] 0..1


def image_row(model, n: int = 32) -> dict:
    from train.evaluate import evaluate_model, synthetic_eval_set
    from train.metrics import fit_scale_shift

    m = evaluate_model(model, synthetic_eval_set(n, "heldout", *SIZE, texture="flat"), seed=0)["metrics"]
    # the alignment may flip a map (a negative scale): the AbsRel above cannot tell an inverted map (near = 1,
    # against the depth convention near = 0) from a right one, so count them (a second set: its items are a
    # generator, used up by the evaluation)
    flipped = [fit_scale_shift(_depth_of(model, it.rgb), it.depth, it.valid & (it.depth > 1e-3))[0] < 0
               for it in synthetic_eval_set(n, "heldout", *SIZE, texture="flat").items]
    return {"abs_rel": m["abs_rel"], "delta1": m["delta1"], "inverted": float(np.mean(flipped))}


def mean_map_row(const: np.ndarray, n: int = 32) -> dict:
    from train.evaluate import synthetic_eval_set
    from train.metrics import evaluate_prediction, mean_metrics

    rows = [evaluate_prediction(const, it.depth, it.valid, min_depth=1e-3)
            for it in synthetic_eval_set(n, "heldout", *SIZE, texture="flat").items]
    m = mean_metrics(rows)
    return {"abs_rel": m["abs_rel"], "delta1": m["delta1"]}


def react_row(model, n: int = 8) -> dict:
    """Mean |Δ| of the 0..1 maps: exposure 0.8× vs 1.2×, noise seed 0 vs 1, scene i vs scene i+1."""
    from train.data.synthetic import render

    scenes = [render(HELDOUT + i, *SIZE, texture="flat").rgb for i in range(n)]
    base = [_depth_of(model, s) for s in scenes]
    exposure = np.mean([np.abs(_depth_of(model, np.clip(s * 0.8, 0, 1)) - _depth_of(model, np.clip(s * 1.2, 0, 1)))
                        .mean() for s in scenes])
    seeds = np.mean([np.abs(_depth_of(model, s, seed=1) - b).mean() for s, b in zip(scenes, base)])
    scene = np.mean([np.abs(base[i] - base[(i + 1) % n]).mean() for i in range(n)])
    return {"exposure": float(exposure), "seed": float(seeds), "scene": float(scene),
            "exposure_over_seed": float(exposure / max(seeds, 1e-12)),
            "scene_over_exposure": float(scene / max(exposure, 1e-12))}


def flicker(rgb: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """``[T,H,W,3]`` → each frame's exposure times its own 1 ± ``strength`` (uniform), clipped to 0..1."""
    g = np.random.default_rng(seed).uniform(1 - strength, 1 + strength, (rgb.shape[0], 1, 1, 1))
    return np.clip(rgb * g, 0, 1).astype(np.float32)


# the video row's clips: name → (a ball rolling across, per-frame appearance changes of train.video_eval)
VIDEO_CLIPS = {"moving camera": (False, ()),
               "moving camera + ±20% exposure flicker": (False, ("exposure",)),
               "+ white balance flicker": (False, ("white balance",)),
               "+ sensor noise": (False, ("noise",)),
               "+ JPEG (quality 25-60 per frame)": (False, ("jpeg",)),
               "+ all four": (False, ("exposure", "white balance", "noise", "jpeg")),
               "+ a ball rolling across": (True, ()),
               "+ a ball rolling across + all four": (True, ("exposure", "white balance", "noise", "jpeg"))}
VIDEO_METRICS = ("abs_rel", "delta1", "temporal_error", "temporal_error_static", "temporal_error_moving", "tae")


def _video_modes(model, rgb: np.ndarray, modes: tuple[str, ...], strength: float) -> dict[str, np.ndarray]:
    """Each mode's ``[T,H,W]`` prediction of one clip ``rgb`` ``[T,H,W,3]``."""
    import inspect

    import torch

    import marigold
    from marigold.video.fusion import fuse_depth

    x = torch.from_numpy(rgb).permute(0, 3, 1, 2)  # [T,3,H,W]
    # today's video mode: per-frame scale and shift only (where the fusion is wired in, with it switched off)
    wired = "temporal_strength" in inspect.signature(marigold.predict_video).parameters
    plain = {"temporal_strength": 0.0} if wired else {}
    out: dict[str, np.ndarray] = {}
    if any(m.startswith("frames, one seed") for m in modes):
        out["frames, one seed"] = np.stack([_depth_of(model, f) for f in rgb])
    if "frames, a seed per frame" in modes:  # one seed for the batch: every frame draws its own noise
        out["frames, a seed per frame"] = marigold.predict(model, x, seed=0).prediction[:, 0].numpy()
    if any(m.startswith("video mode") for m in modes):
        # at the checkpoint's own 128 px, as the frames run (the video mode takes a checkpoint's own resolution
        # when it is not the presets' 768)
        out["video mode"] = marigold.predict_video(model, x, seed=0, **plain).depth[:, 0].numpy()
    for base in ("frames, one seed", "video mode"):  # the fusion of marigold.video.fusion on each's output
        if f"{base} + fusion" in modes:
            out[f"{base} + fusion"] = fuse_depth(x, torch.from_numpy(out[base]), strength).numpy()
    return {m: out[m] for m in modes}


def video_row(model, clips: int = 3, frames: int = 32, kinds: list[str] | None = None,
              modes: tuple[str, ...] = ("frames, one seed", "frames, a seed per frame", "video mode",
                                        "video mode + fusion", "frames, one seed + fusion"),
              strength: float | None = None) -> dict:
    """Held-out clips (``kinds`` ⊆ :data:`VIDEO_CLIPS`, default all) through each of ``modes``: AbsRel, δ1 (one
    alignment per clip), temporal error (all, static and moving-object pixels) and VDA's TAE, means over clips."""
    from marigold.video.fusion import DEFAULT_STRENGTH
    from train.video_eval import appearance_flicker, synthetic_videos
    from train.video_metrics import evaluate_video

    strength = DEFAULT_STRENGTH if strength is None else strength
    sets = {moving: synthetic_videos(clips, frames, *SIZE, split="heldout", path="random", texture="flat",
                                     moving=moving) for moving in {VIDEO_CLIPS[k][0] for k in kinds or VIDEO_CLIPS}}
    out: dict[str, dict] = {}
    for kind in kinds or VIDEO_CLIPS:
        moving, flick = VIDEO_CLIPS[kind]
        # the seed-per-frame control only where the first table had it: it is the plain flicker's, not ours
        want = tuple(m for m in modes if m != "frames, a seed per frame" or kind in list(VIDEO_CLIPS)[:2])
        per: dict[str, list] = {m: [] for m in want}
        for i, c in enumerate(sets[moving]):
            rgb = appearance_flicker(c.rgb, flick, seed=i) if flick else c.rgb
            for mode, p in _video_modes(model, rgb, want, strength).items():
                m = evaluate_video(p, c.depth, c.valid, space="depth", intrinsics=c.intrinsics, poses=c.poses,
                                   moving=c.moving, motion=c.motion, with_tae=True)
                per[mode].append([m.get(k, np.nan) for k in VIDEO_METRICS])
        # a metric a clip set does not have (TE on moving pixels without the ball) is left out, never NaN
        out[kind] = {mode: {k: float(x) for k, x in zip(VIDEO_METRICS, np.array(v, float).mean(0)) if np.isfinite(x)}
                     for mode, v in per.items()}
    return out


def _edges(depth: np.ndarray, valid: np.ndarray, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` px of a depth jump (> 5 % between neighbours): where detail lives."""
    d = np.where(valid, depth, 0)
    jump = np.zeros(d.shape, bool)
    jump[:, 1:] |= np.abs(np.diff(d, axis=1)) > 0.05 * np.maximum(d[:, 1:], d[:, :-1])
    jump[1:] |= np.abs(np.diff(d, axis=0)) > 0.05 * np.maximum(d[1:], d[:-1])
    out = jump.copy()
    for _ in range(width):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out & valid


def tiles_row(model, **kw) -> dict:
    """The tiles row: bench/quality_tiles.py (scenes at 4× and 8×, both merges, edge sharpness)."""
    from bench.quality_tiles import tiles_row as row

    return row(model, log=log, **kw)


def stereo_row(models: dict, const: np.ndarray, n: int = 8, baseline: float = 0.1) -> dict:
    """Mean |error| (0..1 RGB) of the synthesised right view against the true one, per depth source."""
    import torch

    from marigold.geometry.stereo import forward_warp
    from train.data.synthetic import focal_px, render
    from train.metrics import fit_scale_shift

    per: dict[str, list] = {}
    for i in range(n):
        seed = HELDOUT + i
        left = render(seed, *SIZE, texture="flat")
        right = render(seed, *SIZE, texture="flat", camera_x=baseline)
        f = focal_px(seed, SIZE[1])
        mask = left.valid & (left.depth > 1e-3)
        sources = {"true depth": left.depth.astype(np.float64), "mean map": const}
        sources |= {name: _depth_of(m, left.rgb) for name, m in models.items()}
        err_none = np.abs(left.rgb - right.rgb)[right.valid].mean()
        per.setdefault("no warp (the left view)", []).append(float(err_none))
        for name, p in sources.items():
            if name == "true depth":
                z = np.where(mask, left.depth, left.depth[mask].max())
            else:
                a, b = fit_scale_shift(p, left.depth, mask)
                z = np.clip(a * p + b, left.depth[mask].min() * 0.5, None)  # aligned depth, metres
            z = torch.from_numpy(z.astype(np.float32))[None, None]  # [1,1,H,W]
            shift = -f * baseline / z  # [1,1,H,W] a point moves left when the camera moves right
            view, _ = forward_warp(torch.from_numpy(left.rgb).permute(2, 0, 1)[None], shift, z)
            err = np.abs(view[0].permute(1, 2, 0).numpy() - right.rgb)[right.valid].mean()
            per.setdefault(name, []).append(float(err))
    return {name: float(np.mean(v)) for name, v in per.items()}


@functools.lru_cache(maxsize=None)
def _modality_baseline(task: str, n: int, train_mean: int) -> tuple[list, dict]:
    """The held-out scenes and the training mean map's scores of ``task`` (``mean_map_baseline``'s dict: metrics and
    per-scene rows): the same for every seed's model and the untrained one, so rendered and scored once per task."""
    import marigold
    from train.data.synthetic import SyntheticDataset
    from train.evaluate import mean_map_baseline, synthetic_target_samples

    held = synthetic_target_samples(n, "heldout", *SIZE, texture="flat")
    ds = SyntheticDataset(train_mean, *SIZE, "train", "flat", materials=True)
    return held, mean_map_baseline(marigold.modality.get(task), [ds[i] for i in range(len(ds))], held)


# held-out scenes per modality row: the lighting residual is heavy-tailed (a few scenes hold most highlights): blocks
# of 16 scenes put one model at 0.60x to 1.23x its mean map, the first 96 at 0.86x and the next 96 at 1.05x (docs/lab,
# the residual's sample); the row also gives the interval a new draw of scenes would move its ratio in
MODALITY_SCENES = 192


def modality_row(model, task: str, n: int = MODALITY_SCENES, train_mean: int = 200) -> dict:
    """One modality model on held-out synthetic scenes with every target, against the training set's mean map
    (the best constant answer; ``train.evaluate.mean_map_baseline``): {"model": metrics, "mean map": metrics,
    "per scene": {"model": {metric: [one per scene]}, "mean map": {...}}} (the scenes, for :func:`scene_interval`)."""
    from train.evaluate import evaluate_targets

    held, base = _modality_baseline(task, n, train_mean)
    got = evaluate_targets(model, held, steps=1, processing_resolution=max(SIZE), seed=0)
    keys = [k for k, _ in HEADLINE[task]]
    return {"model": {k: got["metrics"][k] for k in keys}, "mean map": {k: base["metrics"][k] for k in keys},
            "per scene": {"model": {k: [r[k] for r in got["rows"]] for k in keys},
                          "mean map": {k: [r[k] for r in base["rows"]] for k in keys}}}


def scene_interval(per_seed: list[dict], metric: str, draws: int = 2000) -> tuple[float, float] | None:
    """The 5-95 % interval of model ÷ mean map for ``metric`` when the held-out scenes are drawn again (a bootstrap
    over scenes, the same draw for every seed, the seeds' model means over the mean map's): how much of a ratio is
    the scenes that happened to be held out. None for rows measured before the scenes were kept."""
    if not all("per scene" in r for r in per_seed):
        return None
    model = np.array([r["per scene"]["model"][metric] for r in per_seed], dtype=float)  # [seeds, scenes]
    base = np.array(per_seed[0]["per scene"]["mean map"][metric], dtype=float)  # [scenes]
    idx = np.random.default_rng(0).integers(0, base.size, (draws, base.size))  # [draws, scenes]
    ratios = model[:, idx].mean(axis=(0, 2)) / base[idx].mean(axis=1)  # [draws]
    return float(np.percentile(ratios, 5)), float(np.percentile(ratios, 95))


def modality_round_trip(vae, task: str, n: int = MODALITY_SCENES, train_mean: int = 200) -> dict:
    """A stand-in VAE's own round trip of ``task``'s held-out true targets (each encoded as the modality encodes
    it, to the latent's mode and back): what a perfect UNet behind that VAE would score, the ceiling of every model
    trained on it; {"round trip": metrics, "mean map": metrics}, scored as :func:`modality_row` scores a model."""
    import torch

    import marigold
    from train import metrics as M
    from train.evaluate import score_targets, target_map

    held, base = _modality_baseline(task, n, train_mean)
    base = base["metrics"]
    modality = marigold.modality.get(task)
    rows = []
    with torch.inference_mode():
        for s in held:
            parts = []
            for t in modality.targets:
                x = torch.from_numpy(t.encode(target_map(s, modality, t.name)))[None]  # [1,3,H,W] -1..1
                y = vae.decode(vae.encode(x).latent_dist.mode()).sample  # [1,3,H,W]
                parts.append(t.decode(y)[0].numpy())  # [C,H,W]
            rows.append(score_targets(modality, np.concatenate(parts), s))
    got = M.mean_metrics(rows)
    keys = [k for k, _ in HEADLINE[task]]
    return {"round trip": {k: got[k] for k in keys}, "mean map": {k: base[k] for k in keys}}


def snippet_row(folders: dict, videos: int = 6, dilations: tuple[int, ...] = (4, 8)) -> dict:
    """The snippet model against its single-frame control (``train.video_benchmark``'s protocol: held-out clips,
    4 snippets of 3 frames per clip and dilation, one alignment per snippet in disparity): {arm: {dilation: {AbsRel,
    δ1, TE}}}. ``folders``: {arm: final checkpoint folder}; an arm named ``single-frame`` predicts frame by frame."""
    from train.video_benchmark import score
    from train.video_eval import synthetic_videos

    clips = synthetic_videos(videos, 48, *SIZE, split="heldout", texture="flat")
    return {arm: score(folder, 1 if arm == "single-frame" else 3, clips, list(dilations), 4, 1)
            for arm, folder in folders.items()}


# ---------------------------------------------------------------------------------------------------------------
# Reporting


COMPLETION_POINTS = (10, 100, 1000)
COMPLETION_STEPS = 50  # Marigold-DC's own step count (the small model runs it in seconds)
# the small model is end-to-end fine-tuned at t = 999 alone: the published walk down the schedule would ask it for
# timesteps it never learned, so the instrument runs completion's one-step mode (marigold.complete, one_step=True)


def completion_row(model, n: int = 8, points: tuple[int, ...] = COMPLETION_POINTS,
                   steps: int = COMPLETION_STEPS) -> dict:
    """Metric depth from K measured points (drawn as Marigold-DC draws them) on held-out scenes: completion
    (:func:`marigold.complete`, snapped to the points, and its map before the snap) against the least-squares fit
    of the plain prediction (plain and snapped) and the points interpolated alone; MAE / RMSE in the scenes'
    metres, per scene then averaged (:mod:`train.completion_eval`)."""
    from train.completion_eval import BASELINES, evaluate_completion, synthetic_dc_items

    return {str(k): evaluate_completion(model, synthetic_dc_items(n, k), steps=steps, one_step=True,
                                        baselines=BASELINES)["means"] for k in points}


def _ms(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.4f} ± {a.std():.4f}" if len(a) > 1 else f"{a.mean():.4f}"


def markdown(res: dict) -> str:
    seeds = res["seeds"]
    when = res["date"]
    by_date: dict[str, list[str]] = {}
    dates = dict(res.get("row_dates") or {})
    if "modalities" in dates and res.get("modality_dates"):  # a task rerun alone: each task says its own date
        day = dates.pop("modalities")
        dates.update({t: res["modality_dates"].get(t, day) for t in res.get("modalities", {})})
    for row, day in dates.items():
        by_date.setdefault(day, []).append(row)
    if len(by_date) > 1:  # rows measured by different runs
        when = "; ".join(f"{', '.join(rows)} {day}" for day, rows in sorted(by_date.items()))
    lines = [f"Measured {when} on {res['cpu']}; training seeds {seeds} (mean ± std over seeds where there "
             f"are several); our own models trained here on synthetic data, no real weights."]
    if "image" in res:
        lines += ["", "Held-out synthetic scenes (32, flat-coloured, 96×128), one alignment per scene:", "",
                  "| model | AbsRel | δ1 | AbsRel ÷ mean map | AbsRel ÷ tiny recipe | maps inverted (near = 1) |",
                  "|---|---|---|---|---|---|"]
        mm = res["image"]["mean map"]["abs_rel"]
        tiny = np.mean([r["abs_rel"] for r in res["image"].get("tiny", [])]) if res["image"].get("tiny") else None
        for name, rows in res["image"].items():
            rows = rows if isinstance(rows, list) else [rows]
            ar = [r["abs_rel"] for r in rows]
            inv = f"{np.mean([r['inverted'] for r in rows]):.0%}" if "inverted" in rows[0] else "–"
            lines.append(f"| {name} | {_ms(ar)} | {_ms([r['delta1'] for r in rows])} | {np.mean(ar) / mm:.2f} | "
                         + (f"{np.mean(ar) / tiny:.2f} |" if tiny else "– |") + f" {inv} |")
    if "react" in res:
        lines += ["", "Does it look at the picture? Mean |Δ| of the 0..1 maps (8 held-out scenes):", "",
                  "| model | exposure 0.8× vs 1.2× | noise seed 0 vs 1 | scene vs scene | exposure ÷ seed | "
                  "scene ÷ exposure |", "|---|---|---|---|---|---|"]
        for name, rows in res["react"].items():
            lines.append(f"| {name} | " + " | ".join(_ms([r[k] for r in rows]) for k in
                                                      ("exposure", "seed", "scene", "exposure_over_seed",
                                                       "scene_over_exposure")) + " |")
    if "video" in res:
        lines += ["", "Held-out clips (3 × 32 frames, moving camera), one alignment per clip; TE = temporal error "
                  "(all pixels, static, on the rolling ball); TAE = Video Depth Anything's (a fraction; VDA prints "
                  "×100); fusion = marigold.video.fusion:",
                  "", "| model | clips | mode | AbsRel | δ1 | TE | TE static | TE moving | TAE |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, per_seed in res["video"].items():
            for kind in per_seed[0]:
                for mode in per_seed[0][kind]:
                    vals = [s[kind][mode] for s in per_seed]
                    lines.append(f"| {name} | {kind} | {mode} | " + " | ".join(
                        _ms([v[k] for v in vals]) if all(k in v for v in vals) else "–"
                        for k in VIDEO_METRICS) + " |")
    if "tiles" in res:
        from bench.quality_tiles import markdown as tiles_markdown

        for name, per_seed in res["tiles"].items():
            lines += tiles_markdown(per_seed, name)
    if "stereo" in res:
        lines += ["", "Stereo: the right view synthesised from the left and a depth map, mean |error| against the "
                  "true right view (8 held-out scenes, baseline 0.1 m):", "", "| depth source | mean |error| |",
                  "|---|---|"]
        for name, vals in res["stereo"].items():
            lines.append(f"| {name} | {_ms(vals)} |")
    if "snippet" in res:
        lines += ["", "Snippet model (RollingDepth's cross-frame attention, 3 frames) against the single-frame model "
                  "trained on the same frames per step (held-out clips, 6 × 4 snippets per dilation, one alignment "
                  "per snippet in disparity):", "", "| model | dilation | AbsRel | δ1 | TE |", "|---|---|---|---|---|"]
        for arm, per_seed in res["snippet"].items():
            for g in per_seed[0]:
                vals = [s[g] for s in per_seed]
                lines.append(f"| {arm} | {g.split()[-1]} | " + " | ".join(
                    _ms([v[k] for v in vals]) for k in ("abs_rel", "delta1", "temporal_error")) + " |")
        arms = list(res["snippet"])
        if len(arms) == 2:  # paired by training seed: the same held-out clips and data order
            a, b = (res["snippet"][x] for x in arms)
            for g in a[0]:
                d = {k: [x[g][k] - y[g][k] for x, y in zip(a, b)] for k in ("abs_rel", "delta1", "temporal_error")}
                lines.append(f"| {arms[0]} − {arms[1]} (paired by seed) | {g.split()[-1]} | " + " | ".join(
                    _ms(d[k]) for k in ("abs_rel", "delta1", "temporal_error")) + " |")
    if "modalities" in res:
        def iid_fit(task: str) -> str:  # what the stand-in of an IID task's models was fitted on (older runs: one)
            pool = res.get("iid_pools", {}).get(task, res.get("iid_pool") or 1)
            args = res.get("iid_bases", {}).get(task) or res.get("bases", {}).get("sd2-small-iid") or []
            blends = {1: "", 2: " and blends of 2–8 material maps"}.get(pool, " and blends of 2–64 material maps")
            wide = " (a VAE twice as wide)" if "small-wide" in args else ""
            return blends + (f", {args[args.index('--vae-steps') + 1]} VAE steps" if "--vae-steps" in args else "") \
                + wide

        fits = {t: iid_fit(t) for t in res["modalities"] if t.startswith("iid-")}
        one_fit = len(set(fits.values())) <= 1
        fit = next(iter(fits.values()), "") if one_fit else \
            " (" + "; ".join(f"{t}: {f.removeprefix(' and ')}" for t, f in fits.items()) + ")"
        versions = sorted(set(res.get("materials", {}).values()))
        if len(versions) == 1:
            fit += f"; intrinsic renders of train/data/synthetic.py's MATERIALS_VERSION {versions[0]}"
        normals = {"sd2-small-normals": ", the normals models on one fitted on normal maps too",
                   "sd2-small": ", the normals models on the small stand-in itself (its VAE never fitted on normal "
                                "maps)"}.get(res.get("modality_bases", {}).get("normals"), "")
        on = "one whose VAE was" if one_fit else "ones whose VAEs were"
        lines += ["", "Other modalities (held-out scenes with exact targets, 96×128, as many as the scenes column "
                  "says; the small stand-in, the IID "
                  f"models on {on} fitted on the intrinsic layers too{fit}{normals}), against the "
                  "training set's mean map; ratio < 1 is better than the constant where lower is better:", "",
                  "| task | metric | scenes | model | mean map | untrained | model ÷ mean map | 90 % over scenes |",
                  "|---|---|---|---|---|---|---|---|"]
        for task, per_seed in res["modalities"].items():
            # rows measured before the per-scene scores were kept all saw 16 scenes
            scenes = len(per_seed[0]["per scene"]["model"][HEADLINE[task][0][0]]) if "per scene" in per_seed[0] else 16
            for k, lower in HEADLINE[task]:
                got = [r["model"][k] for r in per_seed]
                base = per_seed[0]["mean map"][k]
                raw = res.get("modalities_untrained", {}).get(task, {}).get(k)
                ci = scene_interval(per_seed, k)
                lines.append(f"| {task} | {k}{'' if lower else ' (higher is better)'} | {scenes} | {_ms(got)} | "
                             f"{base:.4f} | "
                             f"{'' if raw is None else f'{raw:.4f}'} | {np.mean(got) / base:.2f} | "
                             f"{'–' if ci is None else f'{ci[0]:.2f}–{ci[1]:.2f}'} |")
    if "completion" in res:
        runs = next(iter(res["completion"].values()))  # the one small model's (small or small-fov)
        cpu = res.get("cpu_of", {}).get("completion", res["cpu"])
        where = f" on {cpu}" if cpu != res["cpu"] else ""
        lines += ["", f"Metric depth from K measured points{where} (8 held-out scenes, 96×128, points drawn as "
                  f"Marigold-DC draws them; completion: {COMPLETION_STEPS} iterations of its one-step mode, the small "
                  f"model being end-to-end fine-tuned; snapped to the points, the library's default, and its map "
                  f"before the snap: the published method's): MAE in metres; ratio < 1: completion is better:",
                  "", "| points | completion | no snap | fit of the plain prediction | fit + snap | nearest | linear "
                  "| ÷ fit | ÷ nearest | ÷ linear | ÷ fit + snap |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for k in runs[0]:
            mae = {m: [r[k][m]["mae"] for r in runs] for m in runs[0][k]}
            c = np.mean(mae["completion"])

            def cell(m: str) -> str:
                return _ms(mae[m]) if m in mae else "–"

            def ratio(m: str) -> str:
                return f"{c / np.mean(mae[m]):.2f}" if m in mae else "–"

            lines.append(f"| {k} | {cell('completion')} | {cell('completion, no snap')} | {cell('fit')} | "
                         f"{cell('fit + snap')} | {cell('nearest')} | {cell('linear')} | {ratio('fit')} | "
                         f"{ratio('nearest')} | {ratio('linear')} | {ratio('fit + snap')} |")
    if res.get("spent"):
        lines += ["", "Wall seconds each model took to build (in the run that built it; trainings side by side share "
                  "the cores): " + ", ".join(f"{k} {v:.0f}" for k, v in res["spent"].items())
                  + f"; measuring took {res['measure_s']:.0f} s."]
    return "\n".join(lines)


def results_paths(small: str = "small") -> tuple[Path, str]:
    """(the results JSON, the RESULTS.md section's marker name) of a run whose small model is recipe ``small``:
    another recipe's results never overwrite the small recipe's."""
    if small == "small":
        return RESULTS_JSON, "quality"
    return RESULTS_JSON.with_name(f"quality_{small}_results.json"), f"quality-{small}"


def write_results_md(table: str, small: str = "small") -> None:
    _, mark = results_paths(small)
    head = ("## Quality: the small model (python -m bench.quality)" if small == "small" else
            f"## Quality: the small model, {' '.join([RECIPES[small][0], *RECIPES[small][2]])} "
            f"(python -m bench.quality --small-recipe {small})")
    start, end = f"<!-- {mark}:start -->", f"<!-- {mark}:end -->"
    text = RESULTS_MD.read_text() if RESULTS_MD.is_file() else ""
    block = f"{start}\n{table}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + f"\n\n{head}\n\n{block}\n"
    RESULTS_MD.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", default=",".join(DEFAULT_ROWS),
                    help=f"comma-separated rows: {', '.join(ROWS)} (default: all but modalities)")
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "quality")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    ap.add_argument("--jobs", type=int, default=2, help="trainings side by side (each with cores/jobs threads)")
    ap.add_argument("--small-recipe", default="small", choices=SMALL_RECIPES,
                    help="the recipe of the small model's rows: small (cpu_small.yaml), small-fov "
                         "(cpu_small_fov.yaml: views of many fields of view), small-zoom (the small model "
                         "fine-tuned on that mix, cpu_small_zoom.yaml), small-zoom-grad / small-zoom-grad2 (the "
                         "same with gradient matching, weight 0.5 / 2); results of all but small go to files of "
                         "their own")
    ap.add_argument("--modalities", default=",".join(MODALITIES),
                    help=f"the modalities row's tasks, comma-separated (default: {','.join(MODALITIES)}); the "
                         "tasks not named keep their saved results")
    ap.add_argument("--round-trip", type=Path, metavar="VAE",
                    help="print a stand-in VAE folder's own round trip of the --modalities tasks' held-out targets "
                         "against the mean map (a perfect UNet's score behind it) and exit; trains nothing")
    a = ap.parse_args(argv)
    rows = [r.strip() for r in a.only.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        ap.error(f"--only: unknown row {bad[0]!r}; choose from {', '.join(ROWS)}")
    tasks = [t.strip() for t in a.modalities.split(",") if t.strip()]
    if [t for t in tasks if t not in MODALITIES]:
        ap.error(f"--modalities: unknown task {[t for t in tasks if t not in MODALITIES][0]!r}; "
                 f"choose from {', '.join(MODALITIES)}")

    import torch

    import marigold
    from train.data.synthetic import MATERIALS_VERSION
    from train.tiny import IID_POOL

    torch.set_flush_denormal(True)
    if a.round_trip is not None:
        if not (a.round_trip / "config.json").is_file():
            ap.error(f"--round-trip: {a.round_trip} is not a VAE folder (no config.json); give <stand-in>/vae")
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(str(a.round_trip)).eval()
        print(f"{a.round_trip}: its own round trip of held-out targets ({MODALITY_SCENES} scenes) against the training "
              "mean map\n")
        print("| task | metric | round trip | mean map | ÷ mean map |\n|---|---|---|---|---|")
        for task in tasks:
            got = modality_round_trip(vae, task)
            for k, _ in HEADLINE[task]:
                rt, mm = got["round trip"][k], got["mean map"][k]
                print(f"| {task} | {k} | {rt:.4f} | {mm:.4f} | {rt / mm:.2f} |")
        return 0
    sm = a.small_recipe  # the small model's recipe, and the name its rows go under
    results_json, _ = results_paths(sm)
    recipes = ([sm, "tiny"] if {"image", "react", "stereo"} & set(rows) else
               [sm] if {"video", "tiles", "completion"} & set(rows) else []) + \
        (["snippet", "single-frame"] if "snippet" in rows else []) + (tasks if "modalities" in rows else [])
    paths, spent = build_models(a.cache, a.seeds, recipes, a.jobs)
    images = [r for r in recipes if r in (sm, "tiny")]
    t0 = time.perf_counter()
    res: dict = {"date": date.today().isoformat(), "cpu": cpu_flags(), "seeds": a.seeds, "spent": spent,
                 "bases": {name: BASES[name] for name in BASES if name in {RECIPES[r][1] for r in recipes}},
                 "materials": {r: MATERIALS_VERSION for r in recipes if r.startswith("iid-")},
                 # which stand-in each modality's models grew from (rows of older runs keep theirs)
                 "modality_bases": {t: RECIPES[t][1] for t in tasks} if "modalities" in rows else {},
                 "row_dates": {row: date.today().isoformat() for row in rows},
                 "modality_dates": {t: date.today().isoformat() for t in tasks} if "modalities" in rows else {},
                 "small_recipe": RECIPES[sm][0]}
    if any(r.startswith("iid-") for r in recipes):  # what the IID stand-in's VAE was fitted on (train.tiny), per task
        res["iid_pools"] = {r: IID_POOL for r in recipes if r.startswith("iid-")}
        res["iid_bases"] = {r: BASES[RECIPES[r][1]] for r in recipes if r.startswith("iid-")}
    const = mean_map() if {"image", "stereo"} & set(rows) else None
    for seed in a.seeds:
        models = {r: marigold.load(paths[r, seed], device="cpu", dtype="fp32") for r in images}
        small = models.get(sm)
        if "image" in rows:
            img = res.setdefault("image", {"mean map": mean_map_row(const)})
            for r, m in models.items():
                img.setdefault(r, []).append(image_row(m))
            log(f"seed {seed} image: " + ", ".join(f"{r} {img[r][-1]['abs_rel']:.4f}" for r in models))
        if "react" in rows:
            for r, m in models.items():
                res.setdefault("react", {}).setdefault(r, []).append(react_row(m))
            log(f"seed {seed} react: {res['react'][sm][-1]}")
        if "video" in rows:
            res.setdefault("video", {}).setdefault(sm, []).append(video_row(small))
            log(f"seed {seed} video done")
        if "tiles" in rows:
            res.setdefault("tiles", {}).setdefault(sm, []).append(tiles_row(small))
            log(f"seed {seed} tiles done")
        if "stereo" in rows:
            st = stereo_row(models, const)
            for k, v in st.items():
                res.setdefault("stereo", {}).setdefault(k, []).append(v)
            log(f"seed {seed} stereo: {st}")
        if "completion" in rows:
            res.setdefault("completion", {}).setdefault(sm, []).append(completion_row(small))
            log(f"seed {seed} completion: " + ", ".join(f"{k} points {v['completion']['mae']:.4f} m"
                                                         for k, v in res["completion"][sm][-1].items()))
        if "modalities" in rows:
            for task in tasks:
                m = marigold.load(paths[task, seed], device="cpu", dtype="fp32")
                res.setdefault("modalities", {}).setdefault(task, []).append(modality_row(m, task))
                log(f"seed {seed} {task}: {res['modalities'][task][-1]}")
        if "snippet" in rows:
            sn = snippet_row({r: paths[r, seed] for r in ("snippet", "single-frame")})
            for k, v in sn.items():
                res.setdefault("snippet", {}).setdefault(k, []).append(v)
            log(f"seed {seed} snippet: {sn}")
    if "modalities" in rows:  # the base widened and not trained: what training must beat besides the mean map
        for task in tasks:
            m = marigold.load(paths[task, "untrained"], device="cpu", dtype="fp32")
            res.setdefault("modalities_untrained", {})[task] = modality_row(m, task)["model"]
            log(f"untrained {task}: {res['modalities_untrained'][task]}")
    res["measure_s"] = time.perf_counter() - t0
    if results_json.is_file() and not a.no_write:  # rows not measured in this run stay as they were
        old = json.loads(results_json.read_text())
        if old.get("seeds") == a.seeds:
            merged = {k: {**old.get(k, {}), **res[k]} for k in ("modalities", "modalities_untrained", "bases",
                                                                "materials", "modality_bases", "iid_pools",
                                                                "iid_bases", "modality_dates")
                      if k in res}
            old_rows = old.get("row_dates") or {r: old["date"] for r in ROWS if r in old}
            merged["row_dates"] = {**old_rows, **res["row_dates"]}
            res = {**old, **res, **merged, "spent": {**old.get("spent", {}), **spent}}
    table = markdown(res)
    print(table)
    if not a.no_write:
        results_json.write_text(json.dumps(res, indent=1, default=float) + "\n")
        write_results_md(table, sm)
        log(f"wrote {results_json.relative_to(ROOT)} and the Quality section of {RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
