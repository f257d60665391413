"""Data specs: ``NAME[:PATH][@PROB]`` (or a mapping) parsed and checked against the known sets, the data set it
builds, and the training size of a set's native size (see the package docstring for the spec format)."""

from __future__ import annotations

from typing import Any

from .registry import REGISTERED, TASK_SETS, task_set_names

IMAGE_SETS = ("synthetic", "hypersim", "vkitti", "folder", "interiorverse", "hypersim-iid")
# the video sets of snippet mode (train.data.video builds them)
VIDEO_SETS = ("synthetic-video", "video-folder", "tartanair", "pointodyssey", "scannet-video", "bonn", "dydtof")


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
    known = VIDEO_SETS if video else tuple(dict.fromkeys(IMAGE_SETS + tuple(REGISTERED) + task_set_names()))
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
