"""Intrinsic-image (IID) training sets in their published layouts: InteriorVerse (appearance) and Hypersim
(lighting). Each sample carries the rendered image and its targets by name in ``sample.targets``, scene-linear
(the modality entry's ``Target.encode`` applies the sRGB curve where the model predicts sRGB).

InteriorVerse (Zhu et al. 2022, https://github.com/jingsenzhu/IndoorInverseRendering), as prs-eth's
``InteriorVerseIIDDataset`` reads it::

    ROOT/SCENE/NNN_im.exr        linear HDR RGB (shown through gamma 1/2.2, clipped, as prs-eth does)
    ROOT/SCENE/NNN_albedo.exr    linear albedo
    ROOT/SCENE/NNN_material.exr  R roughness, G metallicity (B is zeroed)
    ROOT/SCENE/NNN_mask.exr      0 where the pixel is invalid (a pixel counts when all channels are non-zero)

An optional split file lists ``rgb albedo material mask`` paths relative to ROOT per line (prs-eth's
``interiorverse_train_scenes_85.txt`` format); without one every ``*/*_im.exr`` is used.

Hypersim (Roberts et al. 2021), straight from the published HDF5 files (``train.data.hypersim`` for the image and
its tone mapping)::

    ROOT/SCENE/images/scene_cam_XX_final_hdf5/frame.NNNN.color.hdf5                 HDR linear RGB
    ROOT/SCENE/images/scene_cam_XX_final_hdf5/frame.NNNN.diffuse_reflectance.hdf5   albedo (linear)
    ROOT/SCENE/images/scene_cam_XX_final_hdf5/frame.NNNN.diffuse_illumination.hdf5  diffuse shading (linear)
    ROOT/SCENE/images/scene_cam_XX_final_hdf5/frame.NNNN.residual.hdf5              non-diffuse residual

Shading and residual are clipped at max(98th percentile of the shading, 98th percentile of the residual) and
divided by it (prs-eth's ``HypersimIIDDataset``), so both lie in 0..1 at one scale; an all-zero albedo pixel is
invalid, as there. The colour is tone-mapped as for depth training (``train.data.hypersim.tonemap``).

A missing target file is a one-line error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from marigold.errors import InputError

from .common import DepthSample
from .formats import read_hdf5
from .hypersim import HEIGHT, WIDTH, list_frames, tonemap

IV_TARGETS = ("albedo", "material", "mask")


def read_exr_rgb(path: str | Path) -> np.ndarray:
    """An RGB(A) OpenEXR file → ``[H,W,3]`` float32 (a one-channel file is repeated)."""
    from marigold.io.images import _openexr

    OpenEXR = _openexr()
    try:
        with OpenEXR.File(str(path)) as f:
            ch = f.channels()
            if "RGB" in ch or "RGBA" in ch:
                px = np.asarray(ch.get("RGB", ch.get("RGBA")).pixels, dtype=np.float32)
                return px[..., :3]
            if all(c in ch for c in "RGB"):
                return np.stack([np.asarray(ch[c].pixels, dtype=np.float32) for c in "RGB"], -1)
            first = np.asarray(next(iter(ch.values())).pixels, dtype=np.float32)
    except (OSError, RuntimeError) as e:
        raise InputError(f"{path}: not a readable OpenEXR file ({e}).") from None
    return np.repeat(first[..., None], 3, -1) if first.ndim == 2 else first[..., :3]


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"{path}: missing {what} file (the data set is incomplete or not in its published "
                         f"layout).")
    return path


class InteriorVerseDataset:
    """InteriorVerse frames with albedo and material targets (see the module docstring)."""

    def __init__(self, root: str | Path, split_file: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"InteriorVerse folder {self.root} does not exist.")
        if split_file is not None:
            split = Path(split_file)
            split = split if split.is_absolute() or split.is_file() else self.root / split
            if not split.is_file():
                raise InputError(f"{split}: InteriorVerse split file not found.")
            self.items = [tuple(line.split()[:4]) for line in split.read_text().splitlines()
                          if line.strip() and not line.startswith("#")]
        else:
            self.items = [(str(p.relative_to(self.root)),
                           *(str(p.relative_to(self.root)).replace("_im.exr", f"_{k}.exr") for k in IV_TARGETS))
                          for p in sorted(self.root.glob("*/*_im.exr"))]
        if not self.items:
            raise InputError(f"{self.root}: no InteriorVerse frames (SCENE/NNN_im.exr).")
        first = read_exr_rgb(_need(self.root / self.items[0][0], "image"))
        self.native_size = tuple(first.shape[:2])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> DepthSample:
        rgb_p, alb_p, mat_p, mask_p = (self.root / p for p in self.items[i])
        hdr = read_exr_rgb(_need(rgb_p, "image"))
        rgb = np.clip(np.clip(np.nan_to_num(hdr), 0, None) ** (1 / 2.2), 0, 1).astype(np.float32)
        albedo = read_exr_rgb(_need(alb_p, "albedo"))
        material = read_exr_rgb(_need(mat_p, "material")).copy()
        material[..., 2] = 0.0  # R roughness, G metallicity, B unused
        valid = (read_exr_rgb(_need(mask_p, "mask")) != 0).all(-1)
        h, w = rgb.shape[:2]
        return DepthSample(rgb=rgb, depth=np.zeros((h, w), np.float32), valid=valid,
                           targets={"albedo": albedo, "material": material}, name=str(self.items[i][0]))


class HypersimIIDDataset:
    """Hypersim frames with albedo, diffuse shading and non-diffuse residual (see the module docstring)."""

    LAYERS = {"albedo": "diffuse_reflectance", "shading": "diffuse_illumination", "residual": "residual"}
    CUTOFF_PERCENTILE = 98

    def __init__(self, root: str | Path, split_file: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"Hypersim folder {self.root} does not exist.")
        if split_file is not None:
            split = Path(split_file)
            split = split if split.is_absolute() or split.is_file() else self.root / split
            if not split.is_file():
                raise InputError(f"{split}: Hypersim split file not found.")
        else:
            split = None
        items = list_frames(self.root, split)
        if not items:
            raise InputError(f"{self.root}: no Hypersim frames (*/images/scene_cam_*_final_hdf5/frame.*.color.hdf5).")
        self.items = items
        self.native_size = (HEIGHT, WIDTH)

    def __len__(self) -> int:
        return len(self.items)

    def layer_path(self, color: Path, layer: str) -> Path:
        return color.with_name(color.name.replace(".color.hdf5", f".{self.LAYERS[layer]}.hdf5"))

    def __getitem__(self, i: int) -> DepthSample:
        color = self.items[i]
        hdr = read_hdf5(_need(color, "color")).astype(np.float32)
        raw = {k: read_hdf5(_need(self.layer_path(color, k), k)).astype(np.float32) for k in self.LAYERS}
        finite = np.isfinite(hdr).all(-1)
        for v in raw.values():
            finite &= np.isfinite(v).all(-1)
        valid = finite & ~(raw["albedo"] == 0).all(-1)  # prs-eth: all-zero albedo is invalid
        sh, res = (np.nan_to_num(raw[k], nan=0.0, posinf=0.0) for k in ("shading", "residual"))
        cut = max(float(np.percentile(sh, self.CUTOFF_PERCENTILE)), float(np.percentile(res, self.CUTOFF_PERCENTILE)))
        cut = cut if cut > 1e-8 else 1.0
        targets = {"albedo": np.clip(np.where(finite[..., None], raw["albedo"], np.nan), 0, 1),
                   "shading": np.clip(sh, 0, cut) / cut, "residual": np.clip(res, 0, cut) / cut}
        targets["albedo"] = np.where(finite[..., None], targets["albedo"], np.nan).astype(np.float32)
        rgb = tonemap(hdr, valid)
        h, w = rgb.shape[:2]
        return DepthSample(rgb=rgb, depth=np.zeros((h, w), np.float32), valid=valid,
                           targets={k: v.astype(np.float32) for k, v in targets.items()},
                           name=str(color.relative_to(self.root)))
