"""Depth (Marigold: affine-invariant, near = 0) and disparity (RollingDepth: inverse depth, near = high)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.modality import Modality, Target, register


def _write_depth(m: Modality, p: torch.Tensor, out_dir: Path, stem: str, options: dict) -> dict:
    from ..io import colorize, images as io

    space = m.prediction_type  # "depth" | "disparity": inverse-depth models name their files so, near = high
    out = {"depth": out_dir / f"{stem}_depth.png", f"{space}_16bit": out_dir / f"{stem}_{space}_16bit.png"}
    io.save_rgb(colorize.colorize_depth(p[None], cmap=options.get("colormap", "Spectral"),
                                        invert=space == "disparity")[0], out["depth"])
    io.save_depth_16bit(p, out[f"{space}_16bit"])
    if options.get("npy"):
        out[space] = out_dir / f"{stem}_{space}.npy"
        io.save_npy(p, out[space])
    if options.get("exr"):
        out[f"{space}_exr"] = out_dir / f"{stem}_{space}.exr"
        io.save_exr(p, out[f"{space}_exr"])
    return out


_DEPTH_FILES = ("_depth.png", "_depth_16bit.png", "_depth.npy", "_depth.exr")
register(Modality("depth", "depth", (Target("depth", 1, "affine"),), "MarigoldDepthPipeline", "depth",
                  ensemble="affine", index_keys={"scale_invariant": True, "shift_invariant": True},
                  writer=_write_depth, geometry=True, video=True, files=_DEPTH_FILES,
                  # tiles: each fitted to the global pass by one scale and shift, their detail added to its structure
                  tile_split="affine"))
# RollingDepth and other inverse-depth models: the depth task, near = high
register(Modality("disparity", "depth", (Target("disparity", 1, "affine"),), "MarigoldDepthPipeline", "disparity",
                  ensemble="affine", index_keys={"scale_invariant": True, "shift_invariant": True},
                  writer=_write_depth, geometry=True, video=True,
                  files=("_depth.png", "_disparity_16bit.png", "_disparity.npy", "_disparity.exr"),
                  tile_split="affine"))
