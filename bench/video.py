"""Video depth: seconds per frame and peak memory, ours against the same frame loop over diffusers.

Rows (each in a fresh process, so that the peak RSS is its own; frames are made on the fly and every output is
dropped once made, as a writer of a long video would):

* ``diffusers-frames``: diffusers' ``MarigoldDepthPipeline`` called frame by frame (1 step, no ensemble): the loop
  a user writes today, with its per-frame flicker;
* ``frames``: :func:`marigold.predict` frame by frame, the same settings;
* ``video``: :func:`marigold.iter_video_depth` with the Marigold depth checkpoint (shared noise, per-frame
  prediction, frame co-alignment);
* ``rolling-fast``: :func:`marigold.iter_video_depth` with a RollingDepth checkpoint, the fast preset's
  dilations [1, 25] at the bench resolution (``--res``; the preset itself runs 768 px);
* ``rolling-full``: the full preset's dilations [1, 10, 25] and 10 refinement steps at the bench resolution;
* ``rolling-fast-long``: the fast row on 4× as many frames: its peak RSS should stay within 10 % of ``rolling-fast``'s
  (the streaming memory model, README "Video").

All on checkpoints with the real architecture and random weights (``bench/ckpt.py``; the RollingDepth layout
from the same tool with ``--task rollingdepth``), so the numbers say nothing about depth quality.

    python -m bench.video                # full: 512 px, 100 frames (and 400); hours on a 2-core CPU
    python -m bench.video --quick        # tiny checkpoints, 64 px, 12 and 48 frames, dilations [1, 4] (full:
                                         # [1, 2, 4], 2 refinement steps): a smoke run
    python -m bench.video --device cuda --dtype bf16   # on a GPU: adds the peak GPU memory (the allocator's
                                         # reserve); each process runs an untimed 8-frame clip first

Results: bench/RESULTS.md ("Video at full size" on the 2-core CPU, 16 frames; "Video on a GPU", the full run).
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


def _frames(n: int, h: int, w: int):
    """A textured square moving over a gradient, made one frame at a time: ``[3,H,W]`` float32 0..1."""
    import torch

    g = torch.Generator().manual_seed(0)
    texture = torch.rand(3, h, w, generator=g) * 0.2
    base = torch.linspace(0.1, 0.8, w).expand(3, h, w)
    for t in range(n):
        f = (base + texture).clone()
        x0 = (4 * t) % max(1, w - w // 4)
        f[:, h // 3:h // 3 + h // 4, x0:x0 + w // 4] = 0.9
        yield f


def worker(row: str, ckpt_depth: str, ckpt_rolling: str, frames: int, res: int, dilations: list[int],
           dtype: str, full_dilations: list[int], refine_steps: int, device: str = "cpu") -> dict:
    import torch

    import marigold

    h, w = res * 3 // 4, res
    cuda = device.startswith("cuda")
    t0 = time.perf_counter()
    if row == "diffusers-frames":
        from diffusers import MarigoldDepthPipeline

        dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        pipe = MarigoldDepthPipeline.from_pretrained(ckpt_depth, dtype=dt).to(device)
        pipe.set_progress_bar_config(disable=True)

        def clip(n: int) -> None:
            # the frames are made at the processing size and diffusers processes them as they are (0 = native):
            # its resize in bf16 on the CPU took minutes per frame (and crashes in bench/run.py's image cases)
            for f in _frames(n, h, w):
                pipe(f[None], num_inference_steps=1, ensemble_size=1, processing_resolution=0,
                     generator=torch.Generator().manual_seed(0), output_type="pt")
    else:
        model = marigold.load(ckpt_rolling if row.startswith("rolling") else ckpt_depth, device=device, dtype=dtype,
                              progress=False)

        def clip(n: int) -> None:
            if row == "frames":
                for f in _frames(n, h, w):
                    marigold.predict(model, f, num_inference_steps=1, processing_resolution=res, seed=0)
                return
            kw = dict(processing_resolution=res, seed=0, frame_count=n)
            if row == "rolling-full":
                kw.update(dilations=full_dilations, refine_steps=refine_steps)
            elif row.startswith("rolling"):
                kw["dilations"] = dilations
            for _ in marigold.iter_video_depth(model, _frames(n, h, w), **kw):
                pass
    if cuda:  # kernels load and cuDNN picks its algorithms on the first calls: a short clip first, not timed
        clip(8)
        torch.cuda.synchronize()
    loaded = time.perf_counter()
    clip(frames)
    if cuda:
        torch.cuda.synchronize()
    end = time.perf_counter()
    return {"row": row, "frames": frames, "s_per_frame": (end - loaded) / frames, "load_s": loaded - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # what the CUDA caching allocator held at most: the GPU memory a user must have free
            "peak_gpu_mb": torch.cuda.max_memory_reserved() / 2**20 if cuda else None,
            "peak_gpu_alloc_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None, "device": device}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--res", type=int, default=None)
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (CUDA rows add the peak GPU memory)")
    ap.add_argument("--out", default=None, help="append each row as a JSON line to this file")
    ap.add_argument("--rows", default="diffusers-frames,frames,video,rolling-fast,rolling-full,rolling-fast-long")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    size = "tiny" if a.quick else "full"
    frames = a.frames or (12 if a.quick else 100)
    res = a.res or (64 if a.quick else 512)
    dilations = [1, 4] if a.quick else [1, 25]
    full_dilations, refine_steps = ([1, 2, 4], 2) if a.quick else ([1, 10, 25], 10)
    if a.worker:
        spec = json.loads(a.worker)
        print(json.dumps(worker(**spec)))
        return
    from . import ckpt

    depth, rolling = ckpt.ensure(size), ckpt.ensure(size, task="rollingdepth")
    results = []
    for row in a.rows.split(","):
        n = frames * 4 if row == "rolling-fast-long" else frames
        spec = dict(row=row, ckpt_depth=str(depth), ckpt_rolling=str(rolling), frames=n, res=res,
                    dilations=dilations, dtype=a.dtype, full_dilations=full_dilations, refine_steps=refine_steps,
                    device=a.device)
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        out = subprocess.run([sys.executable, "-m", "bench.video", "--worker", json.dumps(spec)], cwd=ROOT,
                             capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"{row}: failed\n{out.stderr[-2000:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(r) + "\n")
        gpu = f"  peak GPU {r['peak_gpu_mb']:8.0f} MB" if r.get("peak_gpu_mb") is not None else ""
        print(f"{row:18s} {r['frames']:4d} frames  {r['s_per_frame']:8.3f} s/frame  peak RSS {r['peak_rss_mb']:8.0f} MB"
              f"{gpu}  (load {r['load_s']:.1f} s)", flush=True)
    by = {r["row"]: r for r in results}
    if "rolling-fast" in by and "rolling-fast-long" in by:
        for key, name in (("peak_rss_mb", "RSS"), ("peak_gpu_mb", "GPU")):
            if by["rolling-fast"].get(key):
                ratio = by["rolling-fast-long"][key] / by["rolling-fast"][key]
                print(f"peak {name} {4 * frames} frames / {frames} frames: {ratio:.3f} (goal: within 1.10)")
    if "diffusers-frames" in by:
        base = by["diffusers-frames"]["s_per_frame"]
        for r in results:
            print(f"{r['row']:18s} time per frame / diffusers' frame loop: {r['s_per_frame'] / base:.2f}")


if __name__ == "__main__":
    main()
