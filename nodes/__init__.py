"""ComfyUI nodes for Marigold (category "Marigold"), registered through ComfyUI's V3 ``comfy_entrypoint``.

The nodes hold no tensor math: they turn ComfyUI's types (IMAGE ``[B,H,W,C]``, MASK ``[B,H,W]``) into the core
library's and call it. ``comfy_glue`` is the only module that talks to ComfyUI's runtime.
Nothing is downloaded at import; published checkpoints download when LoadMarigold first runs.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from . import comfy_glue
from .loader import LoadMarigold
from .metric import LoadSparseDepth, MarigoldDepthCompletion, MarigoldFitMetric
from .predict import EnsembleAlign, MarigoldDepth, MarigoldIntrinsics, MarigoldNormals, MarigoldTiledDepth
from .save import SaveDepth16
from .segment import MarigoldSegment
from .stereo import DepthToStereo
from .video import MarigoldTemporalFusion, MarigoldVideoDepth
from .visual import Colorize, DepthToNormal

NODES = [LoadMarigold, MarigoldDepth, EnsembleAlign, MarigoldTiledDepth, DepthToNormal, Colorize, MarigoldNormals,
         MarigoldIntrinsics, SaveDepth16, MarigoldVideoDepth, MarigoldTemporalFusion, DepthToStereo, MarigoldSegment,
         LoadSparseDepth, MarigoldDepthCompletion, MarigoldFitMetric]
if hasattr(io, "File3DAny"):  # ComfyUI's 3D file wire (Save 3D Model, Preview 3D take it); older ComfyUI lacks it
    from .geometry import DepthToMesh, DepthToPoints, DepthToRelief

    NODES += [DepthToRelief, DepthToMesh, DepthToPoints]


class MarigoldExtension(ComfyExtension):
    async def on_load(self) -> None:
        comfy_glue.register_model_folder()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> MarigoldExtension:
    return MarigoldExtension()
