"""MarigoldSegment: a photo and a word → the MASK of that object (text-grounded segmentation, "Cocogold")."""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_glue
from ._core import image as core_image
from ._core import marigold, segmentation
from .wires import CATEGORY, PREFIX, MarigoldModelType, sampling_inputs


class MarigoldSegment(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldSegment",
            display_name="MarigoldSegment",
            category=CATEGORY,
            description="Masks what the prompt names (e.g. 'car', 'dog', 'dining table') in each image of a batch, "
                        "with a segmentation checkpoint (pcuenq/marigold-coco-segmentation). The model repaints the "
                        "photo with the object white; the mask is read from that painted image.",
            inputs=[MarigoldModelType.Input("model"), io.Image.Input("image"),
                    io.String.Input("prompt", default="car", tooltip="What to mask: a short noun, e.g. a COCO "
                                                                     "class name."),
                    io.Float.Input("threshold", default=segmentation.THRESHOLD, min=0.01, max=1.0,
                                   step=0.005, tooltip="Whiteness of the painted image from which a pixel is the "
                                                       "object (the model paints 0.935–0.997 there)."),
                    io.Boolean.Input("clean", default=True,
                                     tooltip="3×3 erosion then dilation: drops isolated white specks."),
                    io.Boolean.Input("tone_down_white", default=True,
                                     tooltip="Tone down near-white photo pixels (skies, walls) before inference so "
                                             "that they are not read as the mask."),
                    *sampling_inputs(default_resolution=512)],
            outputs=[io.Mask.Output(display_name="mask"), io.Image.Output(display_name="painted"),
                     io.Mask.Output(display_name="uncertainty")],
        )

    @classmethod
    def execute(cls, model, image, prompt, threshold, clean, tone_down_white, denoising_steps, ensemble_size,
                processing_resolution, match_input_resolution, resample_method, seed, batch_size) -> io.NodeOutput:
        if not model.model.takes_prompt:
            raise marigold.InputError(
                f"MarigoldSegment needs a segmentation checkpoint, but '{model.name}' is a {model.task} checkpoint. "
                f"Choose pcuenq/marigold-coco-segmentation in LoadMarigold.")
        images = core_image.from_bhwc(image)  # [B,3,H,W]
        ph, pw = core_image.padded_size(core_image.processing_size(tuple(images.shape[-2:]), processing_resolution))
        m = comfy_glue.prepare(model, comfy_glue.sampling_memory(model, ph * pw, batch_size))
        seg = marigold.segment(m, images, prompt, threshold=threshold, clean=clean, tone_down=tone_down_white,
                               num_inference_steps=denoising_steps or None, ensemble_size=ensemble_size,
                               processing_resolution=processing_resolution,
                               match_input_resolution=match_input_resolution, resample_method_input=resample_method,
                               resample_method_output=resample_method, batch_size=batch_size, seed=seed,
                               output_uncertainty=True, progress=comfy_glue.Progress(),
                               check_cancel=comfy_glue.check_cancel)
        unc = seg.uncertainty if seg.uncertainty is not None else seg.mask * 0.0  # [B,1,H,W]
        return io.NodeOutput(seg.mask[:, 0], core_image.to_bhwc(seg.painted), unc[:, 0].clip(0.0, 1.0))
