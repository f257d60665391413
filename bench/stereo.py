"""Stereo 3D from depth, seconds on this machine: ``python -m bench.stereo [--size 1920x1080] [--rounds 3]
[--checkpoint ID_OR_FOLDER --frames N --steps S --processing-resolution R] [--out DIR]``.

1. The warp and fill of one frame (``marigold.geometry.stereo.stereo``: both eyes, z-buffered forward warp, background
   fill) and its side-by-side composition, at ``--size``, on a synthetic photo and depth (a ramp, waves and a
   near box: depth jumps to cut and fill). Side by side, as the reference: a plain backward ``grid_sample`` warp
   of both eyes (the fastest way, the one with the ghosts), same inputs.
2. With ``--checkpoint``: the per-frame time of the video path with ``--stereo sbs`` (``iter_video_depth`` →
   one normalisation → ``StereoVideoWriter``) on ``--frames`` frames of that size, and the stereo step's share
   of it (the issue's goal: at most a tenth of the depth step's time).

Medians of ``--rounds`` rounds in one process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def inputs(w: int, h: int):
    import torch

    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    depth = 0.5 * yy + 0.2 * torch.sin(12 * xx) * torch.cos(9 * yy) + 0.3
    depth[h // 3: 2 * h // 3, w // 3: 2 * w // 3] = 0.05  # a near box
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, h, w, generator=g) * 0.5 + 0.25 * (1 + torch.sin(40 * xx))[None, None]
    return image.clamp(0, 1), depth[None, None].clamp(0, 1)  # [1,3,H,W], [1,1,H,W]


def backward_reference(image, depth, divergence: float = 2.0):
    """Both eyes by ``grid_sample`` at the target's own depth: the ghosting reference (iw3's --method grid_sample)."""
    import torch
    import torch.nn.functional as F

    from marigold.geometry.stereo import disparity

    n, _, h, w = image.shape
    shift, _ = disparity(depth, w, divergence)  # [1,1,H,W]
    ys = torch.linspace(-1, 1, h).view(1, h, 1).expand(n, h, w)
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    out = []
    for sign in (-0.5, 0.5):  # sample where the pixel came from
        gx = (xs + sign * shift[:, 0]) / (w - 1) * 2 - 1
        out.append(F.grid_sample(image, torch.stack([gx, ys], -1), align_corners=True))
    return torch.cat(out, -1)


def time_it(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def video_share(checkpoint: str, w: int, h: int, frames: int, steps: int | None = None,
                processing_resolution: int | None = None) -> dict:
    """Per-frame seconds of the depth step and of the stereo step on the CLI's video path."""
    import numpy as np

    from marigold import load
    from marigold.geometry.stereo import StereoVideoWriter
    from marigold.video.pipeline import ClipNormalizer, iter_video_depth

    model = load(checkpoint, dtype="fp32")
    image, depth = inputs(w, h)
    clip = [(image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8) for _ in range(frames)]
    t0 = time.perf_counter()
    values = [f.value for f in iter_video_depth(model, clip, frame_count=frames, num_inference_steps=steps,
                                                processing_resolution=processing_resolution)]
    t_depth = (time.perf_counter() - t0) / frames
    norm = ClipNormalizer()
    for v in values:
        norm.update(v)
    with tempfile.TemporaryDirectory() as tmp:
        sv = StereoVideoWriter(Path(tmp) / "clip_stereo.mp4", 30, "sbs")
        t0 = time.perf_counter()
        with sv:
            for frame, v in zip(clip, values):
                sv.write(frame, norm(v))
        t_stereo = (time.perf_counter() - t0) / frames
    return {"checkpoint": checkpoint, "frames": frames, "steps": steps,
            "processing_resolution": processing_resolution, "depth_s_per_frame": t_depth,
            "stereo_s_per_frame": t_stereo, "stereo_share": t_stereo / (t_depth + t_stereo),
            "stereo_over_depth": t_stereo / t_depth}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stereo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1920x1080", help="W×H of the frame (default 1920x1080)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--checkpoint", default=None, help="also time the video path with this depth checkpoint")
    ap.add_argument("--frames", type=int, default=3, help="frames for --checkpoint (default 3)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps for --checkpoint (default: its own)")
    ap.add_argument("--processing-resolution", type=int, default=None,
                    help="for --checkpoint (default: the fast preset's, 768)")
    ap.add_argument("--out", default=None, help="folder for stereo.json")
    args = ap.parse_args(argv)
    import torch

    from marigold.geometry.stereo import stereo

    w, h = (int(v) for v in args.size.lower().split("x"))
    image, depth = inputs(w, h)
    stereo(image[..., :64, :64], depth[..., :64, :64])  # warm-up (allocator, kernels)
    t_stereo = time_it(lambda: stereo(image, depth).compose("sbs"), args.rounds)
    t_back = time_it(lambda: backward_reference(image, depth), args.rounds)
    res = {"size": [w, h], "rounds": args.rounds, "threads": torch.get_num_threads(),
           "stereo_s": t_stereo, "backward_reference_s": t_back, "ratio_vs_backward": t_stereo / t_back}
    print(f"{w}×{h}, {torch.get_num_threads()} threads: warp + fill + SBS {t_stereo:.3f} s; backward "
          f"grid_sample (ghosting reference) {t_back:.3f} s; {t_stereo / t_back:.2f}×")
    if args.checkpoint:
        res["video"] = video_share(args.checkpoint, w, h, args.frames, args.steps, args.processing_resolution)
        v = res["video"]
        print(f"video path, {args.checkpoint}: depth {v['depth_s_per_frame']:.2f} s/frame, stereo "
              f"{v['stereo_s_per_frame']:.2f} s/frame: {100 * v['stereo_share']:.1f} % of the frame "
              f"({v['stereo_over_depth']:.3f}× the depth step)")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "stereo.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
