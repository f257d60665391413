"""Each speed-up timed alone on a device, in fp32 and bf16, against diffusers' pipeline there (issue #23).

What a session with a lent GPU runs, in one short call (minutes on an H100, most of it building the checkpoint):

    python -m bench.device_levers --device cuda [--out bench/device_levers_cuda.json]

Per dtype, one process: our model loaded with ``optimize=False`` (diffusers' modules), then the levers switched on
one at a time (``bench.levers.configure``) in the order A B C C B A, each configuration timed on the same
512-px image, 1 step (the unit of the video frame loop), median of ``--repeats`` calls after a warm-up, with the
device synchronised; diffusers' ``MarigoldDepthPipeline`` on the same device, weights and input beside them. It
prints a table, the ratio of each configuration to diffusers' time, and the policy it suggests for
``marigold.core.devices.POLICY``: the levers whose addition made the call at least 3 % faster in both dtypes.
Tests run it on the CPU with a tiny checkpoint (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

GAIN = 0.97  # a lever is suggested where the configuration that adds it takes at most 97 % of the one before
LEVER_OF_CONFIG = ("channels_last", "blocks", "attention", "winograd")  # what each later config adds, in order


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def time_dtype(ckpt: Path, device: str, dtype: str, resolution: int, repeats: int) -> dict:
    import torch
    from diffusers import MarigoldDepthPipeline

    import marigold
    from marigold.core import devices

    from .levers import configure, lever_configs

    kind = torch.device(device).type
    saved = devices.POLICY.get(kind)
    devices.POLICY[kind] = frozenset(devices.LEVERS)  # the forwards run wherever this bench switches them on
    try:
        g = torch.Generator().manual_seed(0)
        image = torch.rand(1, 3, resolution * 3 // 4, resolution, generator=g)  # [1,3,H,W] 4:3 like a video frame

        def timed(fn) -> list[float]:
            fn()  # warm-up: kernels chosen, memory pooled
            out = []
            for _ in range(repeats):
                _sync(device)
                t0 = time.perf_counter()
                fn()
                _sync(device)
                out.append(time.perf_counter() - t0)
            return out

        model = marigold.load(ckpt, device=device, dtype=dtype, progress=False, optimize=False)
        configs = lever_configs(dtype, kind)
        names = list(configs)
        times: dict[str, list[float]] = {k: [] for k in names}
        for name in names + names[::-1]:
            configure(model, *configs[name])
            times[name] += timed(lambda: marigold.predict_depth(model, image, num_inference_steps=1,
                                                                processing_resolution=0, seed=0))
        del model
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
        pipe = MarigoldDepthPipeline.from_pretrained(str(ckpt), dtype=dt,
                                                     variant="fp16" if dtype == "bf16" else None).to(device)
        pipe.set_progress_bar_config(disable=True)
        ref = timed(lambda: pipe(image.to(device, dt), num_inference_steps=1, processing_resolution=0,
                                 output_type="pt", generator=torch.Generator().manual_seed(0)))
    finally:
        if saved is None:
            devices.POLICY.pop(kind, None)
        else:
            devices.POLICY[kind] = saved
    base = statistics.median(ref)
    rows = [{"config": k, "time_s": v, "median_s": statistics.median(v), "ratio": statistics.median(v) / base}
            for k, v in times.items()]
    return {"dtype": dtype, "diffusers_s": ref, "diffusers_median_s": base, "configs": rows}


def suggest(runs: list[dict]) -> list[str]:
    """The levers that paid in every dtype: each config's median against the one before it."""
    paid: dict[str, list[bool]] = {}
    for run in runs:
        rows = run["configs"]
        for lever, before, after in zip(LEVER_OF_CONFIG, rows, rows[1:]):
            paid.setdefault(lever, []).append(after["median_s"] <= GAIN * before["median_s"])
    # the ResNet-block row switches the sub-pixel upsampling on with the blocks: one verdict for both
    out = [lv for lv, v in paid.items() if all(v)]
    return out + (["subpixel"] if "blocks" in out else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.device_levers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", choices=("full", "tiny"), default="full", help="the checkpoint (bench.ckpt)")
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)

    import torch

    from .ckpt import ensure

    ckpt = ensure(a.size, log=lambda m: print(m, flush=True))
    runs = [time_dtype(ckpt, a.device, d, a.resolution, a.repeats) for d in a.dtypes.split(",")]
    name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else a.device
    print(f"\n{name}, {a.resolution} px, 1 step, {a.size} checkpoint, median of {a.repeats} after a warm-up\n")
    print("| dtype | configuration | median s | ÷ diffusers |\n|---|---|---|---|")
    for run in runs:
        print(f"| {run['dtype']} | diffusers' MarigoldDepthPipeline | {run['diffusers_median_s']:.4f} | 1.00 |")
        for r in run["configs"]:
            print(f"| {run['dtype']} | {r['config']} | {r['median_s']:.4f} | {r['ratio']:.2f} |")
    levers = suggest(runs)
    print(f"\nsuggested devices.POLICY[{torch.device(a.device).type!r}] = frozenset({sorted(levers)})")
    if a.out:
        a.out.write_text(json.dumps({"device": name, "resolution": a.resolution, "size": a.size, "runs": runs,
                                     "suggested_policy": levers}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
