"""Training data: loaders for each data set, and the deterministic stream that mixes them.

A data spec is ``NAME[:PATH][@PROB]`` (``synthetic``, ``synthetic:flat+materials`` (with the intrinsic layers
in the image), ``interiorverse:/data/interiorverse``, ``hypersim-iid:/data/hypersim``, ``hypersim:/data/hypersim@0.9``, ``vkitti:/data/vkitti@0.1``,
``folder:/my/data``; ``synthetic:flat``: the synthetic scenes with flat-coloured surfaces, what tiny CPU models
train on), or in a config file a mapping ``{name, path, prob, resolution, ...}``. ``--task segmentation`` trains
on sets of its own (:mod:`train.data.segmentation`): ``synthetic`` (the scenes' labelled surfaces) and
``coco:/data/coco`` (COCO 2017 panoptic).

The stream is a pure function of ``(seed, micro-batch number, rank)``: micro-batch ``m`` of rank ``r`` picks its
data set with the mixing probabilities (a whole micro-batch comes from one data set, as in Marigold's mixed
sampler, since the sets have different sizes), its samples and their flips. So a resumed run sees exactly the
samples an uninterrupted one would, on any number of workers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .common import DepthSample, augment_rgb, prepare


IMAGE_SETS = ("synthetic", "hypersim", "vkitti", "folder", "interiorverse", "hypersim-iid")
# loaders added by code outside this package (a new modality's data): name → factory(path, **options)
REGISTERED: dict = {}
# loaders of one modality only (its samples are not DepthSample: segmentation's image + prompt + mask): task →
# {name → (factory, needs_path)}; such a task trains on these sets only, and they serve no other task
TASK_SETS: dict[str, dict] = {}
# how such a task's samples become the trainer's tensors: task → prepare(sample, size, flip, **options) → dict
PREPARERS: dict = {}


def register_dataset(name: str, factory, *, needs_path: bool = False, task: str | None = None,
                     prepare=None) -> None:
    """Make ``name`` usable in data specs (``--data NAME[:PATH]``): ``factory(path, **options)`` returns a
    data set whose items are :class:`DepthSample` (``len()``, ``[i]``, ``native_size``). With the modality's
    entry in :mod:`marigold.modality`, this is all a new modality needs.

    ``task``: the set serves that modality only (its items are that modality's own samples, e.g.
    :class:`train.data.segmentation.SegmentationSample`), under ``name`` even where another set of that name
    exists for the other tasks; ``prepare(sample, size, flip, **stream_options)`` then turns its samples into the
    trainer's tensors (once per task)."""
    if task is None:
        REGISTERED[name] = (factory, needs_path)
    else:
        TASK_SETS.setdefault(task, {})[name] = (factory, needs_path)
    if prepare is not None:
        PREPARERS[task] = prepare


def _task_set_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for sets in TASK_SETS.values() for n in sets))


def parse_spec(spec: Any, video: bool = False) -> dict:
    """``"name[:path][@prob]"`` or a mapping → ``{"name", "path", "prob", ...}``; ``video``: a video set
    (snippet mode, :mod:`train.data.video`)."""
    if isinstance(spec, dict):
        out = dict(spec)
    else:
        text = str(spec)
        prob = None
        if "@" in text:
            text, p = text.rsplit("@", 1)
            prob = float(p)
        name, _, path = text.partition(":")
        out = {"name": name, "path": path or None, "prob": prob}
    out.setdefault("path", None)
    out.setdefault("prob", None)
    from .video import VIDEO_SETS

    known = VIDEO_SETS if video else tuple(dict.fromkeys(IMAGE_SETS + tuple(REGISTERED) + _task_set_names()))
    if out["name"] not in known:
        what = "video set (snippet mode)" if video else "data set"
        other = IMAGE_SETS if video else VIDEO_SETS
        hint = (f" {out['name']!r} is a{' video' if not video else 'n image'} set: "
                f"{'use --mode snippet' if not video else 'snippet mode trains on videos'}."
                if out["name"] in other else "")
        raise ValueError(f"unknown {what} {out['name']!r}; use one of {', '.join(known)} (NAME:PATH).{hint}")
    optional_path = ("synthetic", "synthetic-video") + tuple(k for k, (_, p) in REGISTERED.items() if not p) \
        + tuple(k for sets in TASK_SETS.values() for k, (_, p) in sets.items() if not p)
    if out["name"] not in optional_path and not out["path"]:
        raise ValueError(f"data set {out['name']!r} needs a path: {out['name']}:/path/to/it")
    return out


def build_dataset(spec: dict, task: str = "depth"):
    name, path = spec["name"], spec.get("path")
    kw = {k: v for k, v in spec.items() if k not in ("name", "path", "prob", "resolution")}
    if task in TASK_SETS:  # a task with sets of its own (segmentation: image, class name, mask) trains on those
        sets = TASK_SETS[task]
        if name not in sets:
            raise ValueError(f"--task {task} trains on {' or '.join(sets)}; got {name!r}.")
        return sets[name][0](path, **kw)
    if name in REGISTERED:
        return REGISTERED[name][0](path, **kw)
    owners = [k for k, sets in TASK_SETS.items() if name in sets]
    if owners and name not in IMAGE_SETS:  # e.g. coco (panoptic masks): segmentation only
        raise ValueError(f"{name} trains --task {' or --task '.join(owners)} only.")
    if name == "synthetic":
        from .synthetic import SyntheticDataset
        return SyntheticDataset(**({"texture": path} if path else {}), **kw)  # synthetic:flat
    if name == "hypersim":
        from .hypersim import HypersimDataset
        return HypersimDataset(path, **kw)
    if name == "interiorverse":
        from .iid_sets import InteriorVerseDataset
        return InteriorVerseDataset(path, **kw)
    if name == "hypersim-iid":
        from .iid_sets import HypersimIIDDataset
        return HypersimIIDDataset(path, **kw)
    if name == "vkitti":
        from .vkitti import VKittiDataset
        return VKittiDataset(path, **kw)
    from .folder import FolderDataset
    return FolderDataset(path, **kw)


def training_size(native: tuple[int, int], resolution: int | None) -> tuple[int, int]:
    """Longest side → ``resolution`` (keeping the aspect), both sides rounded to a multiple of 8."""
    h, w = native
    if resolution:
        s = resolution / max(h, w)
        h, w = h * s, w * s
    return max(8, int(round(h / 8)) * 8), max(8, int(round(w / 8)) * 8)


@dataclass
class MixedStream(torch.utils.data.Dataset):
    """Flat sample number ``k`` → a prepared sample; see the module docstring for the numbering."""

    datasets: list
    probs: list[float]
    sizes: list[tuple[int, int]]
    batch_size: int
    seed: int
    task: str = "depth"
    flip_p: float = 0.5
    augment: dict | None = None  # image augmentations (common.augment_rgb), e.g. prs-eth's normals recipe
    target: str = "painted"  # segmentation only: "painted" (Cocogold) or "binary"
    _perm: dict = field(default_factory=dict)

    def choose(self, k: int) -> tuple[int, int, bool]:
        """Sample number → (data set, index, flip)."""
        mb, j = divmod(k, self.batch_size)
        d = int(np.random.default_rng([self.seed, mb, 0]).choice(len(self.datasets), p=self.probs))
        n = len(self.datasets[d])
        if len(self.datasets) == 1:  # one data set: shuffled epochs without replacement
            epoch, pos = divmod(k, n)
            if epoch not in self._perm:
                self._perm = {epoch: np.random.default_rng([self.seed, epoch, 1]).permutation(n)}
            idx = int(self._perm[epoch][pos])
        else:  # mixed: draws with replacement within the chosen set
            idx = int(np.random.default_rng([self.seed, mb, j, 2]).integers(n))
        flip = bool(np.random.default_rng([self.seed, mb, j, 3]).random() < self.flip_p)
        return d, idx, flip

    def __getitem__(self, k: int) -> dict:
        d, idx, flip = self.choose(int(k))
        sample = self.datasets[d][idx]
        if self.augment:
            mb, j = divmod(int(k), self.batch_size)
            sample = replace(sample, rgb=augment_rgb(sample.rgb, np.random.default_rng([self.seed, mb, j, 5]),
                                                     self.augment))
        if self.task in PREPARERS:  # a task with samples of its own (segmentation)
            return PREPARERS[self.task](sample, self.sizes[d], flip, target=self.target)
        return prepare(sample, self.task, self.sizes[d], flip)

    def __len__(self) -> int:  # the stream is endless; DataLoader only needs a number
        return 2**62


class StreamSampler(torch.utils.data.Sampler):
    """The flat sample numbers of one rank, from micro-batch ``start`` on: micro-batch m of rank r is global
    micro-batch ``m·world + r``."""

    def __init__(self, batch_size: int, rank: int = 0, world: int = 1, start: int = 0):
        self.b, self.rank, self.world, self.start = batch_size, rank, world, start

    def __iter__(self):
        for m in itertools.count(self.start):
            g = m * self.world + self.rank
            yield from range(g * self.b, (g + 1) * self.b)

    def __len__(self) -> int:
        return 2**62


def make_stream(specs: list, resolution: int | None, batch_size: int, seed: int, task: str,
                flip_p: float, augment: dict | None = None, target: str = "painted") -> MixedStream:
    specs = [parse_spec(s) for s in specs]
    datasets = [build_dataset(s, task) for s in specs]
    probs = [s["prob"] for s in specs]
    if any(p is None for p in probs):
        if all(p is None for p in probs):
            probs = [1.0 / len(specs)] * len(specs)
        else:
            raise ValueError("give a mixing probability to every data set (name:path@prob) or to none.")
    total = float(sum(probs))
    probs = [p / total for p in probs]
    sizes = [training_size(tuple(ds.native_size), s.get("resolution", resolution)) for ds, s in zip(datasets, specs)]
    return MixedStream(datasets, probs, sizes, batch_size, seed, task, flip_p, augment, target)


__all__ = ["DepthSample", "prepare", "register_dataset", "parse_spec", "build_dataset", "training_size", "MixedStream",
           "StreamSampler", "make_stream"]


# the built-in sets of one modality only: text-grounded segmentation (synthetic surfaces, COCO panoptic)
from . import segmentation as _segmentation  # noqa: E402, F401  (registers them)
