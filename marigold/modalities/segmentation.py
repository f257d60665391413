"""Text-grounded segmentation ("Cocogold"): a photo and a word → the mask of that object.

The model (Pedro Cuenca's Cocogold, a Marigold UNet that also reads a text prompt) does not predict a mask: it
repaints the input with the named object painted white (a binary target degenerated in training). The mask is
read back from that painted image: pixels whose every channel is at least ``threshold`` (the model paints about
0.935–0.997 there), then a 3×3 erosion and a 3×3 dilation (a morphological opening) to drop isolated white
specks. So that white skies and walls in the photo are not read as the mask, near-white input pixels are toned
down before inference (``tone_down_white``): the model reproduces what is not the object, so they come back below
the threshold. Ensemble members' painted images are averaged, then thresholded.

This module registers the ``segmentation`` entry of :mod:`marigold.modality` and holds ``marigold.segment``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..core import image as img
from ..core.checkpoint import MarigoldModel
from ..core.modality import Modality, Target, register
from ..core.predict import CancelFn, ProgressFn, finish, iter_members
from ..core.prompts import check_prompt, prompt_embedding, prompt_slug  # noqa: F401  (prompt_slug: re-exported)
from ..errors import InputError

THRESHOLD = 0.93  # just below the lowest white the published model paints (0.935, Cocogold's write-up)
WHITE_KNEE = 0.8  # input pixels whose every channel is above this are toned down...
WHITE_CEILING = 0.9  # ...into KNEE..CEILING, below the threshold


@dataclass
class Segmentation:
    """``mask [N,1,H,W]`` float32 0/1 (1 = the object); ``painted [N,3,H,W]`` 0..1 (the model's picture, the
    object white); ``score [N,1,H,W]`` the whiteness the mask thresholds (min over channels, 0..1);
    ``uncertainty [N,1,H,W]`` or None: the members' standard deviation of that score (ensembles of 2 or more)."""

    mask: torch.Tensor
    painted: torch.Tensor
    score: torch.Tensor
    uncertainty: torch.Tensor | None
    prompt: str


def tone_down_white(images: torch.Tensor, knee: float = WHITE_KNEE, ceiling: float = WHITE_CEILING) -> torch.Tensor:
    """``[N,3,H,W]`` 0..1 → the same with near-white pixels (every channel above ``knee``) compressed so that no
    channel's minimum exceeds ``ceiling``: their colour is kept, only their whiteness above the knee shrinks."""
    low = images.amin(dim=1, keepdim=True)  # [N,1,H,W]
    over = (low - knee).clamp(min=0.0)  # [N,1,H,W]
    # the whole pixel moves down by the part of its minimum above the knee, scaled into knee..ceiling
    shift = over * (1.0 - (ceiling - knee) / (1.0 - knee))  # [N,1,H,W]
    return (images - shift).clamp(0.0, 1.0)  # [N,3,H,W]


def whiteness(painted: torch.Tensor) -> torch.Tensor:
    """``[N,3,H,W]`` → ``[N,1,H,W]``: how white each pixel is (its darkest channel)."""
    return painted.amin(dim=1, keepdim=True)


def open_mask(mask: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Morphological opening of a 0/1 mask ``[N,1,H,W]``: erosion (min over size×size) then dilation (max)."""
    pad = size // 2
    eroded = -F.max_pool2d(-mask, size, stride=1, padding=pad)  # [N,1,H,W]
    return F.max_pool2d(eroded, size, stride=1, padding=pad)  # [N,1,H,W]


def mask_from_painted(painted: torch.Tensor, threshold: float = THRESHOLD, clean: bool = True) -> torch.Tensor:
    """The painted image ``[N,3,H,W]`` → the mask ``[N,1,H,W]`` 0/1: white pixels, opened when ``clean``."""
    mask = (whiteness(painted) >= threshold).float()  # [N,1,H,W]
    return open_mask(mask) if clean else mask


def check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise InputError(f"`threshold` must be a number in (0, 1]; got {threshold!r}.")


def segment(model: MarigoldModel, image: img.ImageInput, prompt: str, *, threshold: float = THRESHOLD,
            clean: bool = True, tone_down: bool = True, num_inference_steps: int | None = None,
            ensemble_size: int = 1, processing_resolution: int | None = None,
            match_input_resolution: bool = True, resample_method_input: str = "bilinear",
            resample_method_output: str = "bilinear", batch_size: int = 1,
            seed: int | torch.Generator | None = None, output_uncertainty: bool = False,
            progress: ProgressFn | None = None, check_cancel: CancelFn | None = None) -> Segmentation:
    """Mask what ``prompt`` names in one image or a batch (the same prompt for all), with a segmentation model.

    ``threshold``: whiteness from which a pixel of the painted image is the object; ``clean``: the 3×3 opening;
    ``tone_down``: tone down near-white input pixels first (see :func:`tone_down_white`). The other arguments mean
    what they mean for :func:`marigold.predict`. Ensemble members' painted images are averaged before thresholding.
    """
    prompt = check_prompt(model, prompt)
    check_threshold(threshold)
    img.check_resample(resample_method_output, "resample_method_output")
    prompt_embedding(model, prompt)  # encoded (text encoder loaded and freed) before the UNet runs; then cached
    images = img.to_tensor(image)  # [N,3,H,W] 0..1
    if tone_down:
        images = tone_down_white(images)
    finish_kw = dict(match_input_resolution=match_input_resolution, resample_method_output=resample_method_output)
    painted, uncs = [], []
    for m in iter_members(model, images, num_inference_steps=num_inference_steps, ensemble_size=ensemble_size,
                          processing_resolution=processing_resolution, resample_method_input=resample_method_input,
                          batch_size=batch_size, seed=seed, progress=progress, check_cancel=check_cancel,
                          prompt=prompt):
        v = m.values  # [E,3,PH,PW] painted members
        painted.append(finish(v.mean(dim=0, keepdim=True), m.original_size, "segmentation", **finish_kw).cpu())
        if output_uncertainty and v.shape[0] > 1:
            u = whiteness(v).std(dim=0, keepdim=True)  # [1,1,PH,PW]
            uncs.append(finish(u, m.original_size, "uncertainty", **finish_kw).cpu())
    out = torch.cat(painted).clamp(0.0, 1.0)  # [N,3,H,W]
    return Segmentation(mask=mask_from_painted(out, threshold, clean), painted=out, score=whiteness(out),
                        uncertainty=torch.cat(uncs) if uncs else None, prompt=prompt)


def _write_segmentation(m: Modality, p: torch.Tensor, out_dir: Path, stem: str, options: dict) -> dict:
    """The painted image ``[3,H,W]`` → ``<stem>_mask_<prompt>.png`` (8-bit, 255 = the object) and
    ``<stem>_painted_<prompt>.png``; options: prompt, threshold, clean (see marigold.segment)."""
    from ..io import images as io

    slug = prompt_slug(options.get("prompt") or "prompt")
    out = {"mask": out_dir / f"{stem}_mask_{slug}.png", "painted": out_dir / f"{stem}_painted_{slug}.png"}
    mask = mask_from_painted(p[None], options.get("threshold", THRESHOLD), options.get("clean", True))  # [1,1,H,W]
    io.save_rgb(mask[0], out["mask"])  # 8-bit grey, 255 = the object
    io.save_rgb(p, out["painted"])
    return out


def _predict_prompt(model: MarigoldModel, image: img.ImageInput, prompt: str, options: dict, **sampling
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the CLI runs per image and prompt: :func:`segment` → (the painted image ``[N,3,H,W]``, which the
    writer turns into the mask, and the uncertainty ``[N,1,H,W]`` or None); ``options``: threshold, clean,
    tone_down (the CLI's --threshold, --no-clean, --keep-white)."""
    seg = segment(model, image, prompt, threshold=options.get("threshold", THRESHOLD),
                  clean=options.get("clean", True), tone_down=options.get("tone_down", True), **sampling)
    return seg.painted, seg.uncertainty


# Text-grounded segmentation (Cocogold): the prompt names the object; the target is the input image with that object
# painted white (a binary target degenerated in Cocogold's first run); members are averaged, then thresholded
# (marigold.segment reads the mask from the painted image).
register(Modality("segmentation", "segmentation", (Target("painted", 3, "raw"),), "MarigoldSegmentationPipeline",
                  "segmentation", conditioning="prompt", ensemble="median", default_reduction="mean",
                  writer=_write_segmentation, files=("_mask_<prompt>.png", "_painted_<prompt>.png"),
                  predict_prompt=_predict_prompt, evaluation="train.segmentation_eval:EVALUATION"))

