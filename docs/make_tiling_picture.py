"""docs/pictures/tiling_oracle.jpg: the tile merge on a synthetic scene, regenerated with one command.

    python -m docs.make_tiling_picture
    python -m docs.make_tiling_picture --model .cache/quality/small-s0/final   # tiling_small_model.jpg

With ``--model`` (our small model, bench/quality.py): a held-out fine-structure scene at 4× the model's resolution
(512×384, 128-px tiles): the photo, the truth, one pass; the co-aligned merge and the detail merge at 4×, and the
detail merge of a model whose UNet were perfect behind the same VAE (``bench.quality_tiles.oracle_model`` through
``vae_round_trip``: the tiles' ceiling on this instrument); every map aligned to the truth by one scale and shift
and coloured on the truth's range.

The oracle of tests/test_tiling.py stands in for the model: each tile gets the scene's exact depth with a random
scale, shift and 1 % noise of its own. Left to right: the scene; the tiles blended as they come (no alignment);
``marigold.predict_tiled(merge="coalign")`` (co-aligned, then feathered). 6 × 5 tiles of 64 px, overlap 16 px.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def small_model(folder: str) -> Path:
    import numpy as np
    import torch
    from PIL import Image

    import marigold
    from bench.quality import HELDOUT, SIZE
    from bench.quality_tiles import _cached_predictor, _scene, filled_truth, oracle_model, vae_round_trip
    from marigold.io import colorize
    from train.metrics import align

    model = marigold.load(folder, device="cpu", dtype="fp32")
    s = _scene(HELDOUT, (SIZE[0] * 4, SIZE[1] * 4), True)
    x = torch.from_numpy(s.rgb).permute(2, 0, 1)[None]  # [1,3,H,W]
    mask = s.valid & (s.depth > 1e-3)
    predictor = _cached_predictor(model)
    maps = [marigold.predict(model, x, seed=0).prediction[0, 0].numpy()]
    maps += [marigold.predict_tiled(model, x, tile_factor=4, seed=0, merge=m, predictor=predictor).prediction[0, 0]
             .numpy() for m in ("coalign", "detail")]
    # what the detail merge gives a model whose UNet is perfect behind this VAE (bench.quality_tiles --vae)
    stand_in, coords, oracle, _ = oracle_model(s, 0.0, np.random.default_rng(0), vae_round_trip(model.vae))
    maps.append(marigold.predict_tiled(stand_in, coords, tile_factor=4, predictor=oracle).prediction[0, 0].numpy())
    truth = filled_truth(s)
    lo, hi = float(truth.min()), float(truth.max())
    tiles = [torch.from_numpy(s.rgb).permute(2, 0, 1)]
    for m in [truth] + [align(p, s.depth, mask) for p in maps]:
        t = torch.from_numpy(np.clip((m - lo) / (hi - lo), 0, 1).astype(np.float32))
        tiles.append(colorize.colorize_depth(t[None, None], value_range=(0.0, 1.0))[0])  # [3,H,W]
    row = torch.cat([torch.cat(tiles[:3], -1), torch.cat(tiles[3:], -1)], -2)  # [3,2H,3W]
    out = ROOT / "docs" / "pictures" / "tiling_small_model.jpg"
    Image.fromarray((row.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(out, quality=90)
    return out


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--model":
        print(small_model(sys.argv[2]))
        return 0
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
