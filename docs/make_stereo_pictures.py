"""The pictures of docs/stereo.md: ``python -m docs.make_stereo_pictures``.

A real photo with a measured disparity map (scikit-image's ``stereo_motorcycle``: the left view of a Middlebury
2014 pair and its ground-truth disparity; unknown pixels are infinite, read as far), turned into stereo by
``marigold.stereo`` (``space="disparity"``: near = high), next to what a plain backward ``grid_sample`` warp
makes of the same input. Written to docs/pictures/stereo_*.jpg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OUT = Path(__file__).resolve().parent / "pictures"


def _save(t: torch.Tensor, path: Path, width: int) -> None:
    a = (t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    im = Image.fromarray(a)
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.save(path, quality=82, optimize=True)
    print(path)


def main() -> None:
    import skimage.data

    from marigold.geometry.stereo import disparity, stereo

    left, _, disp = skimage.data.stereo_motorcycle()
    img = torch.from_numpy(left).permute(2, 0, 1)[None].float() / 255  # [1,3,H,W]
    d = torch.from_numpy(disp)  # [H,W] pixels, inf = unknown
    finite = torch.isfinite(d)
    lo, hi = d[finite].min(), d[finite].max()
    p = torch.where(finite, (d - lo) / (hi - lo), torch.full_like(d, float("nan")))[None, None]  # near = 1
    opts = dict(divergence=3.0, convergence=0.5, space="disparity")
    pair = stereo(img, p, **opts)
    OUT.mkdir(exist_ok=True)
    _save(pair.compose("anaglyph"), OUT / "stereo_anaglyph.jpg", 640)
    _save(pair.compose("sbs"), OUT / "stereo_sbs.jpg", 960)
    # a crop of the right eye at an edge: ours | plain backward warp (ghosts)
    h, w = img.shape[-2:]
    shift, _ = disparity(torch.nan_to_num(p, nan=0.0), w, **opts)
    gx = (torch.arange(w).float().view(1, 1, w) + 0.5 * shift[:, 0]) / (w - 1) * 2 - 1
    gy = torch.linspace(-1, 1, h).view(1, h, 1).expand(1, h, w)
    back = F.grid_sample(img, torch.stack([gx.expand(1, h, w), gy], -1), align_corners=True)
    crop = (slice(None), slice(None), slice(150, 400), slice(330, 560))
    _save(torch.cat([pair.right[crop], torch.ones(1, 3, 250, 6), back[crop]], -1), OUT / "stereo_edges.jpg", 700)


if __name__ == "__main__":
    main()
