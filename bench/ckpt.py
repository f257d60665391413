"""Build (once) and cache the benchmark checkpoints, outside the repository.

The full checkpoint is the real Marigold v1-1 architecture (SD2 UNet with 8 input channels, SD2 VAE, a
ViT-H-width CLIP text encoder) with random weights, from ../shared/tools/make_marigold_checkpoint.py. Like the
published checkpoints it carries both the fp32 weights and the ``*.fp16.safetensors`` variant files, so that
either side can read half-size files when it runs in half precision.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARIGOLD_SHARED", ROOT.parent / "shared"))
TOOL = SHARED / "tools" / "make_marigold_checkpoint.py"
CACHE = Path(os.environ.get("MARIGOLD_BENCH_CACHE", "~/.cache/marigold-bench")).expanduser()


def add_fp16_variants(folder: Path) -> None:
    """Write ``<name>.fp16.safetensors`` beside every fp32 weights file, as the hub checkpoints have."""
    import torch
    from safetensors.torch import load_file, save_file

    for f in sorted(folder.glob("*/*.safetensors")):
        if ".fp16." in f.name:
            continue
        out = f.with_name(f.name.replace(".safetensors", ".fp16.safetensors"))
        if out.exists():
            continue
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(f)).items()}
        save_file(sd, str(out), metadata={"format": "pt"})
        del sd


def ensure(size: str = "full", log=print, task: str = "depth") -> Path:
    """Path of the cached checkpoint of this size and task (the tool's ``--task``: depth, rollingdepth, …), built
    on first use."""
    out = CACHE / f"{task}-{size}"
    if (out / "model_index.json").is_file() and (out / ".complete").is_file():
        return out
    if not TOOL.is_file():
        raise SystemExit(f"{TOOL} not found; set MARIGOLD_SHARED to the folder holding tools/.")
    tmp = CACHE / f"{task}-{size}.building"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log(f"building the {size} {task} checkpoint in {out} (once) …")
    subprocess.run([sys.executable, str(TOOL), str(tmp), "--size", size, "--dtype", "fp32", "--task", task],
                   check=True, capture_output=True)
    add_fp16_variants(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    (out / ".complete").write_text("ok\n")
    return out
