"""Does optical flow pay in Marigold's video mode? A measurement on a synthetic moving scene with exact ground truth.

Marigold's video mode fits one scale and shift per frame so that consecutive frames agree. Its rows compare two
frames either at the same pixel, or after warping the previous frame's prediction along OpenCV's DIS optical flow
(``cv2.DISOpticalFlow_create``). The scene: a textured slanted plane and a nearer textured square moving
``--speed`` pixels per frame over it; per-frame "predictions" are the true inverse depth under a random affine
map per frame (the flicker to remove) plus a little noise. Reported: the error of the aligned clip against the
truth after one affine map for the whole clip (what a clip normalisation cannot undo), relative to the truth's
range, for the raw frames, same-pixel pairs and flow-warped pairs, and the time the flow takes per frame.

    python -m bench.video_flow [--frames 24] [--speed 3] [--size 240x320]

Synthetic data only; real predictions differ from frame to frame in more than an affine map. Needs OpenCV
(opencv-python-headless, in the dev venv; not a dependency of the package, which does not use flow).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from marigold.video import pipeline as video


def scene(n: int, h: int, w: int, speed: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    tex_bg = rng.random((h, w)).astype(np.float32)
    tex_fg = rng.random((h // 3, w // 4)).astype(np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgbs, disp = [], []
    for t in range(n):
        d = 0.2 + 0.3 * y / h  # slanted plane, inverse depth
        r = np.repeat(tex_bg[..., None], 3, axis=2) * 0.6 + 0.2
        x0, y0 = int(10 + speed * t), h // 3
        fh, fw = tex_fg.shape
        x1 = min(w, x0 + fw)
        if x0 < w:
            d[y0:y0 + fh, x0:x1] = 0.9
            r[y0:y0 + fh, x0:x1] = np.stack([tex_fg[:, :x1 - x0], 0.3 * tex_fg[:, :x1 - x0], 0.2 + 0 * tex_fg[:, :x1 - x0]],
                                             axis=2)
        rgbs.append((r * 255).clip(0, 255).astype(np.uint8))
        disp.append(d)
    return rgbs, np.stack(disp)


def align(preds: torch.Tensor, rgbs, use_flow: bool) -> tuple[torch.Tensor, float]:
    import cv2

    aligner = video.StreamingAligner({"scale_penalty": 0.0, "shift_penalty": 0.0})
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = preds.shape[-2:]
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    flow_time = 0.0
    prev = None
    for t in range(preds.shape[0]):
        u = aligner.new_unit()
        aligner.contribute(u, t, preds[t])
        aligner.observe(u, t, video.lowres(preds[t]))
        if prev is not None:
            if use_flow:
                t0 = time.perf_counter()
                g1 = cv2.cvtColor(rgbs[t], cv2.COLOR_RGB2GRAY)
                g0 = cv2.cvtColor(rgbs[t - 1], cv2.COLOR_RGB2GRAY)
                flow = dis.calc(g1, g0, None)  # where each pixel of frame t was in frame t-1
                mx, my = gx + flow[..., 0], gy + flow[..., 1]
                warped = cv2.remap(preds[t - 1].numpy(), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                   borderValue=float("nan"))
                flow_time += time.perf_counter() - t0
                obs = video.lowres(torch.from_numpy(warped))
                mask = torch.isfinite(obs)
                aligner.observe(u - 1, t, torch.nan_to_num(obs), mask)
            else:
                aligner.observe(u - 1, t, video.lowres(prev))
        aligner.complete(t)
        prev = preds[t]
    out = dict(aligner.flush(range(preds.shape[0])))
    return torch.stack([out[t] for t in range(preds.shape[0])]), flow_time / max(1, preds.shape[0] - 1)


def error(aligned: torch.Tensor, truth: torch.Tensor) -> float:
    a = torch.stack([aligned.reshape(-1), torch.ones(aligned.numel())], 1).double()
    fit = a @ torch.linalg.lstsq(a, truth.reshape(-1, 1).double()).solution
    return float((fit.reshape(truth.shape) - truth).abs().mean() / (truth.max() - truth.min()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--speed", type=float, default=3.0)
    ap.add_argument("--size", default="240x320")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--noise", type=float, default=0.01, help="prediction noise (std) besides the affine jumps")
    a = ap.parse_args(argv)
    h, w = (int(v) for v in a.size.split("x"))
    rows = []
    for seed in range(a.seeds):
        rgbs, disp = scene(a.frames, h, w, a.speed, seed)
        truth = torch.from_numpy(disp)
        g = torch.Generator().manual_seed(seed)
        s = 0.6 + 0.8 * torch.rand(a.frames, 1, 1, generator=g)
        t = 0.2 * (torch.rand(a.frames, 1, 1, generator=g) - 0.5)
        preds = (truth - t) / s + a.noise * torch.randn(truth.shape, generator=g)
        same, _ = align(preds, rgbs, False)
        flow, ft = align(preds, rgbs, True)
        rows.append((error(preds, truth), error(same, truth), error(flow, truth), ft))
    r = np.array(rows).mean(0)
    print(f"{a.frames} frames {w}x{h}, square moving {a.speed} px/frame, noise {a.noise}, {a.seeds} seeds; mean |error| / range "
          f"after one affine map: raw {r[0]:.4f}, same pixel {r[1]:.4f}, flow {r[2]:.4f}; "
          f"flow {r[3] * 1e3:.1f} ms per frame pair")


if __name__ == "__main__":
    main()
