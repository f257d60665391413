"""Shared fixtures: tiny checkpoints in the real diffusers layout, built once per test session.

They come from ../shared/tools/make_marigold_checkpoint.py (random weights, real layout), the same tool the
benchmark uses with --size full; MARIGOLD_SHARED overrides where shared/ is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARIGOLD_SHARED", ROOT.parent / "shared"))
TOOL = SHARED / "tools" / "make_marigold_checkpoint.py"

# name → arguments of the tool
CHECKPOINTS = {
    "depth": ["--task", "depth"],
    "depth-leading": ["--task", "depth", "--scheduler", "ddim-leading", "--steps", "10"],
    "lcm": ["--task", "depth", "--scheduler", "lcm", "--steps", "4"],
    "normals": ["--task", "normals"],
    "iid-appearance": ["--task", "iid-appearance"],
    "iid-lighting": ["--task", "iid-lighting"],
    "depth-fp16": ["--task", "depth", "--dtype", "fp16"],
    "rollingdepth": ["--task", "rollingdepth"],
}


@pytest.fixture(scope="session")
def checkpoint_root(tmp_path_factory) -> Path:
    if not TOOL.is_file():
        pytest.fail(f"{TOOL} not found: tests need ../shared beside the repository (or MARIGOLD_SHARED).")
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def make_checkpoint(checkpoint_root):
    """make_checkpoint(name) → path of a tiny fp32 checkpoint (built on first use), or a fresh copy."""
    built: dict[str, Path] = {}

    def make(name: str, copy_to: Path | None = None) -> Path:
        if name not in built:
            out = checkpoint_root / name
            args = CHECKPOINTS[name]
            if "--dtype" not in args:
                args = args + ["--dtype", "fp32"]
            subprocess.run([sys.executable, str(TOOL), str(out), "--size", "tiny", *args], check=True,
                           capture_output=True)
            built[name] = out
        if copy_to is not None:
            shutil.copytree(built[name], copy_to)
            return copy_to
        return built[name]

    return make


@pytest.fixture(scope="session")
def depth_checkpoint(make_checkpoint) -> Path:
    return make_checkpoint("depth")


@pytest.fixture(scope="session")
def tiny_sd2(make_checkpoint, tmp_path_factory) -> Path:
    """A tiny Stable Diffusion 2 stand-in (4-channel UNet) whose VAE was fitted to synthetic renders, so that
    what the trainer learns can be measured through it (see train/tiny.py). Built in a fresh process: the
    VAE fit needs denormal flushing set before torch starts its thread pool."""
    out = tmp_path_factory.mktemp("sd2") / "tiny-sd2"
    subprocess.run([sys.executable, "-m", "train.tiny", str(out), "--from", str(make_checkpoint("depth")),
                    "--vae-steps", "400"], check=True, capture_output=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        # one thread, as the trainer's tests run: two OpenMP threads on a loaded 2-core machine
                        # spin-wait for each other (the 400 fitting steps took 10 min instead of 40 s)
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    return out


def as_segmentation_checkpoint(folder: Path, **index) -> Path:
    """Turn a tiny depth checkpoint folder (same architecture: 8-channel UNet, SD2 VAE, CLIP text encoder) into a
    text-grounded segmentation checkpoint in the layout train.finetune --task segmentation writes."""
    import json

    p = folder / "model_index.json"
    d = json.loads(p.read_text())
    for k in ("scale_invariant", "shift_invariant"):
        d.pop(k, None)
    d.update(_class_name="MarigoldSegmentationPipeline", prediction_type="segmentation",
             default_denoising_steps=2, default_processing_resolution=64, **index)
    p.write_text(json.dumps(d, indent=2))
    for f in folder.glob("marigold_*embedding*"):  # a depth checkpoint's cached empty embedding is not needed
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    return folder


def as_lotus_checkpoint(folder: Path, kind: str, **index) -> Path:
    """Turn a tiny depth checkpoint folder into a Lotus one in the published layout: the same VAE, text encoder and
    scheduler, a UNet with the 4-input projection class embedding (8 input channels for Lotus-G, 4 for Lotus-D),
    random weights, a model_index.json without Marigold's keys (``index`` adds some)."""
    import json

    import torch
    from diffusers import UNet2DConditionModel

    for f in folder.glob("marigold_*embedding*"):
        shutil.rmtree(f) if f.is_dir() else f.unlink()
    cfg = json.loads((folder / "unet" / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    cfg.update(class_embed_type="projection", projection_class_embeddings_input_dim=4,
               in_channels=8 if kind == "g" else 4)
    torch.manual_seed(7)
    unet = UNet2DConditionModel.from_config(cfg)
    shutil.rmtree(folder / "unet")
    unet.save_pretrained(folder / "unet")
    d = json.loads((folder / "model_index.json").read_text())
    d = {k: v for k, v in d.items() if k.startswith("_") or isinstance(v, list)}  # components only
    d["_class_name"] = "LotusGPipeline" if kind == "g" else "LotusDPipeline"
    (folder / "model_index.json").write_text(json.dumps({**d, **index}, indent=2))
    return folder


@pytest.fixture(scope="session")
def segmentation_checkpoint(make_checkpoint, tmp_path_factory) -> Path:
    """A tiny segmentation checkpoint (random weights): the depth one's parts under a segmentation model_index."""
    return as_segmentation_checkpoint(make_checkpoint("depth", tmp_path_factory.mktemp("seg") / "tiny-seg"))


@pytest.fixture()
def quality_commands(tmp_path, monkeypatch) -> list:
    """bench.quality's trainings faked: each command is recorded (the list returned) and the folders under
    ``tmp_path`` it would write are made, so ``build_models`` can be checked without training anything."""
    from bench import quality as Q

    cmds: list = []

    def fake_run(cmd, what, threads=None):
        cmds.append(cmd)
        for arg in cmd:
            if arg.startswith(str(tmp_path)):
                Path(arg).mkdir(parents=True, exist_ok=True)
        return 0.0

    monkeypatch.setattr(Q, "_run", fake_run)
    return cmds
