"""One side of one benchmark case, in its own process (so peak RSS is that side's alone).

``python -m bench.worker SPEC_JSON`` prints one JSON line: import and load times, the timed calls, and the
file where the prediction (and, with an ensemble, the members) were saved. Both sides get the same image
tensor (already at the processing resolution, resized in fp32), the same seed and the same settings.
"""

from __future__ import annotations

import json
import sys
import time


def _tiny_image(torch):
    return torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))


def run_ours(spec, torch, np):
    t0 = time.perf_counter()
    import diffusers.models  # noqa: F401  (the UNet/VAE classes: library import, not checkpoint load)
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: F401

    import marigold

    mp = sys.modules["marigold.core.predict"]

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = marigold.load(spec["checkpoint"], device="cpu", dtype=spec["dtype"], progress=False,
                          optimize=spec.get("optimize", True))
    t_load = time.perf_counter() - t0
    captured = []
    real = mp.ensemble_members

    def spy(members, **kw):
        captured.append(members.values.clone())
        return real(members, **kw)

    mp.ensemble_members = spy

    def call(image, steps, ens, batch):
        return marigold.predict_depth(model, image, num_inference_steps=steps, ensemble_size=ens,
                                      processing_resolution=0, batch_size=batch, seed=spec["seed"]).prediction

    return t_import, t_load, call, captured, str(model.dtype)


def run_diffusers(spec, torch, np):
    t0 = time.perf_counter()
    from diffusers import MarigoldDepthPipeline

    t_import = time.perf_counter() - t0
    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[spec["dtype"]]
    t0 = time.perf_counter()
    pipe = MarigoldDepthPipeline.from_pretrained(spec["checkpoint"], dtype=dt,
                                                 variant="fp16" if dt != torch.float32 else None)
    t_load = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)
    captured = []
    real = MarigoldDepthPipeline.ensemble_depth

    def spy(depth, *a, **k):
        captured.append(depth.float().clone())
        return real(depth, *a, **k)

    MarigoldDepthPipeline.ensemble_depth = staticmethod(spy)

    def call(image, steps, ens, batch):
        g = torch.Generator().manual_seed(spec["seed"])
        return pipe(image, num_inference_steps=steps, ensemble_size=ens,
                    processing_resolution=0, batch_size=batch, generator=g, output_type="pt").prediction

    return t_import, t_load, call, captured, str(pipe.unet.dtype)


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    import numpy as np
    import torch

    image = torch.from_numpy(np.load(spec["image"]))  # [1,3,H,W] float32 0..1
    side = run_ours if spec["side"] == "ours" else run_diffusers
    t_import, t_load, call, captured, dtype = side(spec, torch, np)
    t0 = time.perf_counter()
    call(_tiny_image(torch), 1, 1, 1)  # warm-up: one-time costs (diffusers' empty-text embedding, oneDNN init,
    t_warm = time.perf_counter() - t0  # and paging in weights that were memory-mapped at load)
    captured.clear()
    runs = []
    pred = None
    for _ in range(spec.get("repeats", 1)):
        t0 = time.perf_counter()
        pred = call(image, spec["steps"], spec["ensemble"], spec.get("batch_size", 1))
        runs.append(time.perf_counter() - t0)
    out = {"side": spec["side"], "dtype": dtype, "import_s": t_import, "load_s": t_load, "warmup_s": t_warm, "runs_s": runs}
    if spec.get("save"):
        arrays = {"prediction": pred.float().cpu().numpy()}
        if captured:
            arrays["members"] = captured[-1].float().cpu().numpy()
        np.savez(spec["save"], **arrays)
        out["saved"] = spec["save"]
    # scaling points (ours only): extra (resolution image file, ensemble) runs in the same process
    extra = []
    for item in spec.get("extra", []):
        img = torch.from_numpy(np.load(item["image"]))
        t0 = time.perf_counter()
        call(img, item["steps"], item["ensemble"], item.get("batch_size", 1))
        extra.append({**item, "seconds": time.perf_counter() - t0, "pixels": int(img.shape[-1] * img.shape[-2])})
    if extra:
        out["extra"] = extra
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
