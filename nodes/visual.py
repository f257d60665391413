"""Colorize and DepthToNormal: depth IMAGEs into pictures and geometry."""

from __future__ import annotations

from comfy_api.latest import io

from ._core import colorize, marigold
from ._core import image as core_image
from .wires import CATEGORY, PREFIX

PRESETS = ["custom", "controlnet (gray, near = white)"]
RANGES = ["per image", "whole batch"]


def _colormaps() -> list[str]:
    import matplotlib

    names = sorted(matplotlib.colormaps, key=str.lower)
    first = ["Spectral", "gray", "magma", "viridis", "inferno", "turbo", "Spectral_r", "gray_r"]
    return [n for n in first if n in names] + [n for n in names if n not in first]


def depth_from_image(depth) -> "torch.Tensor":  # noqa: F821
    """A depth IMAGE ``[N,H,W,C]`` (grey, as MarigoldDepth and EnsembleAlign give it) → ``[N,1,H,W]``."""
    return core_image.from_bhwc(depth)[:, :1]


class Colorize(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "Colorize",
            display_name="Colorize",
            category=CATEGORY,
            description="Depth → colour image through any matplotlib colormap. The ControlNet preset gives what "
                        "depth ControlNets expect: grey, near = white. For a video, stretch with range = whole "
                        "batch, so that every frame uses one range.",
            inputs=[
                io.Image.Input("depth"),
                io.Combo.Input("preset", options=PRESETS, default=PRESETS[0],
                               tooltip="controlnet: gray colormap, inverted (overrides colormap and invert)."),
                io.Combo.Input("colormap", options=_colormaps(), default="Spectral"),
                io.Boolean.Input("invert", default=False, tooltip="Near = bright (what depth ControlNets expect)."),
                io.Float.Input("percentile_low", default=0.0, min=0.0, max=100.0, step=0.5,
                               tooltip="Stretch each map between two of its percentiles; 0 and 100 = no stretch."),
                io.Float.Input("percentile_high", default=100.0, min=0.0, max=100.0, step=0.5),
                io.Combo.Input("range", options=RANGES, default=RANGES[0],
                               tooltip="Where the percentiles are taken: each image on its own, or the whole "
                                       "batch at once (one range for every frame of a video: no flicker)."),
            ],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, depth, preset, colormap, invert, percentile_low, percentile_high,
                range=RANGES[0]) -> io.NodeOutput:  # noqa: A002  (the input's name)
        if preset != PRESETS[0]:
            colormap, invert = colorize.CONTROLNET_PRESET["cmap"], colorize.CONTROLNET_PRESET["invert"]
        percentile = None if (percentile_low, percentile_high) == (0.0, 100.0) else (percentile_low, percentile_high)
        rgb = marigold.colorize_depth(depth_from_image(depth), cmap=colormap, invert=invert, percentile=percentile,
                                      per_image=range == RANGES[0])
        return io.NodeOutput(core_image.to_bhwc(rgb))


class DepthToNormal(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "DepthToNormal",
            display_name="DepthToNormal",
            category=CATEGORY,
            description="Geometric surface normals of a depth map (0 = near), as RGB like MarigoldNormals gives.",
            inputs=[
                io.Image.Input("depth"),
                io.Float.Input("fov_degrees", default=60.0, min=1.0, max=179.0, step=1.0,
                               tooltip="Horizontal field of view of the camera that took the picture."),
                io.Float.Input("far_over_near", default=3.0, min=1.01, max=1000.0, step=0.1, advanced=True,
                               tooltip="How much farther depth 1 is than depth 0; sets how strongly "
                                       "perspective bends the surface."),
            ],
            outputs=[io.Image.Output(display_name="normals")],
        )

    @classmethod
    def execute(cls, depth, fov_degrees, far_over_near) -> io.NodeOutput:
        normals = marigold.depth_to_normals(depth_from_image(depth), fov_degrees=fov_degrees, near=1.0,
                                            far=far_over_near)
        return io.NodeOutput(core_image.to_bhwc(colorize.normals_to_rgb(normals)))
