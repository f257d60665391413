"""Does the video CLI stream? Peak memory of ``python -m marigold clip.mp4`` on a clip of N and of 4N frames,
side by side with the same clips through ``marigold.predict_video`` (which holds the whole clip, as an IMAGE
batch in ComfyUI does).

``python -m bench.video_memory [--frames N] [--size WxH] [--task depth] [--cli-only]`` builds a tiny RollingDepth
checkpoint (random weights, ../shared/tools/make_marigold_checkpoint.py; ``--task depth``: a tiny Marigold depth
checkpoint, whose video mode runs the temporal fusion by default where OpenCV is installed; ``--temporal-strength
S`` passes the CLI's option) and two synthetic clips, runs each of the four jobs in a fresh process (alternating:
CLI N, library N, CLI 4N, library 4N; ``--cli-only``: the CLI's two) and prints each job's peak RSS (the kernel's
``ru_maxrss`` of the child) and the ratios 4N / N. The model is tiny and processes at 64 px, so what grows is
what each path keeps per frame at the output size; the CLI should stay flat (ratio ≈ 1), the library grow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MARIGOLD_SHARED", ROOT.parent / "shared"))

LIBRARY_JOB = """
import sys, marigold
from marigold.video.pipeline import predict_video
from marigold.video.io import open_video
model = marigold.load(sys.argv[2], device="cpu", dtype="fp32", progress=False)
src = open_video(sys.argv[1])
pred = predict_video(model, src, processing_resolution=64, frame_count=src.frame_count)
print(tuple(pred.depth.shape))
"""


def make_clip(path: Path, frames: int, w: int, h: int) -> None:
    import numpy as np

    from marigold.video.io import VideoWriter

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    with VideoWriter(path, 24) as vw:
        for i in range(frames):
            vw.write(np.roll(base, 2 * i, axis=1))  # a panning picture


def run(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one child process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr.read().decode()[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--task", choices=("rollingdepth", "depth"), default="rollingdepth",
                    help="the tiny checkpoint: RollingDepth, or a Marigold depth one (video mode, fusion by default)")
    ap.add_argument("--temporal-strength", default=None, help="passed to the CLI (Marigold depth checkpoints)")
    ap.add_argument("--cli-only", action="store_true", help="skip predict_video's jobs")
    args = ap.parse_args(argv)
    w, h = map(int, args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="marigold-bench-video-"))
    ckpt = work / f"tiny-{args.task}"
    subprocess.run([sys.executable, str(SHARED / "tools" / "make_marigold_checkpoint.py"), str(ckpt), "--size",
                    "tiny", "--task", args.task, "--dtype", "fp32"], check=True, capture_output=True)
    rows = {}
    for n in (args.frames, 4 * args.frames):
        clip = work / f"clip{n}.mp4"
        make_clip(clip, n, w, h)
        cli = [sys.executable, "-m", "marigold", str(clip), "-o", str(work / f"out{n}"), "--checkpoint", str(ckpt),
               "--dtype", "fp32", "--processing-resolution", "64"]
        if args.temporal_strength is not None:
            cli += ["--temporal-strength", args.temporal_strength]
        rows[f"cli {n}"] = run(cli)
        if not args.cli_only:
            rows[f"library {n}"] = run([sys.executable, "-c", LIBRARY_JOB, str(clip), str(ckpt)])
    for k, (mb, s) in rows.items():
        print(f"{k:>14}: peak RSS {mb:7.0f} MB   {s:6.1f} s")
    n, m = args.frames, 4 * args.frames
    ratios = {k: rows[f"{k} {m}"][0] / rows[f"{k} {n}"][0] for k in ("cli", "library") if f"{k} {n}" in rows}
    print(f"peak RSS {m} / {n} frames at {w}×{h} ({args.task}): "
          + ", ".join(f"{k} {r:.3f}x" for k, r in ratios.items()))
    print(json.dumps({"frames": [n, m], "size": [w, h], "task": args.task, "rows": rows, "ratios": ratios}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
