"""The image-conditioned latent sampler: one loop for depth, normals and intrinsics.

They differ only in what their entry of :mod:`marigold.modality` says: how the decoded target is read
(``_read_target``), how members are ensembled (``ensemble_members``) and which text conditions the UNet.
Images stream through: each is encoded when its first ensemble member is due, and its members are handed out
(and freed) as soon as the last one is decoded, so a long batch of video frames never holds all members of all
frames at once. The initial noise is one draw of shape ``(N·E, 4·T, h, w)`` from a CPU generator, in the
model's dtype, and the batches walk the N·E members in order: diffusers' convention, so one seed gives the
same prediction here and there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from . import image as img
from .checkpoint import MarigoldModel
from .ensemble import normalize_normals
from ..errors import InputError
from .modality import Modality, text_embedding
from .modality import get as get_modality

ProgressFn = Callable[[int, int], None]  # (steps done, steps total)
CancelFn = Callable[[], None]  # raises to stop (ComfyUI's interrupt check, or marigold.errors.Cancelled)


@dataclass
class Members:
    """The E ensemble members of one image at processing resolution, before ensembling.

    ``values``: ``[E,C,PH,PW]`` float32 (depth C=1 in 0..1; normals C=3 unit vectors; intrinsics ``[E,T·3,…]``).
    """

    index: int
    values: torch.Tensor
    original_size: tuple[int, int]
    task: str
    modality: Modality | None = None  # None: the built-in entry of ``task``


def _modality_of(task: str, modality: Modality | None) -> Modality:
    return modality if modality is not None else get_modality(task)


@dataclass
class Prediction:
    """Final predictions, float32 on the CPU: ``prediction [N,C,H,W]``, ``uncertainty [N,C',H,W]`` or None.

    Depth: C=1 in 0..1 (near = 0 for depth models, as Marigold predicts). Normals: C=3 in -1..1.
    Intrinsics: C=3·T, the T targets (``target_names``) stacked along channels, each in 0..1.
    """

    prediction: torch.Tensor
    uncertainty: torch.Tensor | None
    task: str
    target_names: list[str]


def check_options(steps: int | None, ensemble_size: int, processing_resolution: int | None, batch_size: int,
                  resample_input: str = "bilinear") -> None:
    """Refuse bad sampling settings with one line naming the parameter; None (the checkpoint's default, resolved
    later) passes for ``steps`` and ``processing_resolution``."""
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise InputError(f"`num_inference_steps` must be a positive integer; got {steps!r}.")
    if not isinstance(ensemble_size, int) or ensemble_size < 1:
        raise InputError(f"`ensemble_size` must be a positive integer; got {ensemble_size!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
    if processing_resolution is None:
        pass
    elif not isinstance(processing_resolution, int) or processing_resolution < 0:
        raise InputError(f"`processing_resolution` must be 0 (native) or a positive integer; "
                         f"got {processing_resolution!r}.")
    elif processing_resolution % img.LATENT_FACTOR:
        raise InputError(f"`processing_resolution` must be a multiple of {img.LATENT_FACTOR}; "
                         f"got {processing_resolution}.")
    img.check_resample(resample_input, "resample_method_input")


def _generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"`seed` must be an integer; got {seed!r}.")
    return torch.Generator("cpu").manual_seed(seed)


def _read_target(model: MarigoldModel, decoded: torch.Tensor) -> torch.Tensor:
    """VAE output ``[B·T,3,PPH,PPW]`` in -1..1 → the targets (depth ``[B,1,…]`` 0..1, normals unit, ...)."""
    if model.lotus:  # Lotus clamps each channel before the mean (Marigold after it)
        decoded = decoded.clamp(-1.0, 1.0)
    return model.modality.decode(decoded, model.n_targets, use_full_z_range=model.use_full_z_range)


@torch.inference_mode()
def iter_members(model: MarigoldModel, image: img.ImageInput, *, num_inference_steps: int | None = None,
                 ensemble_size: int = 1, processing_resolution: int | None = None,
                 resample_method_input: str = "bilinear", batch_size: int = 1,
                 seed: int | torch.Generator | None = None, progress: ProgressFn | None = None,
                 check_cancel: CancelFn | None = None, prompt: str | None = None) -> Iterator[Members]:
    """Sample E members per image and yield them image by image (see the module docstring).

    ``prompt``: the text for modalities conditioned on one (``conditioning == "prompt"``); others take none.
    """
    steps = model.default_denoising_steps if num_inference_steps is None else num_inference_steps
    if steps is None:
        raise InputError("`num_inference_steps` is not set and the checkpoint names no default_denoising_steps.")
    if model.lotus and steps != 1:
        raise InputError(f"{model.path.name} is a Lotus checkpoint, trained at one timestep (t = 999): "
                         f"`num_inference_steps` must be 1; got {steps}.")
    res = model.default_processing_resolution if processing_resolution is None else processing_resolution
    res = 768 if res is None else res
    check_options(steps, ensemble_size, res, batch_size, resample_method_input)
    images = img.to_tensor(image)  # [N,3,H,W] 0..1
    # a deterministic checkpoint (Lotus-D: no noise input) gives E equal members: one is sampled and handed out E times
    copies = ensemble_size if model.lotus == "d" else 1
    n, e, t_count = images.shape[0], ensemble_size // copies, model.n_targets
    size = tuple(images.shape[-2:])
    ph, pw = img.padded_size(img.processing_size(size, res))
    h, w = ph // img.LATENT_FACTOR, pw // img.LATENT_FACTOR
    dev, dt = model.device, model.dtype

    generator = _generator(seed)
    noise = torch.randn((n * e, 4 * t_count, h, w), generator=generator, dtype=dt)  # [N·E,4T,h,w] on the CPU
    text = text_embedding(model, prompt).to(device=dev, dtype=dt)  # [1,T,D]: T = 2 for the empty prompt
    scheduler = model.make_scheduler()
    sf = model.vae_scaling_factor
    # the decoder's activations at full resolution dominate peak memory; on the CPU a batch of one already fills
    # the cores (5 members at 512 px: 0.9 GB less per call, no slower), so only the UNet takes the batch there
    decode_batch = 1 if dev.type == "cpu" else batch_size
    total = -(-n * e // batch_size) * steps
    done = 0
    latents: dict[int, tuple[torch.Tensor, tuple[int, int]]] = {}  # image → (latent [1,4,h,w], padding)
    pending: dict[int, list[torch.Tensor]] = {}  # image → decoded members so far

    for start in range(0, n * e, batch_size):
        stop = min(start + batch_size, n * e)
        owners = [k // e for k in range(start, stop)]
        for i in dict.fromkeys(owners):
            if i not in latents:
                x, padding = img.preprocess(images[i:i + 1], res, resample_method_input)  # [1,3,PPH,PPW] -1..1
                x = x.to(device=dev, dtype=dt)
                latents[i] = (model.vae.encode(x).latent_dist.mode() * sf, padding)  # [1,4,h,w]
        cond = torch.cat([latents[i][0] for i in owners])  # [B,4,h,w]
        pred = noise[start:stop].to(dev)  # [B,4T,h,w]
        text_b = text.expand(stop - start, -1, -1)  # [B,T,D]
        scheduler.set_timesteps(steps, device=dev)
        for t in scheduler.timesteps:
            if check_cancel is not None:
                check_cancel()
            out = model.unet(torch.cat([cond, pred], dim=1), t, encoder_hidden_states=text_b,
                             return_dict=False)[0]  # [B,4T,h,w]
            pred = scheduler.step(out, t, pred, generator=generator).prev_sample  # [B,4T,h,w]
            done += 1
            if progress is not None:
                progress(done, total)
        flat = pred.reshape(-1, 4, h, w)  # [B·T,4,h,w]
        decoded = torch.cat([model.vae.decode(flat[j:j + decode_batch] / sf, return_dict=False)[0]
                             for j in range(0, flat.shape[0], decode_batch)])  # [B·T,3,PPH,PPW]
        target = _read_target(model, decoded).float()  # [B·T,C,PPH,PPW]
        target = target.reshape(stop - start, -1, *target.shape[-2:])  # [B,T·C,PPH,PPW]
        for k, i in enumerate(owners):
            pending.setdefault(i, []).append(target[k:k + 1])
            if len(pending[i]) == e:
                values = img.unpad(torch.cat(pending.pop(i)), latents.pop(i)[1])  # [E,T·C,PH,PW]
                if copies > 1:
                    values = values.repeat(copies, 1, 1, 1)  # [E,T·C,PH,PW]
                yield Members(index=i, values=values, original_size=size, task=model.task,
                              modality=model.modality)


def ensemble_members(members: Members, *, output_uncertainty: bool = False, scale_invariant: bool = True,
                     shift_invariant: bool = True, reduction: str | None = None,
                     **ensembling_kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One image's members → ``(prediction [1,C,PH,PW], uncertainty | None)`` at processing resolution."""
    m = _modality_of(members.task, members.modality)
    return m.combine(members.values, output_uncertainty=output_uncertainty, reduction=reduction,
                     scale_invariant=scale_invariant, shift_invariant=shift_invariant, **ensembling_kwargs)


def finish(prediction: torch.Tensor, original_size: tuple[int, int], task: str | Modality, *,
           match_input_resolution: bool = True, resample_method_output: str = "bilinear") -> torch.Tensor:
    """Resize a prediction ``[N,C,PH,PW]`` back to the input size (no antialiasing, as diffusers).

    ``task``: the modality (or its task name) whose unit targets are normalised again; "uncertainty": none.
    """
    img.check_resample(resample_method_output, "resample_method_output")
    if not match_input_resolution:
        return prediction
    out = img.resize(prediction, original_size, resample_method_output, antialias=False)
    if isinstance(task, Modality):
        return task.renormalize(out)
    if task == "normals":
        out = normalize_normals(out)
    return out


def predict(model: MarigoldModel, image: img.ImageInput, *, num_inference_steps: int | None = None,
            ensemble_size: int = 1, processing_resolution: int | None = None, match_input_resolution: bool = True,
            resample_method_input: str = "bilinear", resample_method_output: str = "bilinear",
            batch_size: int = 1, seed: int | torch.Generator | None = None, output_uncertainty: bool = False,
            ensembling_kwargs: dict | None = None, progress: ProgressFn | None = None,
            check_cancel: CancelFn | None = None, prompt: str | None = None) -> Prediction:
    """Predict depth, normals or intrinsics (whatever the checkpoint does) for one image or a batch.

    Arguments mean what they mean for diffusers' Marigold pipelines; ``seed`` takes an int or a CPU generator;
    ``prompt``: the text for prompt-conditioned modalities (see :mod:`marigold.modality`).
    """
    img.check_resample(resample_method_output, "resample_method_output")
    kwargs = dict(ensembling_kwargs or {})
    if model.modality.ensemble == "affine":
        kwargs.update(scale_invariant=model.scale_invariant, shift_invariant=model.shift_invariant)
    preds, uncs = [], []
    for m in iter_members(model, image, num_inference_steps=num_inference_steps, ensemble_size=ensemble_size,
                          processing_resolution=processing_resolution, resample_method_input=resample_method_input,
                          batch_size=batch_size, seed=seed, progress=progress, check_cancel=check_cancel,
                          prompt=prompt):
        p, u = ensemble_members(m, output_uncertainty=output_uncertainty, **kwargs)
        finish_kw = dict(match_input_resolution=match_input_resolution, resample_method_output=resample_method_output)
        preds.append(finish(p, m.original_size, model.modality, **finish_kw).cpu())
        if output_uncertainty and u is not None:
            uncs.append(finish(u, m.original_size, "uncertainty", **finish_kw).cpu())
    return Prediction(prediction=torch.cat(preds), uncertainty=torch.cat(uncs) if uncs else None,
                      task=model.task, target_names=model.target_names)


def predict_depth(model: MarigoldModel, image: img.ImageInput, **kwargs) -> Prediction:
    """:func:`predict` for a depth checkpoint; refuses others with a clear message."""
    _require(model, "depth")
    return predict(model, image, **kwargs)


def predict_normals(model: MarigoldModel, image: img.ImageInput, **kwargs) -> Prediction:
    _require(model, "normals")
    return predict(model, image, **kwargs)


def predict_intrinsics(model: MarigoldModel, image: img.ImageInput, **kwargs) -> Prediction:
    _require(model, "intrinsics")
    return predict(model, image, **kwargs)


def _require(model: MarigoldModel, task: str) -> None:
    if model.task != task:
        raise InputError(f"{model.path.name} is a Marigold {model.task} checkpoint; this needs a {task} checkpoint "
                         f"(e.g. prs-eth/marigold-{task if task != 'intrinsics' else 'iid-appearance'}-v1-1).")
