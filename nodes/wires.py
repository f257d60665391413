"""The pack's own wire types and the options several nodes share."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_api.latest import io

from ._core import image as core_image
from ._core import marigold

CATEGORY = "Marigold"
PREFIX = "MarigoldSuite_"  # node ids are global across packs; kijai's pack owns the unprefixed Marigold names

MarigoldModelType = io.Custom("MARIGOLD_MODEL")
MembersType = io.Custom("MARIGOLD_MEMBERS")
SparseDepthType = io.Custom("MARIGOLD_SPARSE_DEPTH")
MetricDepthType = io.Custom("MARIGOLD_METRIC_DEPTH")
RESAMPLE = list(core_image.RESAMPLE_METHODS)


@dataclass
class MembersBatch:
    """What flows along a MARIGOLD_MEMBERS wire: each frame's E members, on the CPU, plus how to finish them."""

    frames: list  # list[marigold.Members], in frame order
    task: str
    match_input_resolution: bool
    resample_method_output: str
    scale_invariant: bool = True
    shift_invariant: bool = True

    def __repr__(self) -> str:
        e = self.frames[0].values.shape[0] if self.frames else 0
        return f"<Marigold {self.task} members: {len(self.frames)} frame(s) × {e}>"


@dataclass
class SparseDepth:
    """What flows along a MARIGOLD_SPARSE_DEPTH wire: one measured map for every image of a batch."""

    values: "np.ndarray"  # noqa: F821  [H,W] float32 metres, 0 = unmeasured
    source: str

    def __repr__(self) -> str:
        h, w = self.values.shape
        return f"<sparse depth {self.source}: {w}×{h}, {int((self.values > 0).sum())} points>"


@dataclass
class MetricBatch:
    """What flows along a MARIGOLD_METRIC_DEPTH wire: distances in metres, and how they were made."""

    depth: "torch.Tensor"  # noqa: F821  [B,1,H,W] float32 metres on the CPU
    method: str  # "completion (Marigold-DC)" or "fit (depth|disparity)"
    note: str = ""

    def __repr__(self) -> str:
        b, _, h, w = self.depth.shape
        return f"<metric depth by {self.method}: {b} × {w}×{h}, {float(self.depth.min()):.3g}–" \
               f"{float(self.depth.max()):.3g} m>"


def sampling_inputs(default_ensemble: int = 1, default_resolution: int = 768) -> list:
    """The sampler's options, in the order every prediction node shows them."""
    return [
        io.Int.Input("denoising_steps", default=0, min=0, max=1000,
                     tooltip="Denoising steps per member; 0 = the checkpoint's default (4 for v1-1, 1 for the LCM model)."),
        io.Int.Input("ensemble_size", default=default_ensemble, min=1, max=64,
                     tooltip="Predictions per image, combined into one (more = smoother, slower)."),
        io.Int.Input("processing_resolution", default=default_resolution, min=0, max=core_image.MAX_PROCESSING_SIDE, step=8,
                     tooltip="Longest side the model sees (multiple of 8); 0 = the image's own size. "
                             "Marigold v1-1 was trained at 768."),
        io.Boolean.Input("match_input_resolution", default=True,
                         tooltip="Resize the result back to the input size."),
        io.Combo.Input("resample_method", options=RESAMPLE, default="bilinear",
                       tooltip="Interpolation for resizing to and from the processing resolution."),
        io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True),
        io.Int.Input("batch_size", default=1, min=1, max=64,
                     tooltip="Members denoised together; larger is faster on a big GPU, needs more memory."),
    ]


def require_task(loaded, task: str, node: str) -> None:
    if loaded.task != task:
        want = {"depth": "prs-eth/marigold-depth-v1-1", "normals": "prs-eth/marigold-normals-v1-1",
                "intrinsics": "prs-eth/marigold-iid-appearance-v1-1"}[task]
        raise marigold.InputError(
            f"{node} needs a Marigold {task} checkpoint, but '{loaded.name}' is a {loaded.task} checkpoint. "
            f"Choose a {task} model in LoadMarigold (e.g. {want}), or use the "
            f"Marigold{loaded.task.capitalize()} node for this one.")
