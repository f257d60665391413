"""One video, several processes: wall time of ``python -m marigold CLIP --video`` (1 process) side by side with
``torchrun --nproc_per_node P -m marigold CLIP --video`` (the clip's snippets split, ``marigold.video.distributed``),
on the same clip, alternating, and whether both wrote the same 16-bit frames.

``python -m bench.video_distributed [--checkpoint DIR] [--frames N] [--size WxH] [--resolution R] [--processes P]
[--dilations 1,10] [--repeats K] [--device cpu|cuda]`` builds a tiny RollingDepth checkpoint (random weights,
../shared/tools/make_marigold_checkpoint.py) unless one is given, and a synthetic clip. Each process gets
``OMP_NUM_THREADS`` = cores / P on the CPU, the single process all cores, so the ratio is what the same machine
gains from splitting (on GPUs: one GPU per process, ``cuda:LOCAL_RANK``); ``--threads`` sets one count for all.
The times include starting the processes and loading the model, which splitting does not speed up. The default
clip (40 frames, dilations 1,10: a single run's window is 42 frames) fits the window, so with the same threads per
process both runs write identical frames; with different thread counts the UNet's float sums are ordered
differently (oneDNN splits them by thread), which can move a 16-bit frame value by 1.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .ckpt import TOOL

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_clip(path: Path, frames: int, w: int, h: int) -> None:
    from marigold.video.io import VideoWriter

    yy, xx = np.mgrid[0:h, 0:w]
    with VideoWriter(path, 24) as vw:
        for i in range(frames):  # a lit slope with a bar moving across: depth and content change over the clip
            f = np.stack([(xx + 3 * i) % 256, (yy * 2) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
            f[:, (4 * i) % w:(4 * i) % w + w // 8] = (230, 150, 40)
            vw.write(f)


def frames16(folder: Path) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p)).astype(np.int64) for p in sorted(folder.glob("*.png"))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="a RollingDepth checkpoint folder (default: a tiny one)")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="128x96", help="clip size WxH")
    ap.add_argument("--resolution", type=int, default=128, help="processing resolution")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--dilations", default="1,10")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda: one GPU per process (cuda:LOCAL_RANK)")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--threads", type=int, default=None,
                    help="OMP_NUM_THREADS of every process (default: cores for 1 process, cores / P for P)")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-video-dist-") as tmp:
        tmp = Path(tmp)
        ckpt = args.checkpoint
        if ckpt is None:
            ckpt = str(tmp / "rd")
            subprocess.run([sys.executable, str(TOOL), ckpt, "--size",
                            "tiny", "--task", "rollingdepth", "--dtype", "fp32"], check=True, capture_output=True)
        clip = tmp / "clip.mp4"
        make_clip(clip, args.frames, w, h)
        cli = ["-m", "marigold", str(clip), "--video", "--checkpoint", ckpt, "--processing-resolution",
               str(args.resolution), "--dilations", args.dilations, "--dtype", args.dtype, "--seed", "0"]
        base = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    HF_HUB_OFFLINE="1")
        if args.device == "cpu":
            base["CUDA_VISIBLE_DEVICES"] = ""
        # the empty-text embedding is cached by the first load; make it before timing anything
        from marigold.core.checkpoint import empty_text_embedding

        empty_text_embedding(ckpt)
        times: dict[str, list[float]] = {"1": [], str(args.processes): []}
        for k in range(args.repeats):
            for p in (1, args.processes):
                out = tmp / f"out{p}_{k}"
                env = dict(base, OMP_NUM_THREADS=str(args.threads or max(1, cores // p)))
                cmd = [sys.executable, *cli, "-o", str(out)] if p == 1 else [
                    sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(p), "--master_port",
                    str(_free_port()), *cli, "-o", str(out)]
                t0 = time.perf_counter()
                r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
                times[str(p)].append(time.perf_counter() - t0)
                if r.returncode:
                    print(r.stderr[-3000:], file=sys.stderr)
                    return 1
        a = frames16(tmp / "out1_0" / "clip_disparity_16bit")
        b = frames16(tmp / f"out{args.processes}_0" / "clip_disparity_16bit")
        result = {
            "frames": args.frames, "size": [w, h], "resolution": args.resolution, "dilations": args.dilations,
            "processes": args.processes, "device": args.device, "cores": cores, "checkpoint": args.checkpoint or "tiny",
            "threads": {1: args.threads or cores, args.processes: args.threads or max(1, cores // args.processes)},
            "wall_s": {p: [round(t, 2) for t in ts] for p, ts in times.items()},
            "speedup_best": round(min(times["1"]) / min(times[str(args.processes)]), 3),
            "frames_equal": bool(a.shape == b.shape and np.array_equal(a, b)),
            "max_abs_lsb": int(np.abs(a - b).max()) if a.shape == b.shape else None,
        }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
