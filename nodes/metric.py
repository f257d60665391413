"""LoadSparseDepth, MarigoldDepthCompletion, MarigoldFitMetric: depth in metres from a few measurements.

The measurements come from a file (a LiDAR sweep, a phone's depth sensor, SfM points: 16-bit PNG in millimetres,
``.npy`` / ``.exr`` in metres) and/or from ``known_points`` typed in the node ("x,y,metres; ..."). The completion
is Marigold-DC (``marigold.complete``), the fit one scale and shift (``marigold.fit_metric``). Both give the
MARIGOLD_METRIC_DEPTH wire (metres, for DepthToMesh / DepthToPoints / DepthToStereo), a depth IMAGE normalised to
0..1 (near = 0, for Colorize and ControlNets) and a colour preview with a metre scale bar.
"""

from __future__ import annotations

import logging
import warnings

from comfy_api.latest import io

from . import comfy_glue
from ._core import colorize, completion, marigold
from ._core import image as core_image
from ._core import io as core_io
from ._core import metric as core_metric
from ._core import stereo as core_stereo
from .geometry import NEAR, _near_input
from .wires import (CATEGORY, PREFIX, MarigoldModelType, MetricBatch, MetricDepthType, SparseDepth,
                    SparseDepthType, require_task)

log = logging.getLogger("marigold")


def _known_points_input() -> io.String.Input:
    return io.String.Input("known_points", default="", multiline=False,
                           tooltip="Distances you know, in pixels of the image and metres: 'x,y,metres', several "
                                   "separated by ';' (e.g. 320,240,2.5; 100,400,1.2). A point overrides the "
                                   "sparse map at its pixel.")


def _snap_input(default: bool) -> io.Boolean.Input:
    # optional: API prompts saved before it existed keep running (with the default)
    return io.Boolean.Input("snap_to_points", default=default, optional=True,
                            tooltip="Make the map pass through the measurements: each point's error is spread "
                                    "along its surface (guided by the map and the photo). Off = the method's own "
                                    "map. On our test scenes it brings 100 points' error to about 0.65x of "
                                    "interpolating them.")


def _measurements(sparse: SparseDepth | None, known_points: str, size: tuple[int, int], n: int, node: str):
    """The sparse wire and the typed points → one checked ``[N,1,H,W]`` map (metres, 0 = unmeasured)."""
    points = marigold.parse_points(known_points) if known_points.strip() else None
    if sparse is None and points is None:
        raise marigold.InputError(f"{node} needs measured depth: wire a sparse depth map (LoadSparseDepth) or "
                                  f"write known_points as x,y,metres (e.g. 320,240,2.5).")
    values = core_metric.merge_points(sparse.values if sparse is not None else None, points, size)  # [H,W]
    return core_metric.sparse_depth(values, size, n)  # [N,1,H,W]; "no valid point" is said here


def _outputs(metric: MetricBatch) -> io.NodeOutput:
    """The wire, the map normalised to 0..1 (near = 0, one range for the batch) and the scale-bar preview."""
    if metric.note:
        log.warning("Marigold metric depth: %s", metric.note)
    unit, _ = core_stereo.from_metric(metric.depth)  # [B,1,H,W] 0..1
    preview = colorize.colorize_metric_batch(metric.depth)  # [B,3,H,W']
    return io.NodeOutput(metric, core_image.to_bhwc(unit), core_image.to_bhwc(preview))


OUTPUTS = [MetricDepthType.Output(display_name="metric"), io.Image.Output(display_name="depth"),
           io.Image.Output(display_name="preview")]


class LoadSparseDepth(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = comfy_glue.input_files(core_io.SPARSE_SUFFIXES)
        return io.Schema(
            node_id=PREFIX + "LoadSparseDepth",
            display_name="LoadSparseDepth",
            category=CATEGORY,
            description="Measured depth for MarigoldDepthCompletion / MarigoldFitMetric, from a file in "
                        "ComfyUI/input/: a 16-bit greyscale PNG in millimetres (depth sensors, ScanNet), or "
                        ".npy / .exr in metres; 0 or NaN where nothing was measured, the photo's size. "
                        "(Load Image would turn a 16-bit PNG into 8-bit colour.)",
            inputs=[io.Combo.Input("file", options=files, default=files[0] if files else None,
                                   tooltip="Files in ComfyUI/input/ ending in .png, .npy or .exr (press R to "
                                           "refresh the list after adding one).")],
            outputs=[SparseDepthType.Output(display_name="sparse")],
        )

    @classmethod
    def fingerprint_inputs(cls, file: str) -> str:
        return comfy_glue.input_fingerprint(file)  # a changed file runs the graph again

    @classmethod
    def execute(cls, file: str) -> io.NodeOutput:
        values = core_io.load_sparse_depth(comfy_glue.input_path(file))  # [H,W] metres
        return io.NodeOutput(SparseDepth(values, file))


class MarigoldDepthCompletion(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldDepthCompletion",
            display_name="MarigoldDepthCompletion",
            category=CATEGORY,
            description="Depth in metres from a photo and a few measured depths (Marigold-DC, ICCV 2025): the "
                        "depth model's denoising is steered at every step towards the measurements, with no "
                        "training. Needs an affine depth checkpoint (prs-eth/marigold-depth-v1-0 is the "
                        "method's own; v1-1 works). Slower than MarigoldDepth: gradients through the UNet and "
                        "VAE at each step.",
            inputs=[
                MarigoldModelType.Input("model"),
                io.Image.Input("image"),
                SparseDepthType.Input("sparse", optional=True,
                                      tooltip="Measured depth of the photo's size (LoadSparseDepth)."),
                _known_points_input(),
                io.Int.Input("denoising_steps", default=0, min=0, max=1000,
                             tooltip="Guided denoising steps; 0 = the method's default: 50 on a GPU, 10 on the "
                                     "CPU."),
                io.Int.Input("ensemble_size", default=1, min=1, max=64,
                             tooltip="Completions per image, merged by the per-pixel median (the paper "
                                     "evaluates with 10)."),
                io.Int.Input("processing_resolution", default=0, min=0, max=core_image.MAX_PROCESSING_SIDE,
                             step=8, tooltip="Longest side the model sees (multiple of 8); 0 = the method's "
                                             "default: 768 on a GPU, 512 on the CPU."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
                _snap_input(True),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, model, image, known_points, denoising_steps, ensemble_size, processing_resolution, seed,
                snap_to_points=True, sparse=None) -> io.NodeOutput:
        node = "MarigoldDepthCompletion"
        require_task(model, "depth", node)
        completion.check_model(model.model)  # an inverse-depth or video checkpoint: one line
        images = core_image.from_bhwc(image)  # [B,3,H,W]
        size = tuple(images.shape[-2:])
        target = _measurements(sparse, known_points, size, images.shape[0], node)  # [B,1,H,W]
        res = processing_resolution or 768
        ph, pw = core_image.padded_size(core_image.processing_size(size, res))
        m = comfy_glue.prepare(model, comfy_glue.completion_memory(model, ph * pw))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the note comes back on the result and is logged once
            out = marigold.complete(m, images, target, num_inference_steps=denoising_steps or None,
                                    ensemble_size=ensemble_size, processing_resolution=processing_resolution or None,
                                    seed=seed, snap=snap_to_points, progress=comfy_glue.Progress(),
                                    check_cancel=comfy_glue.check_cancel)
        return _outputs(MetricBatch(out.depth, "completion (Marigold-DC)", out.note))


class MarigoldFitMetric(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PREFIX + "MarigoldFitMetric",
            display_name="MarigoldFitMetric",
            category=CATEGORY,
            description="Depth in metres in a second: one scale and shift per image that best fit a depth map to "
                        "a few measured depths (least squares, or robust to a few bad points). Takes any depth "
                        "IMAGE (Marigold's, Depth Anything's, Lotus-D's); a disparity map (near = bright) is "
                        "fitted in inverse depth. MarigoldDepthCompletion also reshapes the map; this does not.",
            inputs=[
                io.Image.Input("depth", tooltip="A depth or disparity map, e.g. MarigoldDepth's preview."),
                _near_input(),
                SparseDepthType.Input("sparse", optional=True,
                                      tooltip="Measured depth of the depth map's size (LoadSparseDepth)."),
                _known_points_input(),
                io.Boolean.Input("robust", default=False,
                                 tooltip="Huber weights: a few wrong measurements barely move the fit."),
                _snap_input(False),
                io.Image.Input("image", optional=True,
                               tooltip="The photo (optional): guides snap_to_points along its colours."),
            ],
            outputs=OUTPUTS,
        )

    @classmethod
    def execute(cls, depth, depth_near, known_points, robust, snap_to_points=False, sparse=None,
                image=None) -> io.NodeOutput:
        d = core_image.from_bhwc(depth)[:, :1]  # [B,1,H,W] the first channel of a grey map
        target = _measurements(sparse, known_points, tuple(d.shape[-2:]), d.shape[0], "MarigoldFitMetric")
        photo = core_image.from_bhwc(image) if snap_to_points and image is not None else None  # [B,3,H',W']
        fit = marigold.fit_metric(d, target, space=NEAR[depth_near], robust=robust, snap=snap_to_points,
                                  image=photo)
        return _outputs(MetricBatch(fit.depth, f"fit ({fit.space})", fit.note))
