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

import numpy as np
import torch

from .common import DepthSample, augment_rgb, prepare
from .registry import PREPARERS, REGISTERED, TASK_SETS, register_dataset  # noqa: F401  (the package's names)
from .specs import IMAGE_SETS, VIDEO_SETS, build_dataset, parse_spec, training_size  # noqa: F401


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
