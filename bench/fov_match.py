"""Do tiles look like training views? (issue #35, "the instrument"; no training): ``python -m bench.fov_match
[--n4 4] [--n8 2] [--renders 200] [--picture docs/pictures/fov_match.png]``.

The tiles row (bench/quality_tiles.py) cuts held-out scenes rendered at 4× and 8× the small model's resolution
into the 128-px tiles ``marigold.predict_tiled`` predicts (``tile_factor`` = the scale: the working canvas is
the image itself; ``plan_tiles`` with the default quarter-tile overlap). The small recipe trains on whole-room
views (50-70°); ``configs/cpu_small_fov.yaml`` adds views of 6-70° aimed at part of the room
(``render(fov=..., crop=True)``). Per view (a tile, or a training render at 96×128), simple statistics of what
the model sees: the depth range within the view relative to its median ((p95 − p5) / p50 of the valid depth),
the share of pixels near a depth edge (within 2 px of a > 5 % jump, as the bench's edge AbsRel), the colour
variance (of the 0..1 RGB, mean over channels), and the share of views with no depth edge at all (a tile that
sees one surface only). Printed as a Markdown table of medians (and the no-edge share); with ``--picture``, one
grid: a 4× tile, an 8× tile, a narrow training render and a whole-room one, RGB above depth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TILE = 128  # the small model's processing resolution: predict_tiled's tile
FOV = (6.0, 70.0)  # configs/cpu_small_fov.yaml's range


def view_stats(rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray) -> dict:
    """One view ([H,W,3] 0..1, [H,W] planar depth, [H,W] bool) → its statistics (see the module docstring)."""
    from bench.quality import _edges

    d = depth[valid & (depth > 1e-3)]
    lo, mid, hi = np.percentile(d, [5, 50, 95]) if d.size else (0.0, 1.0, 0.0)
    edges = _edges(depth, valid)
    return {"depth_range": float((hi - lo) / mid), "edge_share": float(edges.sum() / max(valid.sum(), 1)),
            "colour_var": float(rgb.reshape(-1, 3).var(0).mean()), "sky_share": float(1 - valid.mean())}


def tiles(seed: int, scale: int, size: tuple[int, int] = (96, 128)):
    """The tiles ``predict_tiled(tile_factor=scale)`` cuts from held-out scene ``seed`` rendered at ``scale``×:
    yields (rgb, depth, valid) crops of ``TILE`` px."""
    from marigold.core.tiling import DEFAULT_OVERLAP_FRACTION, plan_tiles, working_size
    from train.data.synthetic import render

    big = (size[0] * scale, size[1] * scale)
    s = render(seed, *big, texture="flat")
    work = working_size(big, TILE, tile_factor=scale)
    assert work == big  # the working canvas is the image itself: the tiles are crops of it
    for y0, x0, y1, x1 in plan_tiles(work, TILE, TILE // DEFAULT_OVERLAP_FRACTION).boxes():
        yield s.rgb[y0:y1, x0:x1], s.depth[y0:y1, x0:x1], s.valid[y0:y1, x0:x1]


def summarise(rows: list[dict]) -> dict:
    """Quartiles of each statistic (most tiles see no edge: the medians alone hide the rest), the mean edge
    share and the share of views with no depth edge."""
    out = {k: [float(q) for q in np.percentile([r[k] for r in rows], [25, 50, 75])]
           for k in ("depth_range", "edge_share", "colour_var")}
    return out | {"edge_mean": float(np.mean([r["edge_share"] for r in rows])),
                  "no_edge": float(np.mean([r["edge_share"] == 0 for r in rows])), "views": len(rows)}


def measure(n4: int = 4, n8: int = 2, renders: int = 200) -> dict:
    """{group: summary} for tiles at 4× and 8×, the FOV recipe's zoomed renders (all, and those of a 4× or an 8×
    tile's field of view) and today's whole-room renders."""
    from bench.quality import HELDOUT
    from train.data.synthetic import SPLIT_SEEDS, SyntheticDataset, focal_px

    groups: dict[str, list] = {}
    for scale, n in ((4, n4), (8, n8)):
        for i in range(n):
            groups.setdefault(f"tiles {scale}×", []).extend(view_stats(*t) for t in tiles(HELDOUT + i, scale))
    today = SyntheticDataset(renders, texture="flat")
    zoom = SyntheticDataset(renders, texture="flat", fov=FOV)
    for i in range(renders):
        s = today[i]
        groups.setdefault("today's renders (50-70°)", []).append(view_stats(s.rgb, s.depth, s.valid))
        z = zoom[i]
        row = view_stats(z.rgb, z.depth, z.valid)
        groups.setdefault("FOV renders (6-70°, crop)", []).append(row)
        fov = np.degrees(2 * np.arctan(0.5 * zoom.width / focal_px(SPLIT_SEEDS['train'] + i, zoom.width, FOV)))
        # the fields of view of a 128-px tile of a 50-70° view at 4× (13.3-19.3°) and at 8× (6.7-9.8°)
        for name, (lo, hi) in (("FOV renders at a 4× tile's fov (13-19°)", (13.3, 19.3)),
                               ("FOV renders at an 8× tile's fov (7-10°)", (6.7, 9.8))):
            if lo <= fov <= hi:
                groups.setdefault(name, []).append(row)
    return {k: summarise(v) for k, v in groups.items()}


def markdown(res: dict) -> str:
    lines = ["| views | count | depth range ÷ median (p25 / p50 / p75) | share near a depth edge (mean; p75) | "
             "colour variance (p25 / p50 / p75) | no depth edge |", "|---|---|---|---|---|---|"]
    for name, r in res.items():
        dr, cv = (" / ".join(f"{q:.{n}f}" for q in r[k]) for k, n in (("depth_range", 3), ("colour_var", 4)))
        lines.append(f"| {name} | {r['views']} | {dr} | {r['edge_mean']:.3f}; {r['edge_share'][2]:.3f} | {cv} | "
                     f"{r['no_edge']:.0%} |")
    return "\n".join(lines)


def picture(path: Path, seed: int = 1_000_003, cell: int = 2) -> None:
    """A 4× tile, an 8× tile (the most edge-rich of the scene's), a zoomed training render at about a 4× tile's
    field of view (the most edge-rich of a dozen) and the whole-room view of the same room; RGB above depth
    (inverse depth, Spectral, each view its own range)."""
    import torch
    from PIL import Image

    from marigold.io.colorize import colorize_depth
    from train.data.synthetic import SPLIT_SEEDS, SyntheticDataset, focal_px

    views = [max(tiles(seed, s), key=lambda t: view_stats(*t)["edge_share"]) for s in (4, 8)]
    zoom = SyntheticDataset(400, texture="flat", fov=FOV)
    train = SPLIT_SEEDS["train"]
    near = [i for i in range(400) if 14 <= np.degrees(2 * np.arctan(64 / focal_px(train + i, 128, FOV))) <= 18]
    i = max(near[:12], key=lambda i: view_stats(zoom[i].rgb, zoom[i].depth, zoom[i].valid)["edge_share"])
    z, w = zoom[i], SyntheticDataset(400, texture="flat")[i]  # the same room, whole
    views += [(z.rgb, z.depth, z.valid), (w.rgb, w.depth, w.valid)]
    canvas = np.full((2 * TILE + 6, 4 * TILE + 18, 3), 1.0, np.float32)
    for k, (rgb, depth, valid) in enumerate(views):
        inv = np.where(valid, 1 / np.maximum(depth, 1e-3), 0).astype(np.float32)
        col = colorize_depth(torch.from_numpy(inv), percentile=(1, 99))[0].permute(1, 2, 0).numpy()  # [H,W,3]
        h, x = rgb.shape[0], k * (TILE + 6)
        canvas[:h, x:x + TILE] = rgb
        canvas[TILE + 6:TILE + 6 + h, x:x + TILE] = col
    im = Image.fromarray((canvas * 255).round().astype(np.uint8))
    im.resize((im.width * cell, im.height * cell), Image.NEAREST).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fov_match", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n4", type=int, default=4, help="held-out scenes at 4× (20 tiles each)")
    ap.add_argument("--n8", type=int, default=2, help="held-out scenes at 8× (88 tiles each)")
    ap.add_argument("--renders", type=int, default=200, help="training renders of each recipe")
    ap.add_argument("--picture", type=Path, default=None, help="write the grid picture here")
    a = ap.parse_args(argv)
    print(markdown(measure(a.n4, a.n8, a.renders)))
    if a.picture:
        picture(a.picture)
        print(f"wrote {a.picture} ({a.picture.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
