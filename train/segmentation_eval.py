"""Scoring text-grounded segmentation (``python -m train.evaluate`` with a segmentation checkpoint, and the trainer's
validation: the segmentation entry names :data:`EVALUATION`).

Per item (an image, a prompt, the true mask) the IoU of the predicted mask; then, as the referring-segmentation
benchmarks report them: **mIoU** (mean of the items' IoUs), **cIoU** (cumulative: total intersection over total
union, so large objects weigh more) and the IoU per prompt. Two prompt-blind baselines come with it:

- ``wrong_prompt``: the same model asked for another label of the same scene, scored against the true mask;
- ``constant``: the best constant mask (all object or all background, whichever scores higher over the set).

and ``cross_prompt_overlap``: the mean IoU between the masks predicted for two different labels of one scene (a
model that ignores the prompt gives the same mask for both: overlap 1).

Sets: ``synthetic[:N[:flat|photo]]`` (held-out synthetic scenes, every labelled surface covering at least 2 % of
the picture is one item) and ``coco:ROOT`` (COCO 2017 val panoptic, :mod:`train.data.coco`, all classes or
``--classes``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .evaluate import Evaluation


@dataclass
class SegItem:
    rgb: np.ndarray  # [H,W,3] 0..1
    prompt: str
    mask: np.ndarray  # [H,W] bool
    scene: str  # items of one scene share it (their other labels are its wrong prompts)


@dataclass
class SegSet:
    name: str
    items: list[SegItem]


def iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, int, int]:
    """(IoU, intersection, union) of two boolean masks; two empty masks agree (IoU 1)."""
    inter = int(np.logical_and(pred, gt).sum())
    union = int(np.logical_or(pred, gt).sum())
    return (inter / union if union else 1.0), inter, union


def synthetic_segmentation_set(n: int = 8, split: str = "heldout", height: int = 48, width: int = 64,
                               texture: str = "flat") -> SegSet:
    from .data.segmentation import SyntheticSegmentation

    ds = SyntheticSegmentation(n, height, width, split, texture)
    items = []
    for i in range(n):
        scene = ds.scenes[i]
        for label in ds.present(scene.labels):
            s = ds.item(i, label)
            items.append(SegItem(s.rgb, label, s.mask, scene.name))
    return SegSet(f"synthetic-{split}", items)


def coco_segmentation_set(root: str, classes: list[str] | None = None, limit: int | None = None) -> SegSet:
    from .data.coco import CocoPanoptic

    ds = CocoPanoptic(root, "val", classes=classes or None, crop="none", size=limit)
    items = []
    for i in range(len(ds)):
        s = ds[i]
        items.append(SegItem(s.rgb, s.prompt, s.mask, s.name.rsplit(":", 1)[0]))
    return SegSet("coco-val", items)


def make_segmentation_set(spec: str, limit: int | None = None, classes: list[str] | None = None) -> SegSet:
    name, _, rest = spec.partition(":")
    if name == "synthetic":
        parts = rest.split(":") if rest else []
        n = int(parts[0]) if parts and parts[0] else (limit or 8)
        return synthetic_segmentation_set(n, texture=parts[1] if len(parts) > 1 else "flat")
    if name == "coco":
        if not rest:
            raise SystemExit("coco needs the COCO 2017 folder: --dataset coco:/data/coco")
        return coco_segmentation_set(rest, classes, limit)
    raise SystemExit(f"segmentation data sets: synthetic[:N[:flat|photo]] or coco:ROOT; got {spec!r}.")


def _by_scene(items: list[SegItem]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for k, it in enumerate(items):
        out.setdefault(it.scene, []).append(k)
    return out


def evaluate_segmentation(model, seg_set: SegSet, *, steps: int | None = None, ensemble_size: int = 1,
                          processing_resolution: int | None = None, seed: int = 0, threshold: float | None = None,
                          baselines: bool = True, thresholds: list[float] | None = None) -> dict:
    """Segment every item with :func:`marigold.segment` and score it (see the module docstring).

    ``thresholds``: also the mIoU at each of these thresholds (``by_threshold``), from the same painted images
    (sampled once per scene and prompt; the mask is :func:`marigold.segment.mask_from_painted` of them).
    """
    import torch

    import marigold
    from marigold.modalities.segmentation import THRESHOLD, mask_from_painted

    threshold = threshold or THRESHOLD
    kw = dict(num_inference_steps=steps, ensemble_size=ensemble_size, processing_resolution=processing_resolution,
              seed=seed)
    painted: dict[tuple[str, str], torch.Tensor] = {}  # (scene, prompt) → the painted image [1,3,H,W]

    def predict(it: SegItem, prompt: str, t: float = threshold) -> np.ndarray:
        key = (it.scene, prompt)
        if key not in painted:
            painted[key] = marigold.segment(model, it.rgb, prompt, **kw).painted
        return mask_from_painted(painted[key], t)[0, 0].numpy() > 0.5  # [H,W]

    rows, inter, union = [], 0, 0
    for it in seg_set.items:
        v, i, u = iou(predict(it, it.prompt), it.mask)
        inter, union = inter + i, union + u
        rows.append({"scene": it.scene, "prompt": it.prompt, "iou": v})
    metrics = {"miou": float(np.mean([r["iou"] for r in rows])) if rows else float("nan"),
               "ciou": inter / union if union else 1.0}
    per_prompt: dict[str, list[float]] = {}
    for r in rows:
        per_prompt.setdefault(r["prompt"], []).append(r["iou"])
    metrics.update({f"iou/{p}": float(np.mean(v)) for p, v in sorted(per_prompt.items())})
    if baselines:
        scenes = _by_scene(seg_set.items)
        wrong, cross = [], []
        for idx in scenes.values():
            for a in idx:
                others = [b for b in idx if seg_set.items[b].prompt != seg_set.items[a].prompt]
                if not others:
                    continue
                b = others[0]
                wrong.append(iou(predict(seg_set.items[a], seg_set.items[b].prompt), seg_set.items[a].mask)[0])
                if a < b:
                    cross.append(iou(predict(seg_set.items[a], seg_set.items[a].prompt),
                                     predict(seg_set.items[b], seg_set.items[b].prompt))[0])
        ones = float(np.mean([iou(np.ones_like(it.mask), it.mask)[0] for it in seg_set.items]))
        zeros = float(np.mean([iou(np.zeros_like(it.mask), it.mask)[0] for it in seg_set.items]))
        metrics.update(wrong_prompt_miou=float(np.mean(wrong)) if wrong else float("nan"),
                       constant_miou=max(ones, zeros),
                       cross_prompt_overlap=float(np.mean(cross)) if cross else float("nan"))
    out = {"dataset": seg_set.name, "n": len(rows), "metrics": metrics, "rows": rows}
    if thresholds:
        out["by_threshold"] = {float(t): float(np.mean([iou(predict(it, it.prompt, t), it.mask)[0]
                                                        for it in seg_set.items])) for t in thresholds}
    return out


def iter_rows(results: list[dict]) -> Iterator[str]:
    for r in results:
        m = r["metrics"]
        head = ", ".join(f"{k} {m[k]:.3f}" for k in ("miou", "ciou", "wrong_prompt_miou", "constant_miou",
                                                      "cross_prompt_overlap") if k in m)
        yield f"{r['dataset']} ({r['n']} items): {head}"
        for k, v in m.items():
            if k.startswith("iou/"):
                yield f"  {k[4:]:<16} {v:.3f}"


# ---------------------------------------------------------------------------------------------------------------
# What the segmentation entry names as its evaluation (marigold.modalities.segmentation: ``evaluation``)


def _evaluate_spec(model, spec: str, a) -> dict:
    """One ``--dataset`` of ``train.evaluate`` (``synthetic[:N[:flat|photo]]`` or ``coco:ROOT``)."""
    return evaluate_segmentation(model, make_segmentation_set(spec, a.max_images, a.classes), steps=a.steps,
                                 ensemble_size=a.ensemble, processing_resolution=a.processing_resolution, seed=a.seed,
                                 threshold=a.threshold)


def _validate(model, vcfg: dict, size: tuple[int, int]) -> dict:
    """The trainer's validation: IoU on held-out synthetic scenes, every labelled surface (at the renderer's size:
    masks need no more)."""
    return evaluate_segmentation(model, synthetic_segmentation_set(vcfg["num_images"], split=vcfg["split"],
                                                                   texture=vcfg["texture"]),
                                 steps=vcfg["steps"], processing_resolution=vcfg["processing_resolution"], seed=0)


def _table(results: list[dict]) -> str:
    return "\n".join(iter_rows(results))


EVALUATION = Evaluation(_evaluate_spec, _validate, _table)
