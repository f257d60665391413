"""Checks for a lent GPU: our answers on the device against diffusers' on the same device, and against ours on the CPU.

The tests run on the CPU only (CI has no GPU); this is what a session with a GPU runs once, in one short call:

    python -m bench.device_check --device cuda [--out results.json]

* parity on the device: depth (1 and 4 DDIM steps, native size and a downscale, an odd-sized image) and normals,
  fp32, ours vs diffusers' Marigold pipelines on the same tiny checkpoint and noise: max abs difference, strict
  (TF32 off on both sides, as on the CPU; the default cuDNN TF32 convolutions are reported beside it);
* bf16 on the device, ours vs diffusers in bf16 (reported, a looser bound);
* the device against the CPU: one image, a RollingDepth clip and a Marigold video-mode clip (tiny checkpoints).

Exits non-zero when a strict check fails. Tiny checkpoints with random weights: this checks arithmetic, not
depth quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

TOL_FP32 = 1e-4  # tests/test_parity.py's bound on the CPU
TOL_DEVICE_VS_CPU = 1e-3  # different kernels (cuDNN vs oneDNN) sum in different orders; fp32 rounding only


def _build(root: Path, name: str, task: str) -> Path:
    from bench.ckpt import TOOL

    out = root / name
    subprocess.run([sys.executable, str(TOOL), str(out), "--size", "tiny", "--dtype", "fp32", "--task", task],
                   check=True, capture_output=True)
    return out


def _clip(n: int, h: int = 48, w: int = 64):
    import torch

    g = torch.Generator().manual_seed(0)
    base = torch.rand(3, h, w, generator=g)
    return torch.stack([torch.roll(base, shifts=2 * t, dims=2) for t in range(n)])  # [T,3,H,W]


def run(device: str) -> tuple[list[dict], bool]:
    import torch
    from diffusers import MarigoldDepthPipeline, MarigoldNormalsPipeline

    import marigold

    rows: list[dict] = []
    ok = True

    def report(name: str, diff: float, tol: float | None) -> None:
        nonlocal ok
        passed = tol is None or diff < tol
        ok &= passed
        rows.append({"check": name, "max_abs_diff": diff, "tol": tol, "passed": passed})
        verdict = "" if tol is None else ("ok" if passed else "FAILED")
        print(f"{name:58s} {diff:.3e}  {'' if tol is None else f'< {tol:.0e}'}  {verdict}", flush=True)

    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 37, 53, generator=g)  # odd size: padding and resizing matter
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        depth, normals, rolling = (_build(root, "depth", "depth"), _build(root, "normals", "normals"),
                                   _build(root, "rollingdepth", "rollingdepth"))
        for path, cls, fn in ((depth, MarigoldDepthPipeline, marigold.predict_depth),
                              (normals, MarigoldNormalsPipeline, marigold.predict_normals)):
            ours = marigold.load(path, device=device, dtype="fp32", progress=False)
            ref = cls.from_pretrained(str(path), dtype=torch.float32).to(device)
            ref.set_progress_bar_config(disable=True)
            cases = [(1, 0), (4, 0), (1, 32), (4, 32)] if cls is MarigoldDepthPipeline else [(1, 0), (4, 32)]
            for tf32 in (False, True):
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                tag = "TF32 on (cuDNN default)" if tf32 else "fp32"
                for steps, res in cases:
                    want = ref(image, num_inference_steps=steps, processing_resolution=res, output_type="pt",
                               generator=torch.Generator().manual_seed(7)).prediction.float().cpu()
                    got = fn(ours, image, num_inference_steps=steps, processing_resolution=res,
                             seed=7).prediction.float().cpu()
                    report(f"{ours.task} vs diffusers, {steps} steps, res {res}, {tag}",
                           (got - want).abs().max().item(), None if tf32 else TOL_FP32)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

        ours = marigold.load(depth, device=device, dtype="bf16", progress=False)
        ref = MarigoldDepthPipeline.from_pretrained(str(depth), dtype=torch.bfloat16).to(device)
        ref.set_progress_bar_config(disable=True)
        want = ref(image, num_inference_steps=1, processing_resolution=0, output_type="pt",
                   generator=torch.Generator().manual_seed(7)).prediction.float().cpu()
        got = marigold.predict_depth(ours, image, num_inference_steps=1, processing_resolution=0,
                                     seed=7).prediction.float().cpu()
        report("depth vs diffusers, bf16, 1 step (reported)", (got - want).abs().max().item(), None)

        on_cpu = marigold.load(depth, device="cpu", dtype="fp32", progress=False)
        on_dev = marigold.load(depth, device=device, dtype="fp32", progress=False)
        a = marigold.predict_depth(on_cpu, image, num_inference_steps=4, seed=7).prediction
        b = marigold.predict_depth(on_dev, image, num_inference_steps=4, seed=7).prediction.cpu()
        report(f"depth {device} vs cpu, 4 steps", (a - b).abs().max().item(), TOL_DEVICE_VS_CPU)

        clip = _clip(12)
        for path, kw, name in ((rolling, dict(dilations=[1, 3], refine_steps=2), "RollingDepth [1,3] + 2 refine"),
                               (depth, {}, "Marigold video mode")):
            outs = []
            for dev in ("cpu", device):
                model = marigold.load(path, device=dev, dtype="fp32", progress=False)
                vp = marigold.predict_video(model, clip, seed=0, processing_resolution=64, **kw)
                outs.append(vp.depth.float().cpu())  # [T,1,H,W] in 0..1, one normalisation
            report(f"video {name}: {device} vs cpu", (outs[0] - outs[1]).abs().max().item(), TOL_DEVICE_VS_CPU)
    return rows, ok


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    rows, ok = run(a.device)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    print("all strict checks passed" if ok else "SOME STRICT CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
