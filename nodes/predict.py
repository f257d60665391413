"""MarigoldDepth, EnsembleAlign, MarigoldTiledDepth, MarigoldNormals, MarigoldIntrinsics: the sampler and its
ensembling."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from . import comfy_glue
from ._core import colorize, marigold, tiling
from ._core import image as core_image
from .wires import CATEGORY, PREFIX, MarigoldModelType, MembersBatch, MembersType, require_task, sampling_inputs


def _stream(loaded, image, denoising_steps, ensemble_size, processing_resolution, resample_method, seed, batch_size):
    """The core's streaming sampler with ComfyUI's progress bar, interrupt and device placement."""
    images = core_image.from_bhwc(image)  # [B,3,H,W]
    res = processing_resolution if processing_resolution is not None else 768
    ph, pw = core_image.padded_size(core_image.processing_size(tuple(images.shape[-2:]), res))
    model = comfy_glue.prepare(loaded, comfy_glue.sampling_memory(loaded, ph * pw, batch_size))
    return marigold.iter_members(
        model, images, num_inference_steps=denoising_steps or None,
        ensemble_size=ensemble_size, processing_resolution=processing_resolution,
        resample_method_input=resample_method, batch_size=batch_size, seed=seed,
        progress=comfy_glue.Progress(), check_cancel=comfy_glue.check_cancel)


class MarigoldDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldDepth",
            display_name="MarigoldDepth",
            category=CATEGORY,
            description="Affine-invariant depth (0 = near, 1 = far) for each image of a batch, frame by frame. "
                        "Gives the ensemble members (for EnsembleAlign) and a preview depth.",
            inputs=[MarigoldModelType.Input("model"), io.Image.Input("image"), *sampling_inputs()],
            outputs=[MembersType.Output(display_name="members"), io.Image.Output(display_name="preview")],
        )

    @classmethod
    def execute(cls, model, image, denoising_steps, ensemble_size, processing_resolution, match_input_resolution,
                resample_method, seed, batch_size) -> io.NodeOutput:
        require_task(model, "depth", "MarigoldDepth")
        m = model.model
        batch = MembersBatch([], "depth", match_input_resolution, resample_method, m.scale_invariant,
                             m.shift_invariant)
        previews = []
        for members in _stream(model, image, denoising_steps, ensemble_size, processing_resolution,
                               resample_method, seed, batch_size):
            members.values = members.values.cpu()  # one frame's members leave the device as soon as they are done
            batch.frames.append(members)
            pred, _ = marigold.ensemble_members(members, scale_invariant=m.scale_invariant,
                                                shift_invariant=m.shift_invariant)
            previews.append(_finish(batch, pred, members))
        return io.NodeOutput(batch, core_image.to_bhwc(torch.cat(previews)))


def _finish(batch: MembersBatch, x: torch.Tensor, members) -> torch.Tensor:
    # the members' modality says which channels are unit vectors to renormalise ("uncertainty" maps: none)
    what = members.modality if batch.task == members.task and members.modality is not None else batch.task
    return marigold.finish(x, members.original_size, what, match_input_resolution=batch.match_input_resolution,
                           resample_method_output=batch.resample_method_output).cpu()


class EnsembleAlign(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "EnsembleAlign",
            display_name="EnsembleAlign",
            category=CATEGORY,
            description="Aligns each frame's depth members (scale and shift) and combines them into one depth "
                        "map, with the members' spread as an uncertainty mask.",
            inputs=[
                MembersType.Input("members"),
                io.Combo.Input("reduction", options=["median", "mean"], default="median"),
                io.Float.Input("regularizer_strength", default=0.02, min=0.0, max=10.0, step=0.001,
                               tooltip="Pulls the combined depth to span 0..1."),
                io.Int.Input("max_iter", default=2, min=0, max=100, tooltip="Alignment solver iterations."),
                io.Float.Input("tol", default=1e-3, min=1e-8, max=1.0, step=1e-4, advanced=True),
                io.Int.Input("max_res", default=1024, min=0, max=8192, step=8, advanced=True,
                             tooltip="Solve the alignment at most at this size; 0 = full size."),
            ],
            outputs=[io.Image.Output(display_name="depth"), io.Mask.Output(display_name="uncertainty")],
        )

    @classmethod
    def execute(cls, members, reduction, regularizer_strength, max_iter, tol, max_res) -> io.NodeOutput:
        if members.task != "depth":
            raise marigold.InputError(f"EnsembleAlign combines depth members; these are {members.task} members.")
        depths, uncs = [], []
        for frame in members.frames:
            pred, unc = marigold.ensemble_members(
                frame, output_uncertainty=True, scale_invariant=members.scale_invariant,
                shift_invariant=members.shift_invariant, reduction=reduction,
                regularizer_strength=regularizer_strength, max_iter=max_iter, tol=tol, max_res=max_res or None)
            depth = _finish(members, pred, frame)  # [1,1,H,W]
            depths.append(depth)
            uncs.append(_finish(members, unc, frame) if unc is not None else torch.zeros_like(depth))
        return io.NodeOutput(core_image.to_bhwc(torch.cat(depths)), torch.cat(uncs)[:, 0].clip(0.0, 1.0))


class MarigoldTiledDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldTiledDepth",
            display_name="MarigoldTiledDepth",
            category=CATEGORY,
            description="High-resolution depth (0 = near, 1 = far) in bounded memory: a pass at the processing "
                        "resolution for the structure, then overlapping tiles of that size over the image at "
                        "tile_factor × the processing resolution, of which only the fine detail is kept, blended "
                        "without seams. Any Marigold depth checkpoint; time grows with the number of tiles, memory "
                        "does not. The detail tiles add is what the model resolves at its own size (docs/tiling.md).",
            inputs=[MarigoldModelType.Input("model"), io.Image.Input("image"), *sampling_inputs(),
                    io.Float.Input("tile_factor", default=2.0, min=1.0, max=16.0, step=0.25,
                                   tooltip="Working resolution = this × processing_resolution (never above the "
                                           "image's own size). 2 at 768: 1536 px, about 6 tiles."),
                    io.Int.Input("tile_overlap", default=192, min=1, max=core_image.MAX_PROCESSING_SIDE - 1, step=8,
                                 tooltip="Least overlap of neighbouring tiles, in working pixels; less than the "
                                         "tile (processing_resolution).")],
            outputs=[io.Image.Output(display_name="depth"), io.Mask.Output(display_name="uncertainty")],
        )

    @classmethod
    def execute(cls, model, image, denoising_steps, ensemble_size, processing_resolution, match_input_resolution,
                resample_method, seed, batch_size, tile_factor, tile_overlap) -> io.NodeOutput:
        require_task(model, "depth", "MarigoldTiledDepth")
        res = processing_resolution or 768
        m = comfy_glue.prepare(model, comfy_glue.sampling_memory(model, res * res, batch_size))
        out = tiling.predict_tiled(
            m, core_image.from_bhwc(image), tile_factor=tile_factor, tile_overlap=tile_overlap,
            num_inference_steps=denoising_steps or None, ensemble_size=ensemble_size,
            processing_resolution=processing_resolution, match_input_resolution=match_input_resolution,
            resample_method_input=resample_method, resample_method_output=resample_method, batch_size=batch_size,
            seed=seed, output_uncertainty=ensemble_size > 2, progress=comfy_glue.Progress(),
            check_cancel=comfy_glue.check_cancel)
        depth = out.prediction  # [B,1,H,W]
        unc = out.uncertainty if out.uncertainty is not None else torch.zeros_like(depth)
        return io.NodeOutput(core_image.to_bhwc(depth), unc[:, 0].clip(0.0, 1.0))


class MarigoldNormals(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldNormals",
            display_name="MarigoldNormals",
            category=CATEGORY,
            description="Surface normals from a Marigold normals checkpoint, as RGB (x right, y up, z to the viewer).",
            inputs=[MarigoldModelType.Input("model"), io.Image.Input("image"), *sampling_inputs(),
                    io.Combo.Input("reduction", options=["closest", "mean"], default="closest")],
            outputs=[io.Image.Output(display_name="normals"), io.Mask.Output(display_name="uncertainty")],
        )

    @classmethod
    def execute(cls, model, image, denoising_steps, ensemble_size, processing_resolution, match_input_resolution,
                resample_method, seed, batch_size, reduction) -> io.NodeOutput:
        require_task(model, "normals", "MarigoldNormals")
        batch = MembersBatch([], "normals", match_input_resolution, resample_method)
        rgbs, uncs = [], []
        for members in _stream(model, image, denoising_steps, ensemble_size, processing_resolution,
                               resample_method, seed, batch_size):
            pred, unc = marigold.ensemble_members(members, output_uncertainty=True, reduction=reduction)
            normals = _finish(batch, pred, members)  # [1,3,H,W]
            rgbs.append(colorize.normals_to_rgb(normals))
            u = _finish(MembersBatch([], "uncertainty", match_input_resolution, resample_method), unc, members) \
                if unc is not None else torch.zeros_like(normals[:, :1])
            uncs.append(u[:, :1])
        return io.NodeOutput(core_image.to_bhwc(torch.cat(rgbs)), torch.cat(uncs)[:, 0].clip(0.0, 1.0))


class MarigoldIntrinsics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldIntrinsics",
            display_name="MarigoldIntrinsics",
            category=CATEGORY,
            description="Intrinsic image decomposition. Appearance model: albedo and material (roughness, "
                        "metallicity); lighting model: albedo, shading and residual. Unused outputs are black.",
            inputs=[MarigoldModelType.Input("model"), io.Image.Input("image"), *sampling_inputs()],
            outputs=[io.Image.Output(display_name="albedo"),
                     io.Image.Output(display_name="material_or_shading"),
                     io.Image.Output(display_name="residual")],
        )

    @classmethod
    def execute(cls, model, image, denoising_steps, ensemble_size, processing_resolution, match_input_resolution,
                resample_method, seed, batch_size) -> io.NodeOutput:
        require_task(model, "intrinsics", "MarigoldIntrinsics")
        batch = MembersBatch([], "intrinsics", match_input_resolution, resample_method)
        frames = []
        for members in _stream(model, image, denoising_steps, ensemble_size, processing_resolution,
                               resample_method, seed, batch_size):
            pred, _ = marigold.ensemble_members(members)
            frames.append(_finish(batch, pred, members))  # [1,3T,H,W]
        out = torch.cat(frames)  # [N,ΣC,H,W]: the targets of the model's modality entry, stacked
        bounds = [0]
        for t in model.model.modality.targets:
            bounds.append(bounds[-1] + t.channels)
        targets = [out[:, a:b].expand(-1, 3, -1, -1) for a, b in zip(bounds, bounds[1:])]  # [N,3,H,W] each
        while len(targets) < 3:
            targets.append(torch.zeros_like(targets[0]))
        return io.NodeOutput(*(core_image.to_bhwc(t) for t in targets[:3]))
