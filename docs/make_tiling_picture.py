"""docs/pictures/tiling_oracle.jpg: the tile merge on a synthetic scene, regenerated with one command.

    python -m docs.make_tiling_picture

The oracle of tests/test_tiling.py stands in for the model: each tile gets the scene's exact depth with a random
scale, shift and 1 % noise of its own. Left to right: the scene; the tiles blended as they come (no alignment);
``marigold.predict_tiled(merge="coalign")`` (co-aligned, then feathered). 6 × 5 tiles of 64 px, overlap 16 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np
    import torch
    from PIL import Image
    from test_tiling import coord_image, run_oracle, scene

    from marigold.io import colorize
    from marigold.core import tiling

    h, w = 240, 320
    depth, image = scene(h, w), coord_image(h, w)
    merged = run_oracle(depth, image, True, merge="coalign").prediction[0, 0]
    real = tiling._AlignCanvas.solve
    n = lambda self: len(self.rows) - 1  # noqa: E731
    tiling._AlignCanvas.solve = lambda self: (torch.ones(n(self)), torch.zeros(n(self)),
                                              torch.zeros(n(self), dtype=torch.bool))
    raw = run_oracle(depth, image, True, merge="coalign").prediction[0, 0]
    tiling._AlignCanvas.solve = real
    truth = (depth - depth.min()) / (depth.max() - depth.min())
    row = torch.cat([colorize.colorize_depth(x[None, None])[0] for x in (truth, raw, merged)], dim=-1)  # [3,H,3W]
    out = ROOT / "docs" / "pictures" / "tiling_oracle.jpg"
    Image.fromarray((row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(out, quality=90)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
