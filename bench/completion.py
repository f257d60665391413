"""Depth completion's cost against plain denoising, side by side: ``python -m bench.completion [--rows ...]``.

Rows (each in its own process, so that its peak RSS is its own; full-size Marigold architecture, random weights,
built once by bench.ckpt; the photo is ``skimage.data.coffee()`` at 512×384, processed at 512 px, the
reference's CPU setting; 500 sparse points drawn from a synthetic depth):

* ``plain``: :func:`marigold.predict` with the same number of DDIM steps (no gradients): the floor;
* ``complete``: :func:`marigold.complete` (Marigold-DC: each step a UNet forward and a VAE decode with their
  backward passes), activation checkpointing on (the default);
* ``complete-nockpt``: the same without checkpointing (every activation kept for the backward pass).

Seconds: the call alone (load and a small warm-up apart). Peak RSS: the process's ``ru_maxrss`` and the RSS before
the call, so the call's own share is their difference. ``--dtype`` fp32 (default: AVX2 machines) or bf16; the
machine's CPU flags are written beside the rows. Results: ``bench/completion_results.json`` and a table.
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
RESULTS = ROOT / "bench" / "completion_results.json"
ROWS = ("plain", "complete", "complete-nockpt")


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def worker(spec: dict) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    import marigold

    res, steps = spec["resolution"], spec["steps"]
    img = np.asarray(Image.fromarray(data.coffee()).resize((res, res * 3 // 4), Image.BICUBIC))  # [H,W,3]
    h, w = img.shape[:2]
    g = np.random.default_rng(0)
    sparse = np.zeros((h, w), np.float32)
    sparse.flat[g.choice(h * w, 500, replace=False)] = g.uniform(0.5, 5.0, 500)
    model = marigold.load(spec["checkpoint"], device="cpu", dtype=spec["dtype"], progress=False)
    warm = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    row = spec["row"]
    if row == "plain":
        marigold.predict(model, warm, num_inference_steps=1, processing_resolution=0, seed=0)
    else:
        marigold.complete(model, warm, [(3, 3, 1.0), (40, 30, 2.0)], num_inference_steps=1, processing_resolution=0,
                          seed=0, checkpointing=row == "complete")
    before = rss_gb()
    t0 = time.perf_counter()
    if row == "plain":
        from marigold.core.completion import make_scheduler

        # the same scheduler as completion (DDIM, trailing) and the same step count: only the guidance differs
        model.scheduler_config = dict(make_scheduler(model).config)
        marigold.predict(model, img, num_inference_steps=steps, processing_resolution=res, seed=0)
    else:
        marigold.complete(model, img, sparse, num_inference_steps=steps, processing_resolution=res, seed=0,
                          checkpointing=row == "complete")
    return {"row": row, "steps": steps, "resolution": res, "dtype": spec["dtype"],
            "call_s": round(time.perf_counter() - t0, 1), "rss_before_call_gb": round(before, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def markdown(rows: dict) -> str:
    base = rows.get("plain")
    lines = ["| row | steps | px | dtype | seconds | × plain | peak RSS GB | the call's own GB |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ROWS:
        r = rows.get(name)
        if r is None:
            continue
        ratio = f"{r['call_s'] / base['call_s']:.1f}" if base else "–"
        lines.append(f"| {name} | {r['steps']} | {r['resolution']} | {r['dtype']} | {r['call_s']:.1f} | {ratio} | "
                     f"{r['peak_rss_gb']:.2f} | {r['peak_rss_gb'] - r['rss_before_call_gb']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.completion", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    ap.add_argument("--steps", type=int, default=10, help="steps (default 10, the reference's CPU setting)")
    ap.add_argument("--resolution", type=int, default=512, help="processing resolution (default 512)")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--size", default="full", help="checkpoint size for bench.ckpt (full; tiny for a smoke run)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    from bench import ckpt
    from bench.quality import cpu_flags

    checkpoint = ckpt.ensure(args.size, log=lambda m: print(m, file=sys.stderr))
    rows: dict = {}
    for name in args.rows.split(","):
        if name not in ROWS:
            raise SystemExit(f"--rows: unknown row {name!r}; choose from {', '.join(ROWS)}")
        spec = {"row": name, "steps": args.steps, "resolution": args.resolution, "dtype": args.dtype,
                "checkpoint": str(checkpoint)}
        print(f"{name} …", file=sys.stderr, flush=True)
        r = subprocess.run([sys.executable, "-m", "bench.completion", "--worker", json.dumps(spec)], cwd=ROOT,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")})
        if r.returncode:
            raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
        rows[name] = json.loads(r.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[name]), file=sys.stderr, flush=True)
    if args.size == "full":
        RESULTS.write_text(json.dumps({"cpu": cpu_flags(), "date": time.strftime("%Y-%m-%d"), "rows": rows},
                                      indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
