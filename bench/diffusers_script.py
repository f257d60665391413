"""The plain diffusers script the whole-process benchmark compares against: load, predict, write a 16-bit PNG.

Usage: python -m bench.diffusers_script PHOTO OUT_DIR CHECKPOINT RESOLUTION STEPS DTYPE
diffusers' bf16 resize crashes on the CPU, so the photo is resized to RESOLUTION (PIL, bilinear) first and
processed at its native size; in fp32 diffusers resizes it itself.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import MarigoldDepthPipeline
from PIL import Image

photo, out, ckpt, res, steps, dtype = sys.argv[1:7]
res, steps = int(res), int(steps)
dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
pipe = MarigoldDepthPipeline.from_pretrained(ckpt, dtype=dt, variant="fp16" if dt != torch.float32 else None)
pipe.set_progress_bar_config(disable=True)
image = Image.open(photo).convert("RGB")
if dt != torch.float32:
    w, h = image.size
    image = image.resize((w * res // max(w, h), h * res // max(w, h)), Image.BILINEAR)
    res = 0
depth = pipe(image, num_inference_steps=steps, processing_resolution=res,
             generator=torch.Generator().manual_seed(0)).prediction
Path(out).mkdir(parents=True, exist_ok=True)
# (diffusers' own export_depth_to_16bit_png fails with Pillow 13: "Invalid mode for data type")
Image.fromarray((np.clip(depth[0, :, :, 0], 0, 1) * 65535.0).round().astype(np.uint16)).save(
    Path(out) / "photo_depth_16bit.png")
