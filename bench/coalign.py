"""Co-alignment: our solver (``marigold.core.coalign.solve``) vs RollingDepth's Adam loop, on the same snippets.

``python -m bench.coalign`` times both on a realistic clip (250 frames at 768×432, dilations [1, 10, 25],
snippets of 3 frames: ~700 snippets; maps cropped by 2 pixels and subsampled 10× as the reference does), in one
process, alternating (ours, reference, ours, reference, ours: medians), and scores both answers with the reference's own
objective (:func:`reference_objective`). ``--quick`` runs a small clip.

The reference here is our own code, written from reading prs-eth/RollingDepth `rollingdepth/depth_aligner.py` (``DepthAligner.run``
for the preprocessing, ``DepthAligner.optimize`` for the loss and the Adam loop): the same tensors (one layer
per (dilation, position in the snippet), ``M``/``M_depth``/``B`` of shape [L, T, K]), the same loss, the same
optimiser settings (Adam, lr 1e-3, betas (0.5, 0.9), 2000 steps, detached targets). It is not in the library.

The snippets are synthetic: a smooth random disparity video (moving Gaussian blobs on a ramp, values in about
0.2..1.2), each snippet's frames mapped by a known per-snippet affine map (scale 0.5..2, shift −0.5..0.5) plus
Gaussian noise, as a snippet model's affine-invariant outputs differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

BORDER, FACTOR = 2, 10  # depth_aligner.py, DepthAligner.__init__ defaults


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def snippet_indices(T: int, dilation: int, length: int) -> torch.Tensor:
    """[N, length] frame indices of the snippets of one dilation, stride 1 (rollingdepth_pipeline.py,
    ``get_snippet_indice`` with a constant dilation)."""
    span = (length - 1) * dilation + 1
    start = torch.arange(T - span + 1)
    return start[:, None] + dilation * torch.arange(length)[None, :]


def disparity_video(T: int, H: int, W: int, seed: int = 0, blobs: int = 6, keep=None) -> torch.Tensor:
    """[T,H,W] smooth random disparity, 0.2..1.2 or so: moving Gaussian blobs over a vertical ramp. ``keep``
    (row slice, column slice) evaluates it on those pixels only (the ones the aligner keeps)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.linspace(0, 1, H), torch.linspace(0, 1, W)
    if keep is not None:
        yy, xx = yy[keep[0]], xx[keep[1]]
    H, W = yy.numel(), xx.numel()
    yy, xx = yy.view(1, H, 1), xx.view(1, 1, W)
    tt = torch.linspace(0, 1, T).view(T, 1, 1)
    d = 0.2 + 0.5 * yy.expand(T, H, W).clone()
    for _ in range(blobs):
        cx, cy, vx, vy = (torch.rand(4, generator=g) * torch.tensor([1, 1, 0.6, 0.6]) - torch.tensor([0, 0, .3, .3]))
        r = 0.08 + 0.15 * float(torch.rand(1, generator=g))
        amp = 0.5 * float(torch.rand(1, generator=g))
        d = d + amp * torch.exp(-((xx - cx - vx * tt) ** 2 + (yy - cy - vy * tt) ** 2) / (2 * r * r))
    return d


def synthetic_snippets(T: int, H: int, W: int, dilations: list[int], length: int = 3, noise: float = 0.0,
                       seed: int = 0, model: str = "normalised", keep=None):
    """Per dilation: snippets [N, length, 1, H, W] (the reference's layout), indices [N, length], and the true
    per-snippet affine maps (alpha [N], beta [N]: snippet = alpha · truth + beta + noise · alpha · N(0, 1)).

    ``model="normalised"``: each snippet is its frames' truth mapped onto [-1, 1] by the snippet's own range,
    as an affine-invariant snippet model's output is; ``"affine"``: alpha 0.5..2, beta −0.5..0.5 at random.
    ``keep``: only those pixels (see :func:`disparity_video`), for clips too large to hold at full resolution.
    """
    truth = disparity_video(T, H, W, seed, keep=keep)
    g = torch.Generator().manual_seed(seed + 1)
    snippets, indices, affine = [], [], []
    for dil in dilations:
        idx = snippet_indices(T, dil, length)
        N = idx.shape[0]
        if model == "affine":
            alpha = 0.5 + 1.5 * torch.rand(N, generator=g)
            beta = torch.rand(N, generator=g) - 0.5
        else:
            lo, hi = truth[idx].amin((1, 2, 3)), truth[idx].amax((1, 2, 3))
            alpha = 2 / (hi - lo)
            beta = -alpha * lo - 1
        x = truth[idx] * alpha.view(N, 1, 1, 1) + beta.view(N, 1, 1, 1)  # [N,length,H,W]
        if noise:
            x = x + noise * alpha.view(N, 1, 1, 1) * torch.randn(x.shape, generator=g)
        snippets.append(x.unsqueeze(2))
        indices.append(idx)
        affine.append((alpha, beta))
    return snippets, indices, affine, truth


KEEP = (slice(BORDER, -BORDER, FACTOR), slice(BORDER, -BORDER, FACTOR))  # the pixels the reference keeps


def preprocess(snippets: list[torch.Tensor], keep=KEEP) -> tuple[list[torch.Tensor], float]:
    """The reference's preprocessing (``DepthAligner.run``): subtract the global minimum, crop the border,
    subsample by striding (``keep=None``: the snippets hold only the kept pixels already). Returns
    [N, length, h·w] per dilation, and the minimum."""
    mn = float(min(float(x.min()) for x in snippets))
    out = []
    for x in snippets:
        y = (x - mn)[:, :, 0] if keep is None else (x - mn)[:, :, 0, keep[0], keep[1]]
        out.append(y.reshape(y.shape[0], y.shape[1], -1).contiguous())
    return out, mn


def to_rows(small: list[torch.Tensor], indices: list[torch.Tensor], mn: float):
    """The preprocessed snippets as solver rows (raw values: the minimum added back and given as ``origin``):
    (maps [M,K], unit [M], group [M], n_units, penalty_weight [U], options)."""
    maps, unit, group, pw = [], [], [], []
    base = 0
    for y, idx in zip(small, indices):
        N, n, K = y.shape
        maps.append(y.reshape(N * n, K) + mn)
        unit.append((base + torch.arange(N)).repeat_interleave(n))
        group.append(idx.reshape(-1))
        pw.append(torch.full((N,), 1.0 / N))
        base += N
    layers = sum(y.shape[1] for y in small)
    return (torch.cat(maps), torch.cat(unit), torch.cat(group), base, torch.cat(pw),
            {"origin": mn, "layers": layers})


# ---------------------------------------------------------------------------------------------------------------
# The reference (our code, from reading depth_aligner.py)


def _layers(small, indices, T, scales, shifts):
    """M, M_depth, B [L, T, K] for per-dilation scales/shifts (lists of [N]): layer = (dilation, position)."""
    K = small[0].shape[-1]
    a = torch.cat([y * s.view(-1, 1, 1) + t.view(-1, 1, 1) for y, s, t in zip(small, scales, shifts)])  # [N,n,K]
    n = small[0].shape[1]
    layer = torch.cat([i * n + torch.arange(n).expand(y.shape[0], n) for i, y in enumerate(small)])  # [N,n]
    frame = torch.cat(indices)  # [N,n]
    L = n * len(small)
    M = torch.zeros(L, T, K, dtype=a.dtype).index_put((layer, frame), a)
    Md = torch.zeros(L, T, K, dtype=a.dtype).index_put((layer, frame), a.clamp(min=1e-3) ** -1)
    B = torch.zeros(L, T, 1, dtype=a.dtype).index_put((layer, frame), torch.ones((), dtype=a.dtype))
    return M, Md, B


def _loss(small, indices, T, scales, shifts, lmda2=0.1, lmda3=10.0, depth_weight=1.0):
    M, Md, B = _layers(small, indices, T, scales, shifts)
    with torch.no_grad():
        target = M.sum(0) / B.sum(0)  # [T,K]
        target_d = Md.sum(0) / B.sum(0)
        nrm = target.abs().mean(-1, keepdim=True)  # [T,1]
        nrm_d = target_d.abs().mean(-1, keepdim=True)
    B = B.expand_as(M)
    loss = ((M - target) * B / nrm).abs().mean() + depth_weight * ((Md - target_d) * B / nrm_d).abs().mean()
    pen = sum(lmda2 * (torch.relu(1 - s) ** 2).mean() + lmda3 * (t ** 2).mean() for s, t in zip(scales, shifts))
    return loss + pen


def reference_objective(small, indices, T, scales, shifts) -> float:
    """The reference's loss at (scales, shifts) (lists per dilation, in the min-subtracted coordinates)."""
    with torch.no_grad():
        return float(_loss(small, indices, T, [s.double() for s in scales], [t.double() for t in shifts],))


def reference_adam(small, indices, T, steps: int = 2000, history: list | None = None):
    """The reference's optimisation: Adam(lr 1e-3, betas (0.5, 0.9)) on ``_loss`` from s=1, t=0. ``history``
    receives (step, loss) every 100 steps (the loss before that step, as the reference logs it)."""
    scales = [torch.ones(y.shape[0], requires_grad=True) for y in small]
    shifts = [torch.zeros(y.shape[0], requires_grad=True) for y in small]
    opt = torch.optim.Adam(scales + shifts, lr=1e-3, betas=(0.5, 0.9))
    for i in range(steps):
        opt.zero_grad()
        loss = _loss(small, indices, T, scales, shifts)
        loss.backward()
        opt.step()
        if history is not None and i % 100 == 0:
            history.append((i, loss.item()))
    return [s.detach() for s in scales], [t.detach() for t in shifts]


def ours(small, indices, mn, **kw):
    """Our solver on the same inputs, its answer split per dilation in the reference's coordinates."""
    from marigold.core import coalign

    maps, unit, group, U, pw, opts = to_rows(small, indices, mn)
    s, t = coalign.solve(maps, unit, group, U, penalty_weight=pw, **opts, **kw)
    t = t + s * mn  # raw coordinates -> the reference's min-subtracted ones
    sizes = [y.shape[0] for y in small]
    return list(s.double().split(sizes)), list(t.double().split(sizes))


# ---------------------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--size", default="768x432", help="W×H of the full-resolution snippets")
    ap.add_argument("--dilations", default="1,10,25")
    ap.add_argument("--rounds", type=int, default=2, help="reference runs (ours runs one more time)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.03)
    ap.add_argument("--quick", action="store_true", help="40 frames at 192×128, 1 round")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both sides (1: on a busy shared CPU, every op of a 2-thread run waits "
                         "for a descheduled thread)")
    ap.add_argument("--out", help="write the result JSON here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.quick:
        a.frames, a.size, a.dilations, a.rounds = 40, "192x128", "1,2,5", 1
    W, H = (int(v) for v in a.size.split("x"))
    dil = [int(v) for v in a.dilations.split(",")]
    # only the pixels the reference keeps are made (a 250-frame clip at full resolution would need ~3 GB), so
    # the minimum subtracted is theirs rather than the full-resolution one
    snippets, indices, _, _ = synthetic_snippets(a.frames, H, W, dil, 3, a.noise, keep=KEEP)
    small, mn = preprocess(snippets, keep=None)
    n_snip = sum(y.shape[0] for y in small)
    print(f"{a.frames} frames {W}x{H}, dilations {dil}: {n_snip} snippets, maps {small[0].shape[-1]} px, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    times = {"ours": [], "reference": []}
    values = {}
    load = [os.getloadavg()[0]]
    # ours, then (reference, ours) × rounds: every reference run sits between two of ours
    history = []
    for side in ["ours"] + ["reference", "ours"] * a.rounds:
        t0 = time.perf_counter()
        if side == "ours":
            s, t = ours(small, indices, mn)
        else:
            history = []
            s, t = reference_adam(small, indices, a.frames, a.steps, history=history)
        times[side].append(time.perf_counter() - t0)
        values[side] = reference_objective(small, indices, a.frames, s, t)
        print(f"  {side}: {times[side][-1]:.2f} s, reference objective {values[side]:.6f}", flush=True)
    init = reference_objective(small, indices, a.frames, [torch.ones(y.shape[0]) for y in small],
                               [torch.zeros(y.shape[0]) for y in small])
    load.append(os.getloadavg()[0])
    best = {k: statistics.median(v) for k, v in times.items()}
    res = {"frames": a.frames, "size": [W, H], "dilations": dil, "snippets": n_snip, "pixels": small[0].shape[-1],
           "noise": a.noise, "adam_steps": a.steps, "times_s": times, "median_s": best, "load_average": load,
           "speedup": best["reference"] / best["ours"], "objective": values, "objective_at_init": init,
           "adam_history": history,
           "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
                      f"torch {torch.__version__}"}
    print(f"speed-up {res['speedup']:.1f}x; objective ours {values['ours']:.6f} vs reference "
          f"{values['reference']:.6f} (at init {init:.6f})")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)
    print("RESULT " + json.dumps(res))  # for bench/run.py's run_child
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
