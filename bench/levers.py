"""Each lever of ours measured alone, in one process (``python -m bench.levers SPEC_JSON``).

The model is loaded with ``optimize=False`` (diffusers' modules exactly as they are), then the levers are
switched on and off between calls, in the order A B C D D C B A, so that slow drift (other work on the machine)
hits every configuration alike. Memory per call is the peak RSS above the RSS before the call, sampled every
10 ms from /proc/self/statm by a thread.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time


class PeakRSS:
    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")

    def rss(self):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def __enter__(self):
        self.base = self.rss()
        self.peak = self.base
        self.stop = False

        def loop():
            while not self.stop:
                self.peak = max(self.peak, self.rss())
                time.sleep(0.01)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.peak = max(self.peak, self.rss())
        self.delta_gb = (self.peak - self.base) / 1e9


def lever_configs(dtype: str, device: str = "cpu") -> dict[str, tuple[bool, bool, bool, bool]]:
    """The configurations, each adding one lever: name → (channels-last, fast blocks and sub-pixel upsampling,
    chunked attention, Winograd). Chunked attention and Winograd exist on the CPU only, Winograd in fp32 only."""
    configs = {"diffusers' modules as they are (optimize=False)": (False, False, False, False),
               "+ channels-last": (True, False, False, False),
               "+ in-place ResNet blocks, sub-pixel VAE upsampling": (True, True, False, False)}
    if device == "cpu":
        configs["+ chunked attention, bf16 scores shifted by row maxima"] = (True, True, True, False)
        if dtype == "fp32":  # marigold/core/winograd.py says why not in bf16
            configs["+ Winograd F(4×4, 3×3) for the VAE's wide 3×3 convolutions"] = (True, True, True, True)
        # every lever on: what optimize=True gives on the CPU (elsewhere devices.POLICY decides)
        last = list(configs)[-1]
        configs[last + " (optimize=True)"] = configs.pop(last)
    return configs


def configure(model, channels_last: bool, blocks: bool, attention: bool, wino: bool) -> None:
    """Switch the levers of a model loaded with ``optimize=False`` on and off in place (whatever the device's
    policy says: the caller sets ``devices.POLICY`` for the device under test)."""
    import torch

    from marigold.core import fast, winograd

    parts = (model.unet, model.vae)
    for p in parts:
        p.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        fast.unpatch_module(p)
        winograd.unpatch_module(p)
    if blocks or attention:
        for p in parts:
            # as marigold.core.fast.apply: sub-pixel upsampling in the VAE only; blocks off = attention alone
            fast.patch_module(p, subpixel=blocks and p is model.vae, attention=attention, blocks=blocks)
    if wino:
        winograd.patch_module(model.vae)


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    import numpy as np
    import torch

    import marigold

    model = marigold.load(spec["checkpoint"], device="cpu", dtype=spec["dtype"], progress=False, optimize=False)
    # (fp32 loads the fp32 files, bf16 the fp16 variant cast to bf16, as marigold.load does by itself)
    image = torch.from_numpy(np.load(spec["image"]))

    configs = lever_configs(spec["dtype"])

    def call(ens=1, batch=1, steps=1):
        with PeakRSS() as m:
            t0 = time.perf_counter()
            marigold.predict_depth(model, image, num_inference_steps=steps, ensemble_size=ens,
                                   processing_resolution=0, batch_size=batch, seed=0)
            dt = time.perf_counter() - t0
        return dt, m.delta_gb

    marigold.predict_depth(model, image[..., :48, :64], num_inference_steps=1, processing_resolution=0, seed=0)
    results = {k: [] for k in configs}
    names = list(configs)
    for name in names + names[::-1]:
        configure(model, *configs[name])
        results[name].append(call())
    out = {"levers": [{"config": k, "time_s": [r[0] for r in v], "peak_delta_gb": [r[1] for r in v]}
                      for k, v in results.items()]}
    batches = []
    for b in spec.get("batches", []):
        dt, mem = call(ens=spec["batch_ensemble"], batch=b)
        batches.append({"batch_size": b, "ensemble": spec["batch_ensemble"], "time_s": dt, "peak_delta_gb": mem})
    out["batches"] = batches
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
