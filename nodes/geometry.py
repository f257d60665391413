"""DepthToRelief, DepthToMesh and DepthToPoints: a depth IMAGE (and its photo) → a 3D file on ComfyUI's own 3D wire.

All give a ``File3D`` on a ``FILE_3D`` output, the type core's **Save 3D Model** (SaveGLB) and **Preview 3D**
(Preview3D) take: Save 3D Model writes it into the output folder under its own format's suffix, Preview 3D
writes it there too and shows it. The geometry is built by the core library (``marigold.relief``,
``marigold.geometry.mesh``); these nodes only pick one frame of the IMAGE wires and wrap the file's bytes.
Any depth IMAGE works, Marigold's (near = dark) or another model's (near = bright): ``depth_near`` says which.
DepthToMesh and DepthToPoints also take metric depth (MarigoldDepthCompletion, MarigoldFitMetric): then the 3D
is in metres and neither ``depth`` nor ``far_over_near`` is used.
"""

from __future__ import annotations

from io import BytesIO

from comfy_api.latest import io

from ._core import marigold
from ._core import mesh as core_mesh
from ._core import relief as core_relief
from .wires import CATEGORY, PREFIX, MetricDepthType


NEAR = {"dark (Marigold)": "depth", "bright (Depth Anything, MiDaS, ControlNet)": "disparity"}


def _near_input() -> io.Combo.Input:
    return io.Combo.Input("depth_near", options=list(NEAR), default=list(NEAR)[0],
                          tooltip="Which end of the depth picture is near: dark (Marigold's depth) or bright "
                                  "(disparity maps: Depth Anything, MiDaS, depth ControlNet hints).")


def _frame(depth, image, batch_index: int):
    """One frame of the wires: depth IMAGE [B,H,W,C] → [H,W] (first channel), photo → [H,W,3] or None."""
    if batch_index >= depth.shape[0]:
        raise marigold.InputError(f"batch_index {batch_index} is out of range: the depth batch has "
                                  f"{depth.shape[0]} frame(s).")
    return depth[batch_index, :, :, 0].cpu().numpy(), _photo(image, batch_index)  # [H,W], [H,W,3] or None


def _photo(image, batch_index: int):
    """The photo's frame for ``batch_index`` (its only one, if one photo goes with every frame) or None."""
    if image is None:
        return None
    i = batch_index if image.shape[0] > 1 else 0
    return image[i, :, :, :3].cpu().numpy()  # [H,W,3], what the core reads as one HWC picture


def _metric_input() -> io.Input:
    return MetricDepthType.Input("metric", optional=True,
                                 tooltip="Depth in metres (MarigoldDepthCompletion, MarigoldFitMetric): the 3D is "
                                         "then in metres; depth, depth_near and far_over_near are not used.")


def _depth_frame(depth, metric, image, batch_index: int, node: str):
    """The depth to build from: the metric wire's frame (metres, space "metric") when wired, else the IMAGE's."""
    if metric is not None:
        if batch_index >= metric.depth.shape[0]:
            raise marigold.InputError(f"batch_index {batch_index} is out of range: the metric depth has "
                                      f"{metric.depth.shape[0]} frame(s).")
        return metric.depth[batch_index, 0].numpy(), _photo(image, batch_index), "metric"  # [H,W] metres
    if depth is None:
        raise marigold.InputError(f"{node} needs a depth: wire a depth IMAGE into depth, or metric depth "
                                  f"(MarigoldDepthCompletion, MarigoldFitMetric) into metric.")
    d, rgb = _frame(depth, image, batch_index)
    return d, rgb, None


def _file(geometry, file_type: str):
    from comfy_api.latest import Types

    return Types.File3D(BytesIO(core_mesh.export_bytes(geometry, file_type)), file_format=file_type)


class DepthToRelief(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        d = core_relief.DEFAULTS
        return io.Schema(
            node_id=PREFIX + "DepthToRelief",
            display_name="DepthToRelief",
            category=CATEGORY,
            description="A 3D-printable bas-relief of a depth map: watertight, sized in millimetres, near stands "
                        "highest, the photo's colours on top, in a frame on a back plate (the Marigold demo's "
                        "Bas-relief tab). Wire it to Save 3D Model and Preview 3D.",
            inputs=[
                io.Image.Input("depth"),
                io.Image.Input("image", optional=True, tooltip="The photo, for vertex colours (GLB, OBJ)."),
                _near_input(),
                io.Combo.Input("format", options=["stl", "glb", "obj"], default="stl",
                               tooltip="stl for slicers (no colour); glb and obj keep the photo's colours."),
                io.Float.Input("size_mm", default=d["size_mm"], min=1.0, max=10000.0, step=1.0,
                               tooltip="Longest side of the whole model, frame included, in millimetres."),
                io.Float.Input("embossing", default=d["embossing"], min=0.0, max=100.0, step=1.0,
                               tooltip="Relief height from the farthest to the nearest kept depth, in percent "
                                       "of the longest side."),
                io.Float.Input("plane_near", default=d["plane_near"], min=0.0, max=1.0, step=0.01,
                               tooltip="Depth nearer than this fraction of the range is flattened to the top."),
                io.Float.Input("plane_far", default=d["plane_far"], min=0.0, max=1.0, step=0.01,
                               tooltip="Depth farther than this fraction of the range is flattened to the back."),
                io.Int.Input("resolution_px", default=d["resolution_px"], min=0, max=4096, step=1,
                             tooltip="Vertices along the longest side (one per pixel of the depth resized to "
                                     "it); 0 = the depth's own size.", advanced=True),
                io.Int.Input("median_size", default=d["median_size"], min=1, max=15, step=2, advanced=True,
                             tooltip="Median filter on the depth before extruding (1 = off)."),
                io.Float.Input("frame_mm", default=d["frame_mm"], min=0.0, max=1000.0, step=0.5, advanced=True,
                               tooltip="Width of the frame around the relief (0 = no frame)."),
                io.Float.Input("frame_near_mm", default=d["frame_near_mm"], min=-1000.0, max=1000.0, step=0.5,
                               advanced=True, tooltip="Frame top above the relief's nearest level (negative: "
                                                      "below it, at most down to the back plate)."),
                io.Float.Input("back_mm", default=d["back_mm"], min=0.1, max=1000.0, step=0.5, advanced=True,
                               tooltip="Back plate under the relief's farthest level."),
                io.Int.Input("batch_index", default=0, min=0, max=4096, advanced=True,
                             tooltip="Which frame of a batch to turn into a relief."),
            ],
            outputs=[io.File3DAny.Output(display_name="model_3d")],
        )

    @classmethod
    def execute(cls, depth, depth_near, format, size_mm, embossing, plane_near, plane_far, resolution_px,
                median_size, frame_mm, frame_near_mm, back_mm, batch_index, image=None) -> io.NodeOutput:
        d, rgb = _frame(depth, image, batch_index)
        solid = core_relief.relief(d, rgb, size_mm=size_mm, resolution_px=resolution_px, embossing=embossing,
                                   plane_near=plane_near, plane_far=plane_far, median_size=median_size,
                                   frame_mm=frame_mm, frame_near_mm=frame_near_mm, back_mm=back_mm,
                                   space=NEAR[depth_near])
        return io.NodeOutput(_file(solid, format))


class DepthToMesh(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "DepthToMesh",
            display_name="DepthToMesh",
            category=CATEGORY,
            description="The scene as the camera saw it: the depth map back-projected through a pinhole camera, "
                        "one vertex per pixel with the photo's colours, triangles across depth jumps dropped. "
                        "With metric depth (MarigoldDepthCompletion) wired, the mesh is in metres. "
                        "Wire it to Save 3D Model and Preview 3D.",
            inputs=[
                io.Image.Input("depth", optional=True, tooltip="A depth IMAGE (unused when metric is wired)."),
                io.Image.Input("image", optional=True, tooltip="The photo, for vertex colours."),
                _metric_input(),
                _near_input(),
                io.Combo.Input("format", options=["glb", "obj", "ply"], default="glb"),
                io.Float.Input("fov_degrees", default=60.0, min=1.0, max=179.0, step=1.0,
                               tooltip="Horizontal field of view of the camera that took the picture."),
                io.Float.Input("far_over_near", default=3.0, min=1.01, max=1000.0, step=0.1,
                               tooltip="How much farther the far end of the depth is than the near end "
                                       "(depth is relative: this sets how deep the scene is; metric depth "
                                       "gives its own)."),
                io.Float.Input("edge_threshold", default=0.04, min=0.0, max=10.0, step=0.01,
                               tooltip="Drop triangles whose depth span exceeds this fraction of their depth "
                                       "(object edges); 0 = keep all."),
                io.Int.Input("resolution_px", default=1024, min=0, max=8192, step=1, advanced=True,
                             tooltip="At most this many vertices along the longest side; 0 = one per pixel."),
                io.Int.Input("batch_index", default=0, min=0, max=4096, advanced=True,
                             tooltip="Which frame of a batch to turn into a mesh."),
            ],
            outputs=[io.File3DAny.Output(display_name="model_3d")],
        )

    @classmethod
    def execute(cls, depth_near, format, fov_degrees, far_over_near, edge_threshold, resolution_px,
                batch_index, depth=None, image=None, metric=None) -> io.NodeOutput:
        d, rgb, space = _depth_frame(depth, metric, image, batch_index, "DepthToMesh")
        surface = core_mesh.depth_to_mesh(d, rgb, fov_degrees=fov_degrees, far_over_near=far_over_near,
                                          edge_threshold=edge_threshold, space=space or NEAR[depth_near],
                                          resolution_px=resolution_px or None)
        return io.NodeOutput(_file(surface, format))


class DepthToPoints(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "DepthToPoints",
            display_name="DepthToPoints",
            category=CATEGORY,
            description="The depth map as a coloured point cloud (.ply), one point per pixel, through the same "
                        "pinhole camera as DepthToMesh; in metres when metric depth is wired. Wire it to Save 3D "
                        "Model and Preview 3D.",
            inputs=[
                io.Image.Input("depth", optional=True, tooltip="A depth IMAGE (unused when metric is wired)."),
                io.Image.Input("image", optional=True, tooltip="The photo, for point colours."),
                _metric_input(),
                _near_input(),
                io.Float.Input("fov_degrees", default=60.0, min=1.0, max=179.0, step=1.0,
                               tooltip="Horizontal field of view of the camera that took the picture."),
                io.Float.Input("far_over_near", default=3.0, min=1.01, max=1000.0, step=0.1,
                               tooltip="How much farther the far end of the depth is than the near end (a "
                                       "relative depth IMAGE only; metric depth gives its own)."),
                io.Int.Input("resolution_px", default=1024, min=0, max=8192, step=1, advanced=True,
                             tooltip="At most this many points along the longest side; 0 = one per pixel."),
                io.Int.Input("batch_index", default=0, min=0, max=4096, advanced=True,
                             tooltip="Which frame of a batch to turn into points."),
            ],
            outputs=[io.File3DAny.Output(display_name="model_3d")],
        )

    @classmethod
    def execute(cls, depth_near, fov_degrees, far_over_near, resolution_px, batch_index, depth=None, image=None,
                metric=None) -> io.NodeOutput:
        d, rgb, space = _depth_frame(depth, metric, image, batch_index, "DepthToPoints")
        cloud = core_mesh.depth_to_points(d, rgb, fov_degrees=fov_degrees, far_over_near=far_over_near,
                                          space=space or NEAR[depth_near], resolution_px=resolution_px or None)
        return io.NodeOutput(_file(cloud, "ply"))
