"""DepthToStereo: photos (or a clip's frames) and their depth → stereo 3D pictures: side by side, half side by
side, top-bottom, red-cyan anaglyph or cross-eyed. The warp and fill are the core's (``marigold.stereo``)."""

from __future__ import annotations


from comfy_api.latest import io

from . import comfy_glue
from ._core import image as core_image
from ._core import marigold
from ._core import stereo as core_stereo
from .wires import CATEGORY, PREFIX, MetricDepthType



# what the depth picture is → (flip it first, the core's space)
NEAR = {
    "dark (Marigold)": (False, "depth"),
    "dark, inverse depth (RollingDepth video)": (True, "disparity"),
    "bright (Depth Anything, MiDaS, ControlNet)": (False, "disparity"),
}
LAYOUTS = {
    "side by side (full)": "sbs",
    "side by side (half width)": "hsbs",
    "top-bottom": "tb",
    "anaglyph (red-cyan)": "anaglyph",
    "cross-eyed": "cross",
}


class DepthToStereo(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = core_stereo.DEFAULTS
        return io.Schema(
            node_id=PREFIX + "DepthToStereo",
            display_name="DepthToStereo",
            category=CATEGORY,
            description="Stereo 3D from depth, for photos and whole clips: the two eyes' views by a forward warp "
                        "in which nearer pixels win, and what one eye sees behind an edge filled from the "
                        "background (no ghosts). For video, feed MarigoldVideoDepth's depth: one normalisation "
                        "for the clip, so the 3D strength does not pump. Outputs full or half side by side, "
                        "top-bottom, a red-cyan anaglyph or a cross-eyed pair. With metric depth wired, the "
                        "parallax follows the scene's true far/near ratio.",
            inputs=[
                io.Image.Input("image", tooltip="The photos or the clip's frames, IMAGE [B,H,W,C]."),
                io.Image.Input("depth", optional=True,
                               tooltip="Their depth (one per image), e.g. from MarigoldDepth or MarigoldVideoDepth "
                                       "(unused when metric is wired)."),
                MetricDepthType.Input("metric", optional=True,
                                      tooltip="Depth in metres (MarigoldDepthCompletion, MarigoldFitMetric): the "
                                              "parallax follows its own far/near ratio; depth, depth_near and "
                                              "far_over_near are not used."),
                io.Combo.Input("depth_near", options=list(NEAR), default=list(NEAR)[0],
                               tooltip="Which end of the depth picture is near. MarigoldVideoDepth with a "
                                       "RollingDepth checkpoint gives near = dark but affine in inverse depth."),
                io.Combo.Input("layout", options=list(LAYOUTS), default=list(LAYOUTS)[0],
                               tooltip="Full side by side: twice the width (VR players, most 3D viewers). Half: "
                                       "each view squeezed into half the width (3D TVs). Anaglyph: Dubois' "
                                       "red-cyan, for red-cyan glasses."),
                io.Float.Input("divergence", default=d["divergence"], min=0.0, max=core_stereo.MAX_DIVERGENCE,
                               step=0.1, tooltip="3D strength: the shift between the eyes from the nearest to the "
                                                 "farthest depth, percent of the width. 0-2 is comfortable; 0 = "
                                                 "the input unchanged."),
                io.Float.Input("convergence", default=d["convergence"], min=0.0, max=1.0, step=0.05,
                               tooltip="Which depth sits on the screen: 0 = the nearest (all behind the screen), "
                                       "1 = the farthest (all in front of it)."),
                io.Float.Input("far_over_near", default=d["far_over_near"], min=1.01, max=1000.0, step=0.1,
                               advanced=True, tooltip="How much farther the far end of the depth is than the near "
                                                      "end (a dark = near depth only; as in DepthToMesh)."),
                io.Float.Input("balance", default=d["balance"], min=-1.0, max=1.0, step=0.1, advanced=True,
                               tooltip="How the shift is split between the eyes: 0 = evenly; 1 = the input is "
                                       "the left eye; -1 = the input is the right eye."),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, depth_near, layout, divergence, convergence, far_over_near, balance, depth=None,
                metric=None) -> io.NodeOutput:
        if metric is not None:
            # one far/near ratio for the whole batch, taken here: the core warps a few frames at a time and would
            # take a metric map's ratio per chunk; as depth 0..1 with this ratio the warp is the same (the core's
            # own check: tests/test_completion.py)
            d, far_over_near = core_stereo.from_metric(metric.depth)  # [B,1,H,W] 0..1, near = 0
            flip, space = False, "depth"
        elif depth is not None:
            flip, space = NEAR[depth_near]
            d = core_image.from_bhwc(depth)[:, :1]  # [B,1,H,W]
        else:
            raise marigold.InputError("DepthToStereo needs a depth: wire a depth IMAGE into depth, or metric depth "
                                      "(MarigoldDepthCompletion, MarigoldFitMetric) into metric.")
        frames = core_stereo.stereo_frames(
            core_image.from_bhwc(image), 1.0 - d if flip else d, LAYOUTS[layout], divergence=divergence,
            convergence=convergence, far_over_near=far_over_near, balance=balance, space=space,
            progress=comfy_glue.Progress(), check_cancel=comfy_glue.check_cancel)
        return io.NodeOutput(core_image.to_bhwc(frames))
