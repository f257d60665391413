"""SaveDepth16: depth IMAGEs as 16-bit PNG, float32 EXR or float32 NPY into ComfyUI's output folder; metric depth
(the MARIGOLD_METRIC_DEPTH wire) as a 16-bit PNG in millimetres or EXR / NPY in metres."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io, ui

from ._core import io as core_io
from ._core import marigold
from .wires import CATEGORY, PREFIX, MetricDepthType
from .visual import depth_from_image

FORMATS = {"png16": ".png", "exr": ".exr", "npy": ".npy"}


class SaveDepth16(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "SaveDepth16",
            display_name="SaveDepth16",
            category=CATEGORY,
            description="Saves depth without 8-bit banding: 16-bit greyscale PNG (depth × 65535), a float32 "
                        "OpenEXR (channel Z) or a float32 NumPy array (.npy), one file per frame, into the "
                        "output folder. Metric depth (MarigoldDepthCompletion, MarigoldFitMetric) is saved in "
                        "its units: the PNG in millimetres (what depth sensors write), EXR / NPY in metres.",
            inputs=[
                io.Image.Input("depth", optional=True, tooltip="A depth IMAGE, 0..1 (unused when metric is wired)."),
                MetricDepthType.Input("metric", optional=True,
                                      tooltip="Depth in metres: png16 in millimetres (up to 65.535 m), exr and "
                                              "npy in metres."),
                io.String.Input("filename_prefix", default="marigold/depth"),
                io.Combo.Input("format", options=list(FORMATS), default="png16"),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, filename_prefix, format, depth=None, metric=None) -> io.NodeOutput:
        if metric is not None:
            d = metric.depth  # [N,1,H,W] metres
        elif depth is not None:
            d = depth_from_image(depth)  # [N,1,H,W] 0..1
        else:
            raise marigold.InputError("SaveDepth16 needs a depth: wire a depth IMAGE into depth, or metric depth "
                                     "(MarigoldDepthCompletion, MarigoldFitMetric) into metric.")
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, d.shape[-1], d.shape[-2])
        results = []
        for i in range(d.shape[0]):
            file = f"{name}_{counter + i:05}_{FORMATS[format]}"
            path = os.path.join(folder, file)
            if format == "png16":
                (core_io.save_depth_mm if metric is not None else core_io.save_depth_16bit)(d[i], path)
            elif format == "exr":
                core_io.save_exr(d[i], path)
            else:
                core_io.save_npy(d[i], path)
            results.append(ui.SavedResult(file, subfolder, io.FolderType.output))
        if format == "png16":
            return io.NodeOutput(ui=ui.SavedImages(results))
        return io.NodeOutput(ui={"files": results})
