"""Surface normals: unit vectors, x right, y up, z towards the viewer."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.modality import Modality, Target, register


def _write_normals(m: Modality, p: torch.Tensor, out_dir: Path, stem: str, options: dict) -> dict:
    from ..io import colorize, images as io

    out = {"normals": out_dir / f"{stem}_normals.png"}
    io.save_rgb(colorize.normals_to_rgb(p[None])[0], out["normals"])
    if options.get("npy"):
        out["normals_npy"] = out_dir / f"{stem}_normals.npy"
        io.save_npy(p, out["normals_npy"])
    return out


register(Modality("normals", "normals", (Target("normals", 3, "unit", (-1.0, 1.0)),), "MarigoldNormalsPipeline",
                  "normals", ensemble="closest", default_reduction="closest", index_keys={"use_full_z_range": True},
                  writer=_write_normals, files=("_normals.png", "_normals.npy"),
                  # tiles: the global pass's low frequencies plus the tiles' high ones, per channel, renormalised
                  tile_split="unit"))
