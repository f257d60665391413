"""MarigoldVideoDepth: a clip of frames (IMAGE batch) → depth frames with ONE normalisation for the clip.
MarigoldTemporalFusion: any model's per-frame depth batch fused along the optical flow of its frames."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from . import comfy_glue
from ._core import image as core_image
from ._core import marigold, video, video_fusion, video_output
from .wires import CATEGORY, PREFIX, MarigoldModelType

log = logging.getLogger(__name__)
_SAID: set[str] = set()  # notes already logged by this ComfyUI process (once, not once per run)

PRESET_NOTE = ("fast: dilations 1,25, no refinement, 768 px; full: 1,10,25, 10 refinement steps, 1024 px; "
               "paper: the paper's settings.")


class MarigoldVideoDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldVideoDepth",
            display_name="MarigoldVideoDepth",
            category=CATEGORY,
            description="Depth for a video's frames, consistent over time, with ONE normalisation for the whole "
                        "clip: 0 = the nearest point of the clip, 1 = the farthest. RollingDepth checkpoints "
                        "look at snippets of frames together and give inverse depth, flipped here after the "
                        "one normalisation (1 − disparity) so that near = 0 like MarigoldDepth; the values "
                        "stay affine in inverse depth. A Marigold depth checkpoint works too (frames aligned "
                        "with each other). Feed the frames of Get Video Components.",
            inputs=[
                MarigoldModelType.Input("model"),
                io.Image.Input("frames", tooltip="The clip's frames in order, IMAGE [T,H,W,C]."),
                io.Combo.Input("preset", options=list(video.PRESETS), default="fast", tooltip=PRESET_NOTE),
                io.String.Input("dilations", default="",
                                tooltip="Frame spacings of the snippets, e.g. 1,10,25; empty = the preset's."),
                io.Int.Input("snippet_length", default=-1, min=-1, max=64,
                             tooltip="Frames per snippet; -1 = the preset's (3 for RollingDepth)."),
                io.Int.Input("refine_steps", default=-1, min=-1, max=100,
                             tooltip="Refinement steps after the snippets are aligned; 0 = none, -1 = the preset's "
                                     "(RollingDepth checkpoints only; 10 in the full and paper presets.)"),
                # 0, not -1, stands for the preset's: the front end snaps an Int to min + k·step, so a minimum of
                # -1 with step 8 offered only 63, 71, … 767 (found by the browser test)
                io.Int.Input("processing_resolution", default=0, min=0, max=core_image.MAX_PROCESSING_SIDE,
                             step=8, tooltip="Longest side the model sees (multiple of 8); 0 = the preset's "
                                             "(768 in fast and paper, 1024 in full), or the checkpoint's own "
                                             "when it was trained at another than 768."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                io.Int.Input("batch_size", default=1, min=1, max=64, advanced=True,
                             tooltip="Snippets denoised together; larger is faster on a big GPU, needs more memory."),
                # optional, so that graphs saved before it load unchanged (their widgets end at batch_size)
                io.Float.Input("temporal_strength", default=video_fusion.VIDEO_MODE_STRENGTH, min=0.0, max=1.0,
                               step=0.05, optional=True,
                               tooltip="Marigold checkpoints: temporal fusion after the frames are aligned (the "
                                       "previous output carried by the camera's motion, its depth too), on by "
                                       "default; 0 = off (the frames aligned only). Needs OpenCV "
                                       "(opencv-python-headless): without it the node runs at 0 and says so once "
                                       "in the console. RollingDepth checkpoints ignore it."),
            ],
            outputs=[io.Image.Output(display_name="depth"),
                     io.Float.Output(display_name="range_low",
                                     tooltip="The clip's raw value that became 0 before any flip (model's space)."),
                     io.Float.Output(display_name="range_high")],
        )

    @classmethod
    def execute(cls, model, frames, preset, dilations, snippet_length, refine_steps, processing_resolution, seed,
                batch_size, temporal_strength=None) -> io.NodeOutput:
        if not model.model.modality.video:
            raise marigold.InputError(
                f"MarigoldVideoDepth needs a depth checkpoint (RollingDepth, e.g. prs-eth/rollingdepth-v1-0, or a "
                f"Marigold depth model), but '{model.name}' is a {model.task} checkpoint. Choose one in "
                f"LoadMarigold, or use Marigold{model.task.capitalize()} frame by frame.")
        if model.model.video_model:
            temporal_strength = None  # RollingDepth: no fusion
        elif temporal_strength and not video_fusion.available():
            # a graph (every saved workflow carries the default 1) must not fail for want of OpenCV, which the
            # pack does not install (competing opencv packages break ComfyUI environments)
            if video_fusion.MISSING_NOTE not in _SAID:
                _SAID.add(video_fusion.MISSING_NOTE)
                log.warning("MarigoldVideoDepth: %s", video_fusion.MISSING_NOTE)
            temporal_strength = 0.0
        clip = core_image.from_bhwc(frames)  # [T,3,H,W]
        res = processing_resolution or None  # 0: the preset's
        n = None if snippet_length < 0 else snippet_length
        pixels, batch = video_output.snippet_workload(tuple(clip.shape[-2:]), preset, res, n, batch_size)
        m = comfy_glue.prepare(model, comfy_glue.sampling_memory(model, pixels, batch))
        pred = video.predict_video(
            m, clip, preset=preset, dilations=video_output.parse_dilations(dilations), snippet_length=n,
            refine_steps=None if refine_steps < 0 else refine_steps, processing_resolution=res, seed=seed,
            batch_size=batch_size, progress=comfy_glue.Progress(), check_cancel=comfy_glue.check_cancel,
            temporal_strength=temporal_strength)
        depth = video_output.near_zero(pred.depth, pred.space)  # [T,1,H,W]
        lo, hi = pred.value_range
        return io.NodeOutput(core_image.to_bhwc(depth), float(lo), float(hi))


class MarigoldTemporalFusion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldTemporalFusion",
            display_name="MarigoldTemporalFusion",
            category=CATEGORY,
            description="Removes the flicker of per-frame depth from ANY model (Depth Anything, Lotus-D, Marigold "
                        "from ComfyUI core, ours): each frame's depth is blended with the previous frame's result "
                        "carried along the optical flow of the frames, where the flow is reliable and the two agree "
                        "(after fitting the frame's scale and shift to it); where something moves or appears, the "
                        "frame's own depth wins, so nothing trails behind. Needs OpenCV (pip install "
                        "opencv-python-headless). Near may be dark or bright: the output keeps the input's "
                        "convention and range (one mapping for the whole batch).",
            inputs=[
                io.Image.Input("frames", tooltip="The clip's frames in order, IMAGE [T,H,W,C]."),
                io.Image.Input("depth", tooltip="One depth image per frame, IMAGE [T,h,w,C], from any depth node."),
                io.Float.Input("strength", default=video_fusion.DEFAULT_STRENGTH, min=0.0, max=1.0, step=0.05,
                               tooltip="How much of the history is kept where it agrees: 0 = the depth unchanged, "
                                       "1 = up to 90 % (about ten frames of memory)."),
            ],
            outputs=[io.Image.Output(display_name="depth")],
        )

    @classmethod
    def execute(cls, frames, depth, strength) -> io.NodeOutput:
        return io.NodeOutput(video_fusion.fuse_image_batch(frames, depth, strength))
