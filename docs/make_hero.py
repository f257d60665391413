"""The README's first picture: what each output looks like, from exact ground truth (no model involved).

    python -m docs.make_hero

Marigold's real weights cannot be had here, and our tiny CPU-trained models are not what users get, so this
picture shows the **outputs' form** on data whose answer is known: the Middlebury 2014 "Motorcycle" photo
(``skimage.data.stereo_motorcycle``) and its measured ground-truth disparity, turned into affine depth (near = 0,
far = 1, as Marigold predicts) and passed through the same writers the CLI and the nodes use: the colour depth map,
the ControlNet-ready map (grey, near = white) and surface normals from depth (DepthToNormal).

Writes ``docs/pictures/hero.jpg``: photo | colour depth | ControlNet map | normals from depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import marigold

OUT = Path(__file__).resolve().parent / "pictures" / "hero.jpg"
WIDTH = 300  # one panel, px
LABELS = ("photo (Middlebury 2014)", "depth, colour", "ControlNet map", "normals from depth")


def ground_truth_depth() -> tuple[np.ndarray, torch.Tensor]:
    """The left photo ``[H,W,3]`` uint8 and its affine depth ``[1,1,H,W]`` in 0..1 (near = 0) from the GT disparity."""
    import skimage.data as sd

    left, _, disparity = sd.stereo_motorcycle()
    disp = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(disp) & (disp > 0)
    # unmeasured pixels (occlusions) take the farthest measured disparity: they are background in this scene
    disp = np.where(valid, disp, disp[valid].min())
    depth = 1.0 / disp  # up to the unknown baseline × focal length: an affine-invariant target is all we need
    lo, hi = np.percentile(depth, [1, 99])
    depth = np.clip((depth - lo) / (hi - lo), 0, 1)
    return left, torch.from_numpy(depth).float()[None, None]  # [1,1,H,W]


def panels() -> list[Image.Image]:
    photo, depth = ground_truth_depth()
    color = marigold.colorize_depth(depth, "Spectral")  # [1,3,H,W]
    control = marigold.colorize_depth(depth, "gray", invert=True)  # near = white
    normals = marigold.normals_to_rgb(marigold.depth_to_normals(depth, fov_degrees=60, far=3.0))

    def pil(t: torch.Tensor) -> Image.Image:
        return Image.fromarray((t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))

    return [Image.fromarray(photo)] + [pil(t) for t in (color, control, normals)]


def compose(images: list[Image.Image]) -> Image.Image:
    h = round(images[0].height * WIDTH / images[0].width)
    sheet = Image.new("RGB", (WIDTH * len(images), h + 22), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (im, label) in enumerate(zip(images, LABELS)):
        sheet.paste(im.resize((WIDTH, h), Image.LANCZOS), (k * WIDTH, 22))
        draw.text((k * WIDTH + 6, 5), label, fill="black")
    return sheet


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    compose(panels()).save(OUT, quality=88)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
