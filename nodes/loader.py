"""LoadMarigold: a checkpoint folder or a published repo id → a MARIGOLD_MODEL."""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_glue
from ._core import checkpoint
from .wires import CATEGORY, PREFIX, MarigoldModelType


class LoadMarigold(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        local = list(comfy_glue.local_checkpoints())
        return io.Schema(
            node_id=PREFIX + "LoadMarigold",
            display_name="LoadMarigold",
            category=CATEGORY,
            description="Loads a Marigold checkpoint: a folder under models/marigold/ or models/diffusers/, or a "
                        "published model, downloaded into models/marigold/ on first use.",
            inputs=[
                io.Combo.Input("checkpoint", options=local + list(checkpoint.PUBLISHED),
                               default=checkpoint.PUBLISHED[0],
                               tooltip="Folders in models/marigold/ and models/diffusers/ (diffusers layout), then "
                                       "the published prs-eth models (downloaded on first use)."),
                io.Combo.Input("dtype", options=["auto", "fp32", "fp16", "bf16"], default="auto",
                               tooltip="auto: bf16 or fp16 on a GPU, bf16 on CPUs with native bf16, else fp32 "
                                       "(never fp16 on a CPU)."),
            ],
            outputs=[MarigoldModelType.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, checkpoint: str, dtype: str) -> io.NodeOutput:
        source = comfy_glue.local_checkpoints().get(checkpoint, checkpoint)
        return io.NodeOutput(comfy_glue.load(source, checkpoint, dtype))
