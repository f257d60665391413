"""The pictures in the READMEs: what the nodes make from a real photo, regenerated with one command.

    python -m docs.make_pictures [--model FOLDER] [--work DIR]

We have no real Marigold weights here, so the depth comes from a **tiny model trained by our own
``train.finetune`` on synthetic scenes** (``train/configs/cpu_tiny.yaml``: a 1M-parameter UNet on a tiny SD2
stand-in, e2e mode, a few minutes on a CPU). Without ``--model`` it is trained first, the way train/README.md
shows. The pictures show what each output *is* (colour depth, the ControlNet-ready map, normals from depth), not
Marigold's quality. Photos: ``skimage.data`` (coffee, astronaut, the Middlebury 2014 motorcycle).

Writes ``docs/pictures/<photo>.jpg``: photo | colour depth | ControlNet map | normals, 4 × 200 px wide.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "pictures"
TILE = 200  # width of one panel, px
RESOLUTION = 128  # twice its training size (64 px, cpu_tiny.yaml): at 64 it gives little more than a floor
LABELS = ("photo", "depth (Spectral)", "ControlNet map", "normals from depth")


def photos() -> dict[str, np.ndarray]:
    import skimage.data as sd

    left, _, _ = sd.stereo_motorcycle()
    return {"coffee": sd.coffee(), "astronaut": sd.astronaut(), "motorcycle": left}


def train_tiny(work: Path) -> Path:
    """A tiny depth model trained on synthetic scenes (train/README.md, 'A CPU demo')."""
    final = work / "run" / "final"
    if (final / "model_index.json").is_file():
        return final
    shared = Path(os.environ.get("MARIGOLD_SHARED", ROOT.parent / "shared"))
    py = sys.executable
    run = lambda *a: subprocess.run([py, *map(str, a)], check=True, cwd=ROOT)  # noqa: E731
    if not (work / "mg" / "model_index.json").is_file():
        run(shared / "tools" / "make_marigold_checkpoint.py", work / "mg", "--size", "tiny", "--dtype", "fp32")
    if not (work / "sd2" / "model_index.json").is_file():
        run("-m", "train.tiny", work / "sd2", "--from", work / "mg", "--vae-steps", "300")
    run("-m", "train.finetune", "--config", "train/configs/cpu_tiny.yaml", "--base", work / "sd2",
        "--output", work / "run")
    return final


def panels(model, rgb: np.ndarray) -> list[Image.Image]:
    import marigold

    h = round(rgb.shape[0] * TILE / rgb.shape[1])
    photo = Image.fromarray(rgb).convert("RGB").resize((TILE, h), Image.LANCZOS)
    out = marigold.predict(model, photo, processing_resolution=RESOLUTION, seed=0)
    depth = out.prediction  # [1,1,h,W] 0..1, near = 0
    color = marigold.colorize_depth(depth, "Spectral", percentile=(2, 98))  # [1,3,h,W]
    control = marigold.colorize_depth(depth, "gray", invert=True, percentile=(2, 98))  # near = white
    normals = marigold.normals_to_rgb(marigold.depth_to_normals(depth, fov_degrees=60, far=3.0))
    to_pil = lambda t: Image.fromarray((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))  # noqa: E731
    return [photo] + [to_pil(t) for t in (color, control, normals)]


def strip(tiles: list[Image.Image]) -> Image.Image:
    h = tiles[0].height
    label_h = 18
    im = Image.new("RGB", (TILE * len(tiles) + 4 * (len(tiles) - 1), h + label_h), "white")
    draw = ImageDraw.Draw(im)
    for k, (t, label) in enumerate(zip(tiles, LABELS)):
        x = k * (TILE + 4)
        im.paste(t, (x, label_h))
        draw.text((x + 4, 3), label, fill=(40, 40, 40))
    return im


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m docs.make_pictures", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a trained tiny checkpoint folder (default: train one under --work)")
    ap.add_argument("--work", default=str(Path.home() / ".cache" / "marigold-docs"), help="training folder")
    a = ap.parse_args(argv)
    import marigold

    folder = Path(a.model) if a.model else train_tiny(Path(a.work))
    model = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, rgb in photos().items():
        path = OUT / f"{name}.jpg"
        strip(panels(model, rgb)).save(path, quality=80, optimize=True, progressive=True)
        print(f"{path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
