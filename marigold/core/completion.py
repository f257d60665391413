"""Depth completion with a Marigold depth checkpoint and no training: Marigold-DC (Viola et al., ICCV 2025,
arXiv 2412.13389; prs-eth/Marigold-DC ``marigold_dc.py``, whose published recipe this module follows).

The sampler of :mod:`marigold.core.predict` is guided at test time by sparse measured depth. Per image and
ensemble member, the depth latent and a scale ``s`` and shift ``b`` (both starting at 1) are optimised while the
latent is denoised:

1. UNet forward on ``cat[image latent, depth latent]`` with gradients (to the latent only, never the weights);
2. the scheduler's clean-latent estimate (Tweedie) is decoded with gradients, read as affine depth ``d`` (mean of
   3 channels, clipped, to 0..1), unpadded and resized bilinearly to the input's size;
3. metric depth = ``s²·(cmax − cmin)·d + b²·cmin`` (cmin/cmax: the smallest/largest sparse depth; the squares
   keep both positive); loss = L1 + MSE on the measured pixels only;
4. the latent's gradient is rescaled to the norm of the predicted noise, Adam takes a step (lr 0.05 for the
   latent, 0.005 for ``s`` and ``b``), then an ordinary DDIM step from the updated latent with the UNet output
   of step 1.

DDIM with trailing timestep spacing whatever the checkpoint's scheduler (as the reference sets it); 50 steps and
768 px by default on a GPU, 10 steps and 512 px on the CPU (the reference's own CPU fallback). Members are merged
by the per-pixel median. One member's working set is one UNet forward and one VAE decode with their activations
kept for the backward pass; the decoder's at the processing resolution dominates (activation checkpointing
trades a second decoder forward for most of it: ``checkpointing``).

Then, by default (``snap``), the map is made to pass through the measurements (:mod:`.snap`; not part of the
published method, which ``snap=False`` returns as it is).

When one depth is measured (or all points share one), ``cmax − cmin`` is 0 and the reference's map would be
flat; then the range starts at the 3D outputs' default (far = ``far_over_near`` × near) and the note says so.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import image as img
from .checkpoint import MarigoldModel
from .metric import DEFAULT_FAR_OVER_NEAR, sparse_depth
from .modality import text_embedding
from .predict import CancelFn, ProgressFn, _generator
from .snap import snap_to_points
from ..errors import InputError

CPU_STEPS, CPU_RESOLUTION = 10, 512  # the reference's CPU fallback (marigold_dc.py main)
GPU_STEPS, GPU_RESOLUTION = 50, 768  # the method's own settings
LR_LATENT, LR_SCALE = 0.05, 0.005


@dataclass
class Completion:
    """Metric depth from :func:`complete`, float32 on the CPU.

    ``depth``: ``[N,1,H,W]`` in the sparse input's units (snapped to the points unless ``snap=False``). Per
    image: ``scale`` and ``shift`` per member (the
    metric map is ``scale·d + shift`` for the member's affine depth ``d`` in 0..1), ``loss`` per member and step
    (L1 + MSE on the measured pixels, before each step's update), ``points`` (measured pixels used).
    """

    depth: torch.Tensor
    scale: list[list[float]]
    shift: list[list[float]]
    loss: list[list[list[float]]]
    points: list[int]
    steps: int
    processing_resolution: int
    note: str = ""
    affine: torch.Tensor | None = field(default=None, repr=False)  # [N,1,H,W] the median member's 0..1 map
    unsnapped: torch.Tensor | None = field(default=None, repr=False)  # [N,1,H,W] before snapping (snap=True)


def _pred_epsilon(out: torch.Tensor, latent: torch.Tensor, alpha_prod: torch.Tensor, kind: str) -> torch.Tensor:
    """The noise the UNet's output implies (the norm the latent's gradient is rescaled to)."""
    if kind == "epsilon":
        return out
    if kind == "v_prediction":
        return alpha_prod.sqrt() * out + (1 - alpha_prod).sqrt() * latent
    if kind == "sample":
        return (latent - alpha_prod.sqrt() * out) / (1 - alpha_prod).sqrt()
    raise InputError(f"unsupported prediction type {kind!r} in the checkpoint's scheduler.")


def make_scheduler(model: MarigoldModel):
    """DDIM with trailing timestep spacing, from the checkpoint's scheduler settings (Marigold-DC's choice)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_config(model.scheduler_config, timestep_spacing="trailing")


@contextlib.contextmanager
def _autograd_ready(model: MarigoldModel, checkpointing: bool):
    """Gradients on (also inside ComfyUI's inference mode); weights made autograd-usable once; the decoder's
    (and UNet's) activation checkpointing switched on for the call and restored after."""
    with torch.inference_mode(False), torch.enable_grad():
        for part in (model.unet, model.vae):
            # a model loaded under torch.inference_mode (ComfyUI's loaders) holds inference tensors, which autograd
            # refuses to save: swap each for a normal copy, one tensor at a time (a one-off; same values)
            for mod in part.modules():
                for name, t in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
                    if t.is_inference():
                        new = t.clone()
                        if isinstance(t, torch.nn.Parameter):
                            mod._parameters[name] = torch.nn.Parameter(new, requires_grad=t.requires_grad)
                        else:
                            mod._buffers[name] = new
        before = {}
        if checkpointing:
            for part in (model.unet, model.vae):
                if getattr(part, "_supports_gradient_checkpointing", False) and \
                        hasattr(part, "enable_gradient_checkpointing"):
                    before[part] = bool(getattr(part, "is_gradient_checkpointing", False))
                    part.enable_gradient_checkpointing()
        try:
            yield
        finally:
            for part, was in before.items():
                if not was:
                    part.disable_gradient_checkpointing()


def _defaults(model: MarigoldModel, steps: int | None, res: int | None) -> tuple[int, int]:
    cpu = model.device.type == "cpu"
    if steps is None:
        steps = CPU_STEPS if cpu else GPU_STEPS
    if res is None:
        res = model.default_processing_resolution or GPU_RESOLUTION
        if cpu:
            res = min(res, CPU_RESOLUTION)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"`num_inference_steps` must be a positive integer; got {steps!r}.")
    if not isinstance(res, int) or res < 0 or res % img.LATENT_FACTOR:
        raise InputError(f"`processing_resolution` must be 0 (native) or a positive multiple of "
                         f"{img.LATENT_FACTOR}; got {res!r}.")
    return steps, res


def check_model(model: MarigoldModel) -> None:
    """Completion guides affine depth: refuse other modalities (and inverse-depth models) in one line."""
    if model.lotus:  # its UNet saw t = 999 alone; Marigold-DC guides the latent over many timesteps
        raise InputError(f"{model.path.name} is a Lotus checkpoint, trained at one timestep; depth completion guides "
                         f"the latent over many (use prs-eth/marigold-depth-v1-0, v1-1 or your own depth model), or "
                         f"fit the points to its depth (marigold.fit_metric, --metric fit).")
    if model.task != "depth" or model.prediction_type != "depth" or model.video_model:
        kind = ("a RollingDepth video" if model.video_model else
                f"an inverse-depth ({model.prediction_type})" if model.task == "depth" else f"a {model.task}")
        raise InputError(f"{model.path.name} is {kind} checkpoint; depth completion needs an affine depth checkpoint "
                         f"(prs-eth/marigold-depth-v1-0, the method's own, v1-1 or your own depth model).")


def complete(model: MarigoldModel, image: img.ImageInput, sparse, *, num_inference_steps: int | None = None,
             ensemble_size: int = 1, processing_resolution: int | None = None,
             resample_method_input: str = "bilinear", seed: int | torch.Generator | None = None,
             noise: torch.Tensor | None = None, lr_latent: float = LR_LATENT, lr_scale: float = LR_SCALE,
             checkpointing: bool = True, one_step: bool = False, snap: bool = True,
             far_over_near: float = DEFAULT_FAR_OVER_NEAR,
             progress: ProgressFn | None = None, check_cancel: CancelFn | None = None) -> Completion:
    """Metric depth ``[N,1,H,W]`` for one image or a batch, guided by ``sparse`` depth (Marigold-DC; see the
    module docstring).

    ``sparse``: an array/tensor the image's size with 0 or NaN where unmeasured (``[H,W]`` for every image, or
    ``[N,H,W]``), or a list of ``(x, y, depth)`` points in the image's pixels; the output is in its units.
    ``num_inference_steps`` / ``processing_resolution``: default 50 / 768 on a GPU, 10 / 512 on the CPU.
    ``noise``: the initial latents ``[N·E,4,h,w]`` (default: one draw from ``seed``, diffusers' convention).
    ``checkpointing``: recompute activations in the backward pass instead of keeping them (same answer, less
    memory, about one more forward's time).
    ``one_step``: optimise at the schedule's first timestep only (the latent is the one step's input noise,
    refined ``num_inference_steps`` times; no DDIM step between): for end-to-end fine-tuned checkpoints
    (GonzaloMG/marigold-e2e-ft-depth, our small e2e recipe), whose other timesteps were never trained. Not the
    published method, which walks the schedule (the default).
    ``snap``: afterwards, make the map pass through the measurements (:func:`marigold.core.snap.snap_to_points`:
    the residuals at the points spread along surfaces, guided by the map and the photo). Not part of the
    published method; ``snap=False`` returns its map as it is (also kept in ``Completion.unsnapped``). On our
    instrument it is what makes completion beat interpolating 100 points (bench/RESULTS.md, "Metric depth").
    """
    check_model(model)
    steps, res = _defaults(model, num_inference_steps, processing_resolution)
    if not isinstance(ensemble_size, int) or isinstance(ensemble_size, bool) or ensemble_size < 1:
        raise InputError(f"`ensemble_size` must be a positive integer; got {ensemble_size!r}.")
    img.check_resample(resample_method_input, "resample_method_input")
    images = img.to_tensor(image)  # [N,3,H,W] 0..1
    n, e = images.shape[0], ensemble_size
    size = tuple(images.shape[-2:])
    target = sparse_depth(sparse, size, n)  # [N,1,H,W], 0 = unmeasured
    ph, pw = img.padded_size(img.processing_size(size, res))
    h, w = ph // img.LATENT_FACTOR, pw // img.LATENT_FACTOR
    dev, dt = model.device, model.dtype
    if noise is None:
        noise = torch.randn((n * e, 4, h, w), generator=_generator(seed), dtype=dt)  # [N·E,4,h,w] on the CPU
    elif tuple(noise.shape) != (n * e, 4, h, w):
        raise InputError(f"`noise` must have shape {(n * e, 4, h, w)}; got {tuple(noise.shape)}.")
    scheduler = make_scheduler(model)
    scheduler.set_timesteps(1 if one_step else steps, device=dev)
    timesteps = scheduler.timesteps.repeat(steps) if one_step else scheduler.timesteps
    kind = scheduler.config.prediction_type
    alphas = scheduler.alphas_cumprod.to(dev)
    sf = model.vae_scaling_factor
    total, done = n * e * steps, 0
    notes: list[str] = []
    depths, affines, scales, shifts, losses, counts = [], [], [], [], [], []

    with _autograd_ready(model, checkpointing):
        text = text_embedding(model).to(device=dev, dtype=dt).detach().clone()  # [1,2,D]
        for i in range(n):
            with torch.no_grad():
                x, padding = img.preprocess(images[i:i + 1], res, resample_method_input)  # [1,3,PPH,PPW] -1..1
                cond = model.vae.encode(x.to(device=dev, dtype=dt)).latent_dist.mode() * sf  # [1,4,h,w]
            z = target[i:i + 1].to(dev)  # [1,1,H,W]
            mask = z > 0  # [1,1,H,W]
            zv = z[mask].float()  # [P]
            lo, hi = float(zv.min()), float(zv.max())
            span = hi - lo
            if span == 0:
                span = lo * (far_over_near - 1.0)
                notes.append(("" if n == 1 else f"image {i}: ") + f"one measured depth gives no range: started from "
                             f"far = {far_over_near:g}× near")
            counts.append(int(mask.sum()))

            def to_metric(latent: torch.Tensor, s: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                decoded = model.vae.decode((latent / sf).to(dt), return_dict=False)[0]  # [1,3,PPH,PPW]
                d = (decoded.float().mean(dim=1, keepdim=True).clip(-1.0, 1.0) + 1.0) / 2.0  # [1,1,PPH,PPW] 0..1
                d = img.resize(img.unpad(d, padding), size, "bilinear", antialias=False)  # [1,1,H,W]
                return s ** 2 * span * d + b ** 2 * lo, d  # metric [1,1,H,W], affine [1,1,H,W]

            member_depth, member_affine, s_out, b_out, l_out = [], [], [], [], []
            for k in range(e):
                # the optimiser works on an fp32 latent; the nets see the model's dtype
                latent = noise[i * e + k:i * e + k + 1].to(dev, torch.float32).clone().requires_grad_(True)  # [1,4,h,w]
                s = torch.ones(1, device=dev, requires_grad=True)
                b = torch.ones(1, device=dev, requires_grad=True)
                opt = torch.optim.Adam([{"params": [s, b], "lr": lr_scale}, {"params": [latent], "lr": lr_latent}])
                trace = []
                for t in timesteps:
                    if check_cancel is not None:
                        check_cancel()
                    out = model.unet(torch.cat([cond, latent.to(dt)], dim=1), t, encoder_hidden_states=text,
                                     return_dict=False)[0]  # [1,4,h,w]
                    x0 = scheduler.step(out.float(), t, latent).pred_original_sample  # [1,4,h,w]
                    metric, _ = to_metric(x0, s, b)  # [1,1,H,W]
                    loss = F.l1_loss(metric[mask], zv) + F.mse_loss(metric[mask], zv)
                    g_latent, g_s, g_b = torch.autograd.grad(loss, [latent, s, b])
                    with torch.no_grad():
                        eps = _pred_epsilon(out.float(), latent.float(), alphas[t].float(), kind)  # [1,4,h,w]
                        g_latent = g_latent * (torch.linalg.norm(eps) / torch.linalg.norm(g_latent).clamp(min=1e-8))
                    latent.grad, s.grad, b.grad = g_latent, g_s, g_b
                    opt.step()
                    if not one_step:
                        with torch.no_grad():
                            latent.copy_(scheduler.step(out.detach().float(), t, latent).prev_sample)  # [1,4,h,w]
                    trace.append(float(loss.detach()))
                    del out, x0, metric, loss
                    done += 1
                    if progress is not None:
                        progress(done, total)
                with torch.no_grad():
                    if one_step:  # the answer is the one step's prediction from the refined noise
                        out = model.unet(torch.cat([cond, latent.to(dt)], dim=1), timesteps[0],
                                         encoder_hidden_states=text, return_dict=False)[0]  # [1,4,h,w]
                        final = scheduler.step(out.float(), timesteps[0], latent).pred_original_sample
                    else:
                        final = latent
                    metric, d = to_metric(final, s, b)
                member_depth.append(metric.float().cpu())
                member_affine.append(d.float().cpu())
                s_out.append(float(s.detach() ** 2 * span))
                b_out.append(float(b.detach() ** 2 * lo))
                l_out.append(trace)
            stack = torch.cat(member_depth)  # [E,1,H,W]
            depths.append(stack.median(dim=0, keepdim=True).values if e > 1 else stack)  # [1,1,H,W]
            aff = torch.cat(member_affine)
            affines.append(aff.median(dim=0, keepdim=True).values if e > 1 else aff)
            scales.append(s_out)
            shifts.append(b_out)
            losses.append(l_out)
    note = "; ".join(notes)
    if note:
        warnings.warn(note, stacklevel=2)
    raw = torch.cat(depths)  # [N,1,H,W] the published method's answer
    final = snap_to_points(raw, target, images) if snap else raw
    return Completion(depth=final, unsnapped=raw if snap else None, scale=scales, shift=shifts, loss=losses,
                      points=counts, steps=steps,
                      processing_resolution=res, note=note, affine=torch.cat(affines))
