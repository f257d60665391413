"""Video training data: what every video set offers, snippets sampled from it, and the stream that mixes sets.

A video set holds sequences of frames; each frame is a :class:`~train.data.common.DepthSample`:

- ``len(ds)``: the number of sequences; ``ds.num_frames(i)``; ``ds.frame(i, k)`` → frame ``k`` of sequence ``i``
- ``ds.intrinsics(i)`` → ``[3,3]`` or None; ``ds.poses(i)`` → ``[T,4,4]`` camera-to-world or None (camera x
  right, y down, z forward); ``ds.name(i)``; ``ds.native_size`` (H, W)

A snippet is ``n`` frames ``k, k+g, …, k+(n−1)g`` of one sequence at dilation ``g`` (RollingDepth, Ke et al.
2024, Sec. 3: snippets are sampled at several frame rates). :func:`prepare_snippet` turns it into the trainer's
tensors with ONE normalisation for the whole snippet, so that its frames share a scale, in inverse depth (the
space RollingDepth predicts): ``target = 2·(1/d − q2) / (q98 − q2) − 1`` clipped to [-1, 1], with q2, q98 the 2 % and
98 % quantiles of 1/d over the valid pixels of all n frames (near = high).

The stream is a pure function of ``(seed, micro-batch, rank)`` as in :mod:`train.data`: which set, which
sequence, dilation, start frame and flip a sample gets never depends on the number of workers or on a resume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .common import QUANTILE, DepthSample, fill_invalid, flip_sample, resize_sample
from .specs import VIDEO_SETS, parse_spec, training_size  # noqa: F401  (VIDEO_SETS: its old home)


def normalize_snippet(depth: np.ndarray, valid: np.ndarray, space: str = "disparity",
                      quantile: float = QUANTILE) -> np.ndarray:
    """``[n,H,W]`` depth → one affine normalisation of the whole snippet to -1..1 (clipped), in ``space``
    ("disparity": 1/depth, near = high; "depth": near = low)."""
    x = np.zeros_like(depth, dtype=np.float64)
    if space == "disparity":
        x[valid] = 1.0 / depth[valid]
    elif space == "depth":
        x[valid] = depth[valid]
    else:
        raise ValueError(f"snippet space must be 'disparity' or 'depth'; got {space!r}.")
    v = x[valid]
    if v.size == 0:
        return np.zeros_like(depth, dtype=np.float32)
    lo, hi = np.quantile(v, [quantile, 1.0 - quantile])
    return np.clip((x - lo) / max(hi - lo, 1e-12) * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)


def prepare_snippet(frames: list[DepthSample], size: tuple[int, int] | None = None, flip: bool = False,
                    space: str = "disparity", joint: bool = True) -> dict:
    """n frames → ``rgb`` ``[n,3,H,W]`` -1..1, ``target`` ``[n,3,H,W]`` (jointly normalised), ``valid``
    ``[n,1,H,W]``, ``depth`` ``[n,1,H,W]`` (raw, 0 where invalid). Every frame gets the same resize and flip.
    ``joint=False``: each frame normalised on its own (the single-frame control trained on a snippet model's very
    frames, ``snippet.joint: false``)."""
    if size is not None:
        frames = [resize_sample(s, size) for s in frames]
    if flip:
        frames = [flip_sample(s) for s in frames]
    depth = np.stack([s.depth for s in frames]).astype(np.float32)  # [n,H,W]
    valid = np.stack([s.valid for s in frames]) & np.isfinite(depth) & (depth > 0)  # [n,H,W]
    if joint:
        norm = normalize_snippet(depth, valid, space)  # [n,H,W]: one scale for the snippet
    else:
        norm = np.stack([normalize_snippet(depth[i:i + 1], valid[i:i + 1], space)[0]
                         for i in range(len(frames))])  # [n,H,W]: each frame its own scale
    target = np.stack([fill_invalid(norm[i], valid[i]) for i in range(len(frames))])  # [n,H,W]
    rgb = np.stack([s.rgb.transpose(2, 0, 1) for s in frames])  # [n,3,H,W]
    return {
        "rgb": torch.from_numpy(np.ascontiguousarray(rgb) * 2.0 - 1.0).float(),
        "target": torch.from_numpy(np.ascontiguousarray(np.repeat(target[:, None], 3, axis=1))).float(),
        "valid": torch.from_numpy(np.ascontiguousarray(valid))[:, None],
        "depth": torch.from_numpy(np.ascontiguousarray(np.where(valid, depth, 0)))[:, None].float(),
    }


def snippet_indices(num_frames: int, n: int, dilation: int, start: int) -> list[int]:
    return [start + i * dilation for i in range(n)]


def build_video_dataset(spec: dict):
    """A parsed data spec (``name``, ``path``, options) → a video set."""
    name, path = spec["name"], spec.get("path")
    kw = {k: v for k, v in spec.items() if k not in ("name", "path", "prob", "resolution")}
    if name == "synthetic-video":
        from .synthetic import SyntheticVideoDataset
        return SyntheticVideoDataset(**({"texture": path} if path else {}), **kw)  # synthetic-video:flat
    if name == "video-folder":
        from .video_folder import VideoFolderDataset
        return VideoFolderDataset(path, **kw)
    from . import video_sets
    return video_sets.open_set(name, path, **kw)


@dataclass
class SnippetStream(torch.utils.data.Dataset):
    """Flat sample number → one prepared snippet (``[n,…]`` tensors); a micro-batch comes from one set."""

    datasets: list
    probs: list[float]
    sizes: list[tuple[int, int]]
    batch_size: int
    seed: int
    frames: int = 3
    max_dilation: int = 10
    flip_p: float = 0.5
    space: str = "disparity"
    joint: bool = True  # False: the same snippets, each frame normalised on its own

    def choose(self, k: int) -> tuple[int, int, list[int], bool]:
        """Sample number → (data set, sequence, frame indices, flip)."""
        mb, j = divmod(k, self.batch_size)
        d = int(np.random.default_rng([self.seed, mb, 0]).choice(len(self.datasets), p=self.probs))
        ds = self.datasets[d]
        rng = np.random.default_rng([self.seed, mb, j, 2])
        seq = int(rng.integers(len(ds)))
        t = ds.num_frames(seq)
        if t < self.frames:
            raise ValueError(f"{ds.name(seq) if hasattr(ds, 'name') else seq}: {t} frames, fewer than a snippet "
                             f"of {self.frames}.")
        top = max(1, min(self.max_dilation, (t - 1) // max(self.frames - 1, 1)))
        dilation = int(rng.integers(1, top + 1))  # a random frame rate per snippet
        start = int(rng.integers(0, t - (self.frames - 1) * dilation))
        flip = bool(np.random.default_rng([self.seed, mb, j, 3]).random() < self.flip_p)
        return d, seq, snippet_indices(t, self.frames, dilation, start), flip

    def __getitem__(self, k: int) -> dict:
        d, seq, idx, flip = self.choose(int(k))
        ds = self.datasets[d]
        return prepare_snippet([ds.frame(seq, i) for i in idx], self.sizes[d], flip, self.space, self.joint)

    def __len__(self) -> int:
        return 2**62


def make_snippet_stream(specs: list, resolution: int | None, batch_size: int, seed: int, flip_p: float,
                        frames: int = 3, max_dilation: int = 10, space: str = "disparity",
                        joint: bool = True) -> SnippetStream:
    specs = [parse_spec(s, video=True) for s in specs]
    datasets = [build_video_dataset(s) for s in specs]
    probs = [s["prob"] for s in specs]
    if any(p is None for p in probs):
        if all(p is None for p in probs):
            probs = [1.0 / len(specs)] * len(specs)
        else:
            raise ValueError("give a mixing probability to every data set (name:path@prob) or to none.")
    total = float(sum(probs))
    sizes = [training_size(tuple(ds.native_size), s.get("resolution", resolution)) for ds, s in zip(datasets, specs)]
    return SnippetStream(datasets, [p / total for p in probs], sizes, batch_size, seed, frames, max_dilation, flip_p,
                         space, joint)
