"""Tiled inference against one big pass, side by side: ``python -m bench.tiling [--rows ...] [--steps 1]``.

Rows (each in its own process, so that its peak RSS is its own; full-size Marigold v1-1 architecture, random
weights, built once by bench.ckpt; the photo is ``skimage.data.coffee()`` resized to the row's size):

* ``tiled-2048``: ours, ``marigold.predict_tiled`` on a 2048×1536 photo, 768-px tiles (processing resolution
  768), the default overlap (192 px): a 768-px global pass + 4 × 3 tiles;
* ``single-2048``: ours, ``marigold.predict`` at processing resolution 2048 (one pass over the whole photo);
* ``diffusers-2048``: diffusers' ``MarigoldDepthPipeline`` at processing resolution 2048 (given the photo at
  that size, ``processing_resolution=0``: its bf16 resize fails on the CPU);
* ``tiled-1024``, ``tiled-3072``, ``tiled-4096``: ours tiled at other sizes (4:3), for "time linear in the
  number of tiles" and "peak RSS flat in the image size".

Seconds: the prediction call alone (load and a 64×48 warm-up apart). Peak RSS: the process's ``ru_maxrss``
(load + warm-up + the call) and the RSS before the call, so the call's own share is their difference.
Results go to ``bench/tiling_results.json`` (merged with earlier rows) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "tiling_results.json"
ROWS = {  # name → (side, longest side of the photo)
    "tiled-1024": ("tiled", 1024), "tiled-2048": ("tiled", 2048), "single-2048": ("single", 2048),
    "diffusers-2048": ("diffusers", 2048), "tiled-3072": ("tiled", 3072), "tiled-4096": ("tiled", 4096),
}


def photo(longest: int):
    import numpy as np
    from PIL import Image
    from skimage import data

    h, w = longest * 3 // 4, longest
    return np.asarray(Image.fromarray(data.coffee()).resize((w, h), Image.BICUBIC))  # [H,W,3] uint8


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def worker(spec: dict) -> dict:
    import torch

    side, longest = ROWS[spec["row"]]
    img = photo(longest)
    warm = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    steps, seed = spec["steps"], 0
    t0 = time.perf_counter()
    if side == "diffusers":
        from diffusers import MarigoldDepthPipeline

        pipe = MarigoldDepthPipeline.from_pretrained(spec["checkpoint"], dtype=torch.bfloat16, variant="fp16")
        pipe.set_progress_bar_config(disable=True)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255  # [1,3,H,W]

        def call(im, res):
            return pipe(im, num_inference_steps=steps, ensemble_size=1, processing_resolution=0,
                        generator=torch.Generator().manual_seed(seed), output_type="pt").prediction
        load_s = time.perf_counter() - t0
        call(warm, 0)
        before = rss_gb()
        t0 = time.perf_counter()
        call(x, longest)
    else:
        import marigold

        model = marigold.load(spec["checkpoint"], device="cpu", dtype="bf16", progress=False)
        load_s = time.perf_counter() - t0
        marigold.predict(model, warm, num_inference_steps=steps, processing_resolution=0, seed=seed)
        before = rss_gb()
        tiles = []
        t0 = time.perf_counter()
        if side == "single":
            marigold.predict(model, img, num_inference_steps=steps, processing_resolution=longest, seed=seed)
        else:
            out = marigold.predict_tiled(model, img, num_inference_steps=steps, processing_resolution=spec["tile"],
                                         tile_resolution=longest, seed=seed,
                                         on_tile=lambda d, t: tiles.append(time.perf_counter()))
            spec["tiles"] = out.plans[0].count
    call_s = time.perf_counter() - t0
    return {"row": spec["row"], "side": side, "size": [longest, longest * 3 // 4], "steps": steps,
            "tiles": spec.get("tiles"), "call_s": round(call_s, 2), "load_s": round(load_s, 2),
            "rss_before_call_gb": round(before, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def markdown(rows: dict) -> str:
    lines = ["| row | photo | passes | seconds | s per pass | peak RSS GB | RSS before the call GB |",
             "|---|---|---|---|---|---|---|"]
    for name in ROWS:
        r = rows.get(name)
        if r is None:
            lines.append(f"| {name} | not run | | | | | |")
            continue
        passes = 1 + r["tiles"] if r["tiles"] else 1
        lines.append(f"| {name} | {r['size'][0]}×{r['size'][1]} | {passes} | {r['call_s']:.1f} | "
                     f"{r['call_s'] / passes:.1f} | {r['peak_rss_gb']:.2f} | {r['rss_before_call_gb']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tiling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="tiled-2048,single-2048,diffusers-2048,tiled-4096",
                    help=f"comma-separated, from {', '.join(ROWS)}")
    ap.add_argument("--steps", type=int, default=1, help="denoising steps per pass (default 1)")
    ap.add_argument("--tile", type=int, default=768, help="tile = processing resolution of the tiled rows")
    ap.add_argument("--size", default="full", help="checkpoint size for bench.ckpt (full; tiny for a smoke run)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    from bench import ckpt

    checkpoint = ckpt.ensure(args.size, log=lambda m: print(m, file=sys.stderr))
    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() and args.size == "full" else {}
    for name in args.rows.split(","):
        if name not in ROWS:
            raise SystemExit(f"--rows: unknown row {name!r}; choose from {', '.join(ROWS)}")
        spec = {"row": name, "steps": args.steps, "tile": args.tile, "checkpoint": str(checkpoint)}
        print(f"{name} …", file=sys.stderr)
        r = subprocess.run([sys.executable, "-m", "bench.tiling", "--worker", json.dumps(spec)], cwd=ROOT,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        if r.returncode:
            raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
        rows[name] = json.loads(r.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[name]), file=sys.stderr)
        if args.size == "full":
            RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
