r"""Evaluate a Marigold checkpoint: depth with the standard affine-invariant protocol; other modalities as their
entry says (:class:`Evaluation`: normals and intrinsics per target on held-out scenes, text-grounded segmentation
by IoU per prompt, mIoU and cIoU, see :mod:`train.segmentation_eval`).

    python -m train.evaluate --checkpoint runs/demo/final --dataset nyu:/data/nyu_depth_v2_labeled.mat \
        --dataset kitti:/data/kitti --dataset middlebury [--steps 4 --ensemble 1 --processing-resolution 768]

Data sets, each read in its published format (``name:path``):

==========  ==============================================================================  ===========  =====
name        layout                                                                          depth range  crop
==========  ==============================================================================  ===========  =====
nyu         ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 / HDF5: ``images`` [N,3,W,H] uint8,   1e-3..10 m   Eigen
            ``depths`` [N,W,H] m); test split = ``testNdxs`` of ``splits.mat`` beside it
            (1-based; all frames when absent)
kitti       Eigen test split file ``eigen_test_files_with_gt.txt`` in ROOT (``rgb depth          1e-5..80 m   Eigen
            focal`` per line, paths relative to ROOT, ``None`` = no ground truth); depth
            16-bit PNG / 256; KITTI benchmark crop 352×1216 first
eth3d       ``SCENE/images/dslr_images/*.JPG`` with ``SCENE/ground_truth_depth/dslr_images/  1e-5..inf    –
            *.JPG`` = raw little-endian float32 6048×4032 (inf = invalid)
scannet     ``SCENE/color/N.jpg`` with ``SCENE/depth/N.png`` (16-bit, mm)                    1e-3..10 m   –
diode       ``**/NAME.png`` with ``NAME_depth.npy`` ([H,W,1] m) and ``NAME_depth_mask.npy``  0.6..350 m   –
middlebury  ``skimage.data.stereo_motorcycle()`` (Middlebury 2014, quarter size): depth =    0..inf       –
            f·B / (d + doffs), f = 994.978 px, doffs = 31.086 px, B = 193.001 mm
synthetic   held-out scenes of the training renderer (``synthetic[:N[:flat]]``)              0..inf       –
==========  ==============================================================================  ===========  =====

The prediction comes from :func:`marigold.predict` (the one sampling path of the project), is aligned by least
squares in depth (or disparity, ``--space disparity``), and scored with AbsRel, SqRel, RMSE, RMSE(log), δ1-3.

Video sets (RollingDepth's protocol, :mod:`train.video_metrics`: one alignment per video in the model's space,
AbsRel and δ1 over all its frames, and the temporal error where poses are known)::

    python -m train.evaluate --checkpoint CKPT --dataset synthetic-video:4 --dataset bonn:/data/bonn \
        --video-mode frames|video [--max-frames 110]

``synthetic-video[:N]`` (held-out synthetic videos, 48 frames, exact poses), ``video-folder:PATH``,
``tartanair:PATH``, ``scannet-video:PATH``, ``bonn:PATH``, ``pointodyssey:PATH``, ``dydtof:PATH``
(:mod:`train.data.video_sets`). ``frames`` runs the model on each frame alone; ``video`` runs
:func:`marigold.video.pipeline.predict_video` (Marigold's video mode; snippets with co-alignment for RollingDepth
checkpoints).

Depth completion (metric depth from sparse measurements, Marigold-DC; MAE and RMSE per image, averaged), on the
sparse-input sets of :mod:`train.completion_eval` (``kitti-dc``, ``void``, ``nyu-dc``, ``scannet-dc``, …)::

    python -m train.evaluate --checkpoint CKPT --complete --dataset kitti-dc:/data/kitti [--baseline fit]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marigold.errors import InputError

from . import metrics as M
from .data.common import target_map
# the sets moved to eval_sets.py; their names stay importable from here
from .eval_sets import (MOTORCYCLE_BASELINE_MM, MOTORCYCLE_DOFFS, MOTORCYCLE_F, EvalItem, EvalSet,  # noqa: F401
                        diode_items, eth3d_items, kitti_items, make_eval_set, middlebury_motorcycle, nyu_items,
                        scannet_items, synthetic_eval_set)

# ---------------------------------------------------------------------------------------------------------------
# Running a model


def score(eval_set: EvalSet, pred: np.ndarray, item: EvalItem, space: str | None = None) -> dict[str, float]:
    crop = eval_set.crop_mask(item.depth.shape)
    return M.evaluate_prediction(pred, item.depth, item.valid, space=space or eval_set.space,
                                 min_depth=eval_set.min_depth, max_depth=eval_set.max_depth, crop=crop)


def evaluate_model(model, eval_set: EvalSet, *, steps: int | None = None, ensemble_size: int = 1,
                   processing_resolution: int | None = None, seed: int = 0, space: str | None = None,
                   keep_images: int = 0) -> dict:
    """Predict every image with :func:`marigold.predict` and score it; returns per-image rows and the mean."""
    import marigold

    if space is None and getattr(model, "prediction_type", "depth") == "disparity":
        space = "disparity"
    rows, images = [], []
    for item in eval_set.items:
        out = marigold.predict(model, item.rgb, num_inference_steps=steps, ensemble_size=ensemble_size,
                               processing_resolution=processing_resolution, seed=seed)
        pred = out.prediction[0, 0].numpy()  # [H,W] 0..1, affine-invariant
        row = score(eval_set, pred, item, space)
        rows.append({"name": item.name, **row})
        if len(images) < keep_images:
            gt = np.where(item.valid, item.depth, 0)
            gt = gt / max(gt.max(), 1e-6)
            images.append(np.concatenate([item.rgb, np.repeat(pred[..., None], 3, 2),
                                          np.repeat(gt[..., None], 3, 2)], 1).clip(0, 1))
    metrics = M.mean_metrics([{k: v for k, v in r.items() if k != "name"} for r in rows])
    return {"dataset": eval_set.name, "n": len(rows), "metrics": metrics, "rows": rows, "images": images}


# ---------------------------------------------------------------------------------------------------------------
# Other modalities: normals and intrinsic images


def synthetic_target_samples(n: int = 8, split: str = "heldout", height: int = 96, width: int = 128,
                             texture: str = "flat", materials: bool = True) -> list:
    """Held-out synthetic scenes with every target (normals, albedo, shading, residual, material)."""
    from .data.synthetic import SyntheticDataset

    ds = SyntheticDataset(n, height, width, split, texture, materials=materials)
    return [ds[i] for i in range(len(ds))]


def scoring_space(modality, target: str) -> str:
    """Where prs-eth's IID evaluation scores a target: albedo in sRGB (the lighting model's linear albedo is
    gamma-encoded first), material (gamma-encoded by the appearance model) and the lighting layers in linear."""
    return "srgb" if target == "albedo" and modality.task == "intrinsics" else "linear"


def score_targets(modality, pred: np.ndarray, sample, mask: np.ndarray | None = None) -> dict[str, float]:
    """A prediction ``[C,H,W]`` of ``modality`` (each target in its own space) against a sample's targets
    (scene-linear, as loaders give them) → metrics per target: ``NAME_mse``, ``NAME_psnr`` ... for maps, angular
    metrics for unit vectors."""
    out, c = {}, 0
    valid = sample.valid if mask is None else mask
    for t in modality.targets:
        p = pred[c:c + t.channels].transpose(1, 2, 0)  # [H,W,C]
        c += t.channels
        gt = target_map(sample, modality, t.name)
        if gt is None:
            raise ValueError(f"sample {sample.name!r} has no {t.name!r} ground truth to score against.")
        gt = gt if gt.ndim == 3 else gt[..., None]
        if t.transfer == "unit":
            out.update({f"{t.name}_{k}": v for k, v in M.normals_metrics(p, gt, valid).items()})
            continue
        p = t.to_linear(p)  # [H,W,C] scene-linear
        if scoring_space(modality, t.name) == "srgb":
            p, gt = M.linear_to_srgb(p), M.linear_to_srgb(gt)
        out.update({f"{t.name}_{k}": v for k, v in M.image_metrics(np.clip(p, 0, 1), np.clip(gt, 0, 1),
                                                                   valid).items()})
    return out


def evaluate_targets(model, samples: list, *, steps: int | None = None, ensemble_size: int = 1,
                     processing_resolution: int | None = None, seed: int = 0, name: str = "synthetic") -> dict:
    """Predict every sample with :func:`marigold.predict` and score each target (normals and intrinsics)."""
    import marigold

    rows = []
    for s in samples:
        out = marigold.predict(model, s.rgb, num_inference_steps=steps, ensemble_size=ensemble_size,
                               processing_resolution=processing_resolution, seed=seed)
        rows.append({"name": s.name, **score_targets(model.modality, out.prediction[0].numpy(), s)})
    metrics = M.mean_metrics([{k: v for k, v in r.items() if k != "name"} for r in rows])
    return {"dataset": name, "n": len(rows), "metrics": metrics, "rows": rows, "images": []}


def mean_map_baseline(modality, train_samples: list, eval_samples: list) -> dict:
    """The best constant prediction: the training set's per-pixel mean of each target, scored like a model."""
    stacks = []
    for t in modality.targets:
        maps = [target_map(s, modality, t.name) for s in train_samples]
        # the mean in the space the model predicts, i.e. the best constant map for its latent MSE
        m = np.mean([t.from_linear(x if x.ndim == 3 else x[..., None]) for x in maps], axis=0)  # [H,W,C]
        if t.transfer == "unit":
            m = m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-6)
        stacks.append(m.transpose(2, 0, 1))
    pred = np.concatenate(stacks)  # [C,H,W]
    rows = [score_targets(modality, pred, s) for s in eval_samples]
    return {"dataset": "training-mean map", "n": len(rows), "metrics": M.mean_metrics(rows), "rows": rows}


def format_table(results: list[dict]) -> str:
    if results and not any(k in results[0]["metrics"] for k in M.METRICS):  # normals / intrinsics
        keys = list(results[0]["metrics"])
        head = f"{'dataset':<22}{'n':>6}" + "".join(f"{k[:16]:>17}" for k in keys)
        return "\n".join([head, "-" * len(head)] + [
            f"{r['dataset']:<22}{r['n']:>6}" + "".join(f"{r['metrics'].get(k, float('nan')):>17.4f}" for k in keys)
            for r in results])
    keys = list(M.METRICS) + (["temporal_error"] if any("temporal_error" in r["metrics"] for r in results) else [])
    head = f"{'dataset':<22}{'n':>6}" + "".join(f"{k[:14]:>15}" for k in keys)
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['dataset']:<22}{r['n']:>6}" + "".join(f"{r['metrics'].get(k, float('nan')):>15.4f}"
                                                                for k in keys))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# What a modality's entry says about scoring it


@dataclass(frozen=True)
class Evaluation:
    """How ``train.evaluate`` and the trainer's validation score one modality; named by its entry's ``evaluation``
    (``"module:attribute"``, imported here only, so the library never imports the trainer; or the object itself).

    ``evaluate(model, spec, options)``: one ``--dataset`` of the command line (``options``: its parsed arguments)
    → ``{"dataset", "n", "metrics", "rows", ...}``. ``validate(model, vcfg, size)``: the trainer's light validation
    (``vcfg``: the config's ``validation`` section; ``size``: the training resolution ``(h, w)``) → the same, with
    ``"images"`` (``[H,W,3]`` 0..1) if it has pictures to log. ``table(results)``: the printed table.
    """

    evaluate: Callable[[Any, str, argparse.Namespace], dict]
    validate: Callable[[Any, dict, tuple[int, int]], dict]
    table: Callable[[list[dict]], str] = format_table


def _depth_spec(model, spec: str, a: argparse.Namespace) -> dict:
    if spec.partition(":")[0] in VIDEO_SETS:
        return evaluate_video_spec(model, spec, a)
    res = evaluate_model(model, make_eval_set(spec, a.max_images), steps=a.steps, ensemble_size=a.ensemble,
                         processing_resolution=a.processing_resolution, seed=a.seed, space=a.space)
    res.pop("images")
    return res


def _depth_validation(model, vcfg: dict, size: tuple[int, int]) -> dict:
    return evaluate_model(model, synthetic_eval_set(vcfg["num_images"], split=vcfg["split"], texture=vcfg["texture"]),
                          steps=vcfg["steps"], ensemble_size=vcfg["ensemble_size"],
                          processing_resolution=vcfg["processing_resolution"], seed=0, keep_images=2)


def _targets_spec(model, spec: str, a: argparse.Namespace) -> dict:
    name, _, path = spec.partition(":")
    if name != "synthetic":
        raise SystemExit(f"{a.checkpoint} is a {model.modality.name} checkpoint; train.evaluate scores it "
                         f"on synthetic[:N[:TEXTURE]] (held-out scenes with every target); got {spec!r}.")
    n, _, texture = path.partition(":")
    samples = synthetic_target_samples(int(n) if n else (a.max_images or 8), texture=texture or "flat")
    res = evaluate_targets(model, samples, steps=a.steps, ensemble_size=a.ensemble,
                           processing_resolution=a.processing_resolution, seed=a.seed)
    res.pop("images")
    return res


def _targets_validation(model, vcfg: dict, size: tuple[int, int]) -> dict:
    samples = synthetic_target_samples(vcfg["num_images"], vcfg["split"], *size, texture=vcfg["texture"] or "flat")
    return evaluate_targets(model, samples, steps=vcfg["steps"], ensemble_size=vcfg["ensemble_size"],
                            processing_resolution=vcfg["processing_resolution"])


# the scoring of entries that name none: depth-like (affine) targets by the depth protocol (benchmarks, video sets);
# any other maps (normals, intrinsics, a new modality's) per target against the synthetic scenes' renders
DEPTH_EVALUATION = Evaluation(_depth_spec, _depth_validation)
TARGETS_EVALUATION = Evaluation(_targets_spec, _targets_validation)


def evaluation_for(modality) -> Evaluation:
    """The :class:`Evaluation` a modality's entry names (its ``evaluation``), else the one its targets call for."""
    named = modality.evaluation
    if named is None:
        return DEPTH_EVALUATION if modality.ensemble == "affine" else TARGETS_EVALUATION
    if isinstance(named, str):
        import importlib

        module, _, attr = named.partition(":")
        try:
            named = getattr(importlib.import_module(module), attr or "EVALUATION")
        except (ImportError, AttributeError) as e:
            raise InputError(f"modality {modality.name!r} names its evaluation {modality.evaluation!r}, which "
                             f"cannot be imported: {e}") from None
    if not isinstance(named, Evaluation):
        raise InputError(f"modality {modality.name!r}: `evaluation` must name a train.evaluate.Evaluation; got "
                         f"{type(named).__name__}.")
    return named


VIDEO_SETS = ("synthetic-video", "video-folder", "tartanair", "scannet-video", "bonn", "pointodyssey", "dydtof")


def evaluate_video_spec(model, spec: str, a) -> dict:
    """One video set of the command line → per-video rows and means (see the module docstring)."""
    from .video_eval import clips_of, evaluate_clips, synthetic_videos

    name, _, path = spec.partition(":")
    kw = dict(num_inference_steps=a.steps, processing_resolution=a.processing_resolution, seed=a.seed)
    lo, hi = 1e-3, np.inf
    if name == "synthetic-video":
        clips = synthetic_videos(int(path) if path else (a.max_images or 4), a.max_frames or 48)
    else:
        from .data.video import build_video_dataset

        ds = build_video_dataset({"name": name, "path": path})
        lo, hi = getattr(ds, "min_depth", lo), getattr(ds, "max_depth", hi)
        clips = clips_of(ds, a.max_images, a.max_frames)
    if a.video_mode == "video":
        kw = dict(processing_resolution=a.processing_resolution, seed=a.seed)
    res = evaluate_clips(model, clips, a.video_mode, lo, hi, **kw)
    return {"dataset": f"{name}-{a.video_mode}", **res}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="Marigold checkpoint folder or repo id")
    ap.add_argument("--dataset", action="append", required=True, help="name[:path], repeatable")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--processing-resolution", type=int, default=None)
    ap.add_argument("--space", choices=("depth", "disparity"), default=None, help="alignment space")
    ap.add_argument("--max-images", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--json", help="write the per-image rows and means here")
    ap.add_argument("--classes", nargs="*", default=None,
                    help="prompt modalities (segmentation) on coco: only these class names (default: all)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="masks (segmentation): whiteness from which a pixel is the object (default 0.93)")
    ap.add_argument("--video-mode", choices=("frames", "video"), default="frames",
                    help="video sets: each frame alone, or marigold.video.pipeline.predict_video")
    ap.add_argument("--max-frames", type=int, default=None, help="video sets: frames per video")
    ap.add_argument("--complete", action="store_true",
                    help="depth completion (Marigold-DC) on sparse-input sets (train.completion_eval: dc-folder, "
                         "nyu-dc, scannet-dc, kitti-dc, void, synthetic-dc): MAE and RMSE in metres")
    ap.add_argument("--complete-steps", type=int, default=None,
                    help="--complete: optimisation steps (default 50 on a GPU, 10 on the CPU)")
    ap.add_argument("--baseline", action="append", default=[], choices=("fit", "fit+snap", "nearest", "linear"),
                    help="--complete: also score a baseline on the same points (repeatable; fit+snap: the fit "
                         "snapped to the points)")
    ap.add_argument("--no-snap", action="store_true",
                    help="--complete: score only the published method's map (no snap to the points)")
    a = ap.parse_args(argv)
    from marigold.errors import MarigoldError

    try:
        return _run(a)
    except MarigoldError as e:  # a missing package, a bad checkpoint: one line, no traceback
        print(f"python -m train.evaluate: {e}", file=sys.stderr, flush=True)
        return 2


def _run(a: argparse.Namespace) -> int:
    import marigold

    model = marigold.load(a.checkpoint, device=a.device, dtype=a.dtype)
    if a.complete:
        from .completion_eval import dc_items, evaluate_completion, format_table

        results = []
        for spec in a.dataset:
            r = evaluate_completion(model, dc_items(spec, a.max_images), steps=a.complete_steps,
                                    ensemble_size=a.ensemble, processing_resolution=a.processing_resolution,
                                    seed=a.seed, baselines=tuple(b.replace("fit+snap", "fit + snap")
                                                                 for b in a.baseline), snap=not a.no_snap)
            print(format_table(spec.partition(":")[0], r), flush=True)
            results.append({"dataset": spec, **r})
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
        return 0
    ev = evaluation_for(model.modality)  # the entry says how its predictions are scored
    results = [ev.evaluate(model, spec, a) for spec in a.dataset]
    print(ev.table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
