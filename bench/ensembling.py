"""Ensembling alone: ours vs diffusers' ``MarigoldDepthPipeline.ensemble_depth`` on the same members.

``python -m bench.ensembling SPEC_JSON`` prints one JSON line. The members are a depth-like map made from the
benchmark photo (smoothed luminance plus a ramp), under 10 random scales and shifts with scale-proportional
noise, as real ensemble members differ. Both solutions are scored by the same objective (diffusers' pairwise
RMS + median regulariser, evaluated at the resolution both solvers work at, max_res=1024) in the common gauge
that maps the median onto 0..1: the output is invariant to that gauge (see tests/test_ensemble.py).
"""

from __future__ import annotations

import json
import sys
import time


def members_for(photo, h, w, e=10, seed=0):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    img = torch.from_numpy(photo)  # [1,3,H,W]
    lum = F.interpolate(img.mean(1, keepdim=True), size=(h, w), mode="bilinear", antialias=True)
    lum = F.avg_pool2d(lum, 9, stride=1, padding=4)
    yy = torch.linspace(0, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
    truth = 0.6 * yy + 0.4 * lum  # [1,1,H,W]
    s = torch.rand(e, generator=g) * 1.5 + 0.5
    t = torch.rand(e, generator=g) * 0.4 - 0.2
    m = truth * s.view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1)
    m = m + 0.03 * torch.randn(e, 1, h, w, generator=g) * s.view(-1, 1, 1, 1)
    return m.clamp(0, 1.2).contiguous()


def gauge_value(obj, s, t):
    import torch

    s, t = obj.gauge(torch.as_tensor(s).double(), torch.as_tensor(t).double())
    return float(obj(s, t))


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    import numpy as np
    import scipy.optimize
    import torch
    from diffusers import MarigoldDepthPipeline

    from marigold.core.ensemble import AlignmentObjective, _downsample, ensemble_depth, solve_alignment

    photo = np.load(spec["image"])
    h, w = spec["size"]
    members = members_for(photo, h, w, spec.get("ensemble", 10))
    obj = AlignmentObjective(_downsample(members, 1024), 0.02, "median")
    out = {"size": [h, w], "ensemble": int(members.shape[0])}

    times = []
    for _ in range(spec.get("repeats_ours", 3)):
        t0 = time.perf_counter()
        ours, _ = ensemble_depth(members)
        times.append(time.perf_counter() - t0)
    s, t, _ = solve_alignment(members)
    out["ours_s"] = times
    out["ours_objective"] = gauge_value(obj, s, t)

    captured = {}
    real = scipy.optimize.minimize

    def spy(*a, **k):
        captured["res"] = real(*a, **k)
        return captured["res"]

    scipy.optimize.minimize = spy
    times = []
    for _ in range(spec.get("repeats_diffusers", 1)):
        t0 = time.perf_counter()
        ref, _ = MarigoldDepthPipeline.ensemble_depth(members)
        times.append(time.perf_counter() - t0)
    x = torch.as_tensor(captured["res"].x)
    e = members.shape[0]
    out["diffusers_s"] = times
    out["diffusers_objective"] = gauge_value(obj, x[:e], x[e:])
    out["max_abs_diff"] = float((ours - ref.float()).abs().max())
    out["mean_abs_diff"] = float((ours - ref.float()).abs().mean())
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
