"""First run on a new checkpoint against later runs: whole-process peak RSS of the CLI, side by side.

    python -m bench.first_run [--size full] [--resolution 768] [--dtype bf16] [--later 1]

The first run on a checkpoint folder computes the empty-text embedding (the only time the 354M-parameter text
encoder is loaded) and caches it; later runs read the cache. ``marigold.core.checkpoint.load`` runs the encoder and
frees it before any UNet/VAE weight is read, so the first run's peak should be that of later runs. Each round
uses a fresh hard-linked copy of the bench checkpoint (bench/ckpt.py, the real v1-1 architecture, fp32 and fp16
files), so that no embedding cache exists; ``--dtype bf16`` reads the fp16 files, as a GPU or a bf16 CPU does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import ckpt
from .run import prepare_photo, run_child


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.first_run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="full")
    ap.add_argument("--resolution", type=int, default=768)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--later", type=int, default=1, help="later runs after the first")
    a = ap.parse_args(argv)
    src = ckpt.ensure(a.size)
    with tempfile.TemporaryDirectory(prefix="marigold-first-run-") as tmp:
        work = Path(tmp)
        fresh = work / "ckpt"
        subprocess.run(["cp", "-al", str(src), str(fresh)], check=True)  # same files, no embedding cache
        (fresh / "marigold_empty_text_embedding.safetensors").unlink(missing_ok=True)
        photo = prepare_photo(work, (1024, 683))
        cmd = ["-m", "marigold", str(photo), "-o", str(work / "out"), "--checkpoint", str(fresh),
               "--processing-resolution", str(a.resolution), "--steps", "1", "--seed", "0", "--dtype", a.dtype]
        runs = []
        for k in range(1 + a.later):
            r = run_child(cmd, print)
            runs.append({"run": "first" if k == 0 else "later", "peak_rss_gb": round(r["peak_rss_gb"], 3),
                         "wall_s": round(r["wall_s"], 1)})
            print(json.dumps(runs[-1]), flush=True)
    later = [r["peak_rss_gb"] for r in runs[1:]]
    if later:
        ratio = runs[0]["peak_rss_gb"] / (sum(later) / len(later))
        print(f"first / later peak RSS = {ratio:.3f} (goal: within 5 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
