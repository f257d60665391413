"""SaveDepth16: depth IMAGEs as 16-bit PNG, float32 EXR or float32 NPY into ComfyUI's output folder."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.latest import io, ui

from ._core import io as core_io
from .wires import CATEGORY, PREFIX
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
                        "output folder.",
            inputs=[
                io.Image.Input("depth"),
                io.String.Input("filename_prefix", default="marigold/depth"),
                io.Combo.Input("format", options=list(FORMATS), default="png16"),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, depth, filename_prefix, format) -> io.NodeOutput:
        d = depth_from_image(depth)  # [N,1,H,W]
        out_dir = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, out_dir, d.shape[-1], d.shape[-2])
        results = []
        for i in range(d.shape[0]):
            file = f"{name}_{counter + i:05}_{FORMATS[format]}"
            path = os.path.join(folder, file)
            if format == "png16":
                core_io.save_depth_16bit(d[i], path)
            elif format == "exr":
                core_io.save_exr(d[i], path)
            else:
                core_io.save_npy(d[i], path)
            results.append(ui.SavedResult(file, subfolder, io.FolderType.output))
        if format == "png16":
            return io.NodeOutput(ui=ui.SavedImages(results))
        return io.NodeOutput(ui={"files": results})
