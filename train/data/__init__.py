"""Training data: loaders for each data set, and the deterministic stream that mixes them.

A data spec is ``NAME[:PATH][@PROB]`` (``synthetic``, ``hypersim:/data/hypersim@0.9``, ``vkitti:/data/vkitti@0.1``,
``folder:/my/data``; ``synthetic:flat``: the synthetic scenes with flat-coloured surfaces, what tiny CPU models
train on), or in a config file a mapping ``{name, path, prob, resolution, ...}``.

The stream is a pure function of ``(seed, micro-batch number, rank)``: micro-batch ``m`` of rank ``r`` picks its
data set with the mixing probabilities (a whole micro-batch comes from one data set, as in Marigold's mixed
sampler, since the sets have different sizes), its samples and their flips. So a resumed run sees exactly the
samples an uninterrupted one would, on any number of workers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .common import DepthSample, prepare


IMAGE_SETS = ("synthetic", "hypersim", "vkitti", "folder", "coco")  # coco: --task segmentation only


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

    known = VIDEO_SETS if video else IMAGE_SETS
    if out["name"] not in known:
        what = "video set (snippet mode)" if video else "data set"
        other = IMAGE_SETS if video else VIDEO_SETS
        hint = (f" {out['name']!r} is a{' video' if not video else 'n image'} set: "
                f"{'use --mode snippet' if not video else 'snippet mode trains on videos'}."
                if out["name"] in other else "")
        raise ValueError(f"unknown {what} {out['name']!r}; use one of {', '.join(known)} (NAME:PATH).{hint}")
    if out["name"] not in ("synthetic", "synthetic-video") and not out["path"]:
        raise ValueError(f"data set {out['name']!r} needs a path: {out['name']}:/path/to/it")
    return out


def build_dataset(spec: dict, task: str = "depth"):
    name, path = spec["name"], spec.get("path")
    kw = {k: v for k, v in spec.items() if k not in ("name", "path", "prob", "resolution")}
    if task == "segmentation":  # (image, class name, mask) samples: the synthetic scenes' surfaces, or COCO panoptic
        if name == "synthetic":
            from .segmentation import SyntheticSegmentation
            return SyntheticSegmentation(**({"texture": path} if path else {}), **kw)
        if name == "coco":
            from .coco import CocoPanoptic
            return CocoPanoptic(path, **kw)
        raise ValueError(f"--task segmentation trains on synthetic or coco:/path/to/coco; got {name!r}.")
    if name == "coco":
        raise ValueError("coco (panoptic masks) trains --task segmentation only.")
    if name == "synthetic":
        from .synthetic import SyntheticDataset
        return SyntheticDataset(**({"texture": path} if path else {}), **kw)  # synthetic:flat
    if name == "hypersim":
        from .hypersim import HypersimDataset
        return HypersimDataset(path, **kw)
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
        if self.task == "segmentation":
            from .segmentation import prepare_segmentation
            return prepare_segmentation(self.datasets[d][idx], self.sizes[d], flip, self.target)
        return prepare(self.datasets[d][idx], self.task, self.sizes[d], flip)

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
                flip_p: float, target: str = "painted") -> MixedStream:
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
    return MixedStream(datasets, probs, sizes, batch_size, seed, task, flip_p, target)


__all__ = ["DepthSample", "prepare", "parse_spec", "build_dataset", "training_size", "MixedStream",
           "StreamSampler", "make_stream"]
