"""Text-grounded segmentation data (Cocogold): an image, a class name as the prompt, and that class's mask.

What the trainer learns to produce is, by default, the **painted** target: the input image with the masked pixels
set to white (Cocogold's published model; its first attempt, the mask alone as a ±1 image, degenerated towards the
majority value). ``target: binary`` keeps that first form, as an option. Samples come from the COCO 2017 panoptic
annotations (:mod:`train.data.coco`) or the synthetic scenes' per-surface labels (:class:`SyntheticSegmentation`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .common import SegmentationSample  # shared with train.data.coco, which this module loads lazily

TARGETS = ("painted", "binary")




def painted(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[H,W,3]`` 0..1 with the masked pixels white."""
    out = rgb.copy()
    out[mask] = 1.0
    return out


def prepare_segmentation(s: SegmentationSample, size: tuple[int, int] | None = None, flip: bool = False,
                         target: str = "painted") -> dict:
    """A sample → the trainer's tensors: ``rgb`` ``[3,H,W]`` -1..1, ``target`` ``[3,H,W]`` -1..1 (painted or
    binary), ``valid`` ``[1,H,W]`` (all true), ``mask`` ``[1,H,W]`` float 0/1, ``prompt`` (a string)."""
    if target not in TARGETS:
        raise ValueError(f"segmentation target must be one of {', '.join(TARGETS)}; got {target!r}.")
    rgb = torch.from_numpy(np.ascontiguousarray(s.rgb)).permute(2, 0, 1)[None].float()  # [1,3,H,W]
    mask = torch.from_numpy(np.ascontiguousarray(s.mask))[None, None].float()  # [1,1,H,W]
    if size is not None and tuple(rgb.shape[-2:]) != tuple(size):
        rgb = F.interpolate(rgb, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        mask = F.interpolate(mask, size=size, mode="nearest")  # [1,1,H,W]
    if flip:
        rgb, mask = rgb.flip(-1), mask.flip(-1)
    rgb, mask = rgb[0], mask[0]  # [3,H,W], [1,H,W]
    if target == "painted":
        goal = torch.where(mask.bool(), torch.ones_like(rgb), rgb)  # [3,H,W] the object white
    else:
        goal = mask.expand(3, -1, -1)  # [3,H,W] 0/1
    return {"rgb": rgb * 2.0 - 1.0, "target": goal * 2.0 - 1.0, "valid": torch.ones_like(mask, dtype=torch.bool),
            "mask": mask, "prompt": s.prompt}


class SyntheticSegmentation:
    """The synthetic scenes (:mod:`train.data.synthetic`) as segmentation samples: scene ``i`` with one of its
    labelled surfaces (floor, ceiling, wall, ball, box) covering at least ``min_share`` of the image, picked by a
    pure function of ``i``. ``item(i, label)`` gives a chosen label (the evaluation asks for each one)."""

    def __init__(self, size: int = 1000, height: int = 48, width: int = 64, split: str = "train",
                 texture: str = "flat", min_share: float = 0.02, classes: list[str] | None = None):
        from .synthetic import SURFACE_LABELS, SyntheticDataset

        self.scenes = SyntheticDataset(size, height, width, split, texture)
        self.labels = SURFACE_LABELS
        self.classes = tuple(classes) if classes else SURFACE_LABELS
        unknown = set(self.classes) - set(SURFACE_LABELS)
        if unknown:
            raise ValueError(f"synthetic segmentation classes must be among {', '.join(SURFACE_LABELS)}; "
                             f"got {', '.join(sorted(unknown))}.")
        self.min_share = float(min_share)
        self.native_size = self.scenes.native_size
        self.split = split

    def __len__(self) -> int:
        return len(self.scenes)

    def present(self, labels: np.ndarray) -> list[str]:
        """The classes that cover at least ``min_share`` of an image's pixels."""
        n = labels.size
        return [c for c in self.classes if (labels == self.labels.index(c)).sum() >= self.min_share * n]

    def item(self, i: int, label: str | None = None) -> SegmentationSample:
        scene = self.scenes[i]
        present = self.present(scene.labels)
        if label is None:
            if not present:  # every scene has a floor or a wall; a class filter may leave none: the whole sky-less
                present = list(self.classes)
            label = present[int(np.random.default_rng([self.scenes.size, i, 7]).integers(len(present)))]
        mask = scene.labels == self.labels.index(label)
        return SegmentationSample(rgb=scene.rgb, mask=mask, prompt=label, name=f"{scene.name}:{label}")

    def __getitem__(self, i: int) -> SegmentationSample:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.item(i)


def _synthetic(path: str | None, **options) -> SyntheticSegmentation:
    return SyntheticSegmentation(**({"texture": path} if path else {}), **options)  # synthetic:flat


def _coco(path: str, **options):
    from .coco import CocoPanoptic

    return CocoPanoptic(path, **options)


# --task segmentation trains on these (image, class name, mask) sets only: the synthetic scenes' surfaces, or COCO
# panoptic (coco:/path/to/coco), which no other task takes
from .registry import register_dataset  # noqa: E402

register_dataset("synthetic", _synthetic, task="segmentation", prepare=prepare_segmentation)
register_dataset("coco", _coco, needs_path=True, task="segmentation")
