"""COCO 2017 panoptic segmentation as text-grounded segmentation samples (Cocogold's data).

Layout (as cocodataset.org distributes it)::

    ROOT/{train2017,val2017}/<image>.jpg
    ROOT/annotations/panoptic_{train2017,val2017}.json          images, annotations (segments_info), categories
    ROOT/annotations/panoptic_{train2017,val2017}/<image>.png   segment id per pixel = R + 256·G + 256²·B

Every (image, class present) pair is one item: the union of that class's segments is the mask and the bare class
name the prompt (Cocogold's ``encode_prompt`` takes the class name as is). ``classes`` filters the classes
(Cocogold trained on 14, "person" left out for imbalance: :data:`COCOGOLD_CLASSES`); ``None`` keeps all 133.
Cocogold crops random squares; here each item's square is a pure function of ``(seed, item)`` (``crop: square``),
or the whole image is kept (``crop: none``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from .common import SegmentationSample

COCOGOLD_CLASSES = ("car", "dining table", "chair", "train", "airplane", "giraffe", "clock", "toilet", "bed", "bird",
                    "truck", "cat", "horse", "dog")
CROPS = ("square", "none")


def panoptic_ids(png: np.ndarray) -> np.ndarray:
    """A panoptic PNG ``[H,W,3]`` uint8 → segment ids ``[H,W]`` (R + 256·G + 256²·B)."""
    p = png.astype(np.int64)
    return p[..., 0] + 256 * p[..., 1] + 256 * 256 * p[..., 2]


class CocoPanoptic:
    """(image, class) items of one split; see the module docstring."""

    def __init__(self, root: str | Path, split: str = "train", classes: list[str] | tuple[str, ...] | None =
                 COCOGOLD_CLASSES, crop: str = "square", seed: int = 0, min_area: int = 0, size: int | None = None):
        self.root = Path(root)
        name = {"train": "train2017", "val": "val2017"}.get(split, split)
        ann = self.root / "annotations" / f"panoptic_{name}.json"
        if not ann.is_file():
            raise ValueError(f"coco: {ann} not found; ROOT must hold {name}/ and annotations/panoptic_{name}.json "
                             f"with annotations/panoptic_{name}/ (COCO 2017 panoptic).")
        if crop not in CROPS:
            raise ValueError(f"coco: crop must be one of {', '.join(CROPS)}; got {crop!r}.")
        with open(ann, encoding="utf-8") as f:
            data = json.load(f)
        cats = {c["id"]: c["name"] for c in data["categories"]}
        if classes:
            unknown = set(classes) - set(cats.values())
            if unknown:
                raise ValueError(f"coco: unknown classes {', '.join(sorted(unknown))}.")
        keep = set(classes) if classes else set(cats.values())
        images = {im["id"]: im for im in data["images"]}
        self.items: list[tuple[str, str, str, list[int]]] = []  # (image file, png file, class, segment ids)
        for a in data["annotations"]:
            by_class: dict[str, list[int]] = {}
            for seg in a["segments_info"]:
                c = cats.get(seg["category_id"])
                if c in keep and seg.get("area", 1) >= min_area:
                    by_class.setdefault(c, []).append(int(seg["id"]))
            im = images[a["image_id"]]
            for c in sorted(by_class):
                self.items.append((f"{name}/{im['file_name']}", f"annotations/panoptic_{name}/{a['file_name']}", c,
                                   by_class[c]))
        if size is not None:
            self.items = self.items[:int(size)]
        self.classes = sorted({c for _, _, c, _ in self.items})
        self.crop, self.seed = crop, int(seed)
        self.native_size = (512, 512)  # what Cocogold trained at; the stream resizes to the training resolution

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> SegmentationSample:
        image, png, cls, ids = self.items[i]
        rgb = np.asarray(Image.open(self.root / image).convert("RGB"), dtype=np.float32) / 255.0  # [H,W,3]
        seg = panoptic_ids(np.asarray(Image.open(self.root / png).convert("RGB")))  # [H,W]
        mask = np.isin(seg, ids)  # [H,W]
        if self.crop == "square":
            h, w = mask.shape
            side = min(h, w)
            rng = np.random.default_rng([self.seed, i])
            y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            rgb, mask = rgb[y:y + side, x:x + side], mask[y:y + side, x:x + side]
        return SegmentationSample(rgb=np.ascontiguousarray(rgb), mask=np.ascontiguousarray(mask), prompt=cls,
                                  name=f"{Path(image).stem}:{cls}")
