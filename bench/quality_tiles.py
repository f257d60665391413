"""The quality bench's ``tiles`` row (``python -m bench.quality --only tiles``): does tiling add detail?

Held-out synthetic scenes (flat-coloured, as the other rows) rendered at 4× and at 8× the model's resolution, in
two kinds: ``rooms`` (the usual scenes) and ``fine structure`` (the same rooms with thin poles, rails and small
balls: ``train.data.synthetic.render(fine=True)``). Per scene: one pass (the model at its own resolution, the
map stretched up), and ``marigold.predict_tiled`` at each working resolution up to the image's own with both
merges, ``coalign`` (tiles kept whole, co-aligned: the merge before the detail merge) and ``detail`` (the
default: structure from the global pass, detail from the tiles), on the same tile predictions (one run of the
model per scene and working resolution, shared by the merges; its noise drawn in turn from one seed-0
generator, as ``predict_tiled`` draws it). Three variants of the detail merge at the image's own resolution show
what its parts do: every tile trusted (``no confidence``), the tile's scale by least squares instead of the
reduced-major-axis slope (``OLS scale``), and no per-tile removal of its coarse departure from the pass before
the blend (``no drift removal``); see marigold/core/tile_detail.py.

Scores against the full-resolution truth after one least-squares scale and shift per scene: AbsRel; edge AbsRel
(pixels within 2 px of a depth jump, > 5 % between neighbours); **edge sharpness** (the summed |depth step| of
the aligned prediction across the true jumps, over the truth's: 1 = as sharp as the truth; a step spread over k
pixels scores about 1/k); the seam ratio (``train.metrics.tile_seam_ratio``: the mean |gradient| across tile
borders over that inside tiles), beside the truth's own (a scene's edges that happen to lie on tile borders
raise both).
"""

from __future__ import annotations

import functools
import hashlib
import os
from contextlib import contextmanager

import numpy as np

SCENE_KINDS = {"rooms": False, "fine structure": True}
VARIANTS = {"detail, no confidence": {"CONFIDENCE_K": 0.0}, "detail, OLS scale": {"FIT": "ols"},
            "detail, no drift removal": {"DRIFT_SIGMA": 0.0}}
SEP = " | "  # result keys: "KIND SCALE×" SEP "RUN"


@functools.lru_cache(maxsize=16)
def _scene(seed: int, size: tuple[int, int], fine: bool):
    from train.data.synthetic import render

    return render(seed, *size, texture="flat", fine=fine)


def filled_truth(s) -> np.ndarray:
    """A rendered scene's true depth ``[H,W]`` with its invalid pixels (and the unset ones, ≤ 1 mm) at its far
    plane: a whole map to resize, blur or send through a VAE."""
    mask = s.valid & (s.depth > 1e-3)
    return np.where(mask, s.depth, s.depth[mask].max())


def jumps(depth: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The neighbouring pixel pairs across a depth jump (> 5 %, both valid): masks ``[H,W-1]`` (column c: the
    step from c to c+1) and ``[H-1,W]``."""
    d = np.where(valid, depth, 0).astype(np.float64)
    jx = (np.abs(np.diff(d, axis=1)) > 0.05 * np.maximum(d[:, 1:], d[:, :-1])) & valid[:, 1:] & valid[:, :-1]
    jy = (np.abs(np.diff(d, axis=0)) > 0.05 * np.maximum(d[1:], d[:-1])) & valid[1:] & valid[:-1]
    return jx, jy


def edge_sharpness(aligned: np.ndarray, depth: np.ndarray, valid: np.ndarray) -> float:
    """Σ |step| of the aligned prediction across the true depth jumps ÷ Σ |step| of the truth there."""
    jx, jy = jumps(depth, valid)
    got = np.abs(np.diff(aligned, axis=1))[jx].sum() + np.abs(np.diff(aligned, axis=0))[jy].sum()
    want = np.abs(np.diff(depth.astype(np.float64), axis=1))[jx].sum() + \
        np.abs(np.diff(depth.astype(np.float64), axis=0))[jy].sum()
    return float(got / max(want, 1e-12))


@contextmanager
def _detail_options(**values):
    from marigold.core import tile_detail

    old = {k: getattr(tile_detail, k) for k in values}
    for k, v in values.items():
        setattr(tile_detail, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(tile_detail, k, v)


def _cached_predictor(model):
    """The model's tile predictor (what ``predict_tiled`` runs) with its answers kept by crop: every merge of a
    scene at one working resolution sees the same tiles and the same global pass."""
    from marigold.core.tiling import _model_predictor, _one_generator

    ens = dict(scale_invariant=model.scale_invariant, shift_invariant=model.shift_invariant)
    base = _model_predictor(model, dict(num_inference_steps=None, ensemble_size=1, resample_method_input="bilinear",
                                        batch_size=1, seed=_one_generator(0)), ens, False, None, None)
    cache: dict = {}

    def run(x, resolution):
        key = (hashlib.sha1(x.contiguous().numpy().tobytes()).hexdigest(), tuple(x.shape), resolution)
        if key not in cache:
            cache[key] = base(x, resolution)
        return cache[key]
    return run


def _score(p: np.ndarray, s, edges: np.ndarray, plan=None) -> dict:
    import torch

    from train.metrics import align, depth_metrics, tile_seam_ratio

    mask = s.valid & (s.depth > 1e-3)
    aligned = align(p, s.depth, mask)  # one scale and shift over the whole scene
    row = {"abs_rel": depth_metrics(aligned, s.depth, mask)["abs_rel"],
           "edge_abs_rel": depth_metrics(aligned, s.depth, mask & edges)["abs_rel"],
           "edge_sharpness": edge_sharpness(aligned, s.depth, mask)}
    if plan is not None:
        def at_work(m):  # [h,w] at the working size
            t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]  # [1,1,H,W]
            return torch.nn.functional.interpolate(t, size=plan.size, mode="bilinear", align_corners=False)[0, 0]
        row["seam_ratio"] = tile_seam_ratio(at_work(p), plan)
        row["seam_ratio_truth"] = tile_seam_ratio(at_work(filled_truth(s)), plan)
    return row


def tiles_row(model, n: int = 4, n8: int = 2, scales: tuple[int, ...] = (4, 8), variants: bool = True,
              log=None) -> dict:
    """{"KIND S×" + SEP + run: {abs_rel, edge_abs_rel, edge_sharpness[, seam_ratio, seam_ratio_truth]}} (means
    over the scenes) plus ``_setup``. ``n`` scenes per kind at 4×, ``n8`` at 8× (8× costs ~4× the tiles)."""
    import torch

    import marigold
    from bench.quality import HELDOUT, SIZE, _edges

    res = model.default_processing_resolution or max(SIZE)
    per: dict[str, list] = {}
    for scale in scales:
        big = (SIZE[0] * scale, SIZE[1] * scale)
        for kind, fine in SCENE_KINDS.items():
            group = f"{kind} {scale}×"
            for i in range(n if scale <= 4 else n8):
                s = _scene(HELDOUT + i, big, fine)
                x = torch.from_numpy(s.rgb).permute(2, 0, 1)[None]  # [1,3,H,W]
                edges = _edges(s.depth, s.valid)
                runs = {"one pass": (marigold.predict(model, x, seed=0).prediction[0, 0].numpy(), None)}
                factors = sorted({scale // 2, scale} - {1})  # the image's own resolution and half of it
                for f in factors:
                    predictor = _cached_predictor(model)
                    for merge in ("coalign", "detail"):
                        t = marigold.predict_tiled(model, x, tile_factor=f, seed=0, merge=merge, predictor=predictor)
                        runs[f"tiled {f}×, {merge}"] = (t.prediction[0, 0].numpy(), t.plans[0])
                    if variants and f == scale:
                        for name, opts in VARIANTS.items():
                            with _detail_options(**opts):
                                t = marigold.predict_tiled(model, x, tile_factor=f, seed=0, predictor=predictor)
                            runs[f"tiled {f}×, {name}"] = (t.prediction[0, 0].numpy(), t.plans[0])
                for name, (p, plan) in runs.items():
                    per.setdefault(group + SEP + name, []).append(_score(p, s, edges, plan))
                if log is not None:
                    log(f"  tiles {group} scene {i}: " + ", ".join(
                        f"{k}: edge {v[-1]['edge_abs_rel']:.3f}" for k, v in per.items() if k.startswith(group)))
    out = {name: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for name, rows in per.items()}
    return out | {"_setup": {"sizes": {f"{s}×": f"{SIZE[1] * s}×{SIZE[0] * s}" for s in scales}, "tile": res,
                             "scenes": {"4×": n, "8×": n8}}}


def _ms(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.3f} ± {a.std():.3f}" if len(a) > 1 else f"{a.mean():.3f}"


def markdown(per_seed: list[dict], name: str = "small") -> list[str]:
    """The tiles table (one row per scene group and run, mean ± std over the seeds)."""
    first = per_seed[0]
    setup = first.get("_setup", {})
    if not any(SEP in k for k in first):  # a run before the scene kinds: 4 rooms at 4×
        from bench.quality import _ms as ms4  # its 4 decimals, as that run's table had
        lines = ["", "Tiles (4 held-out scenes rendered at 4× the model's resolution); edge AbsRel = within 2 px of "
                 "a depth jump; seam ratio 1 = no seam:", "", "| model | run | AbsRel | edge AbsRel | seam ratio |",
                 "|---|---|---|---|---|"]
        for run in (k for k in first if not k.startswith("_")):
            vals = [s[run] for s in per_seed]
            seam = ms4([v["seam_ratio"] for v in vals]) if "seam_ratio" in vals[0] else "–"
            lines.append(f"| {name} | {run} | {ms4([v['abs_rel'] for v in vals])} | "
                         f"{ms4([v['edge_abs_rel'] for v in vals])} | {seam} |")
        return lines
    scenes = setup.get("scenes", {})
    lines = ["", f"Tiles: held-out scenes rendered at 4× ({scenes.get('4×', '?')} per kind) and 8× "
             f"({scenes.get('8×', '?')} per kind) the model's resolution, {setup.get('tile', '?')}-px tiles; rooms "
             "= the usual scenes, fine structure = the same rooms with thin poles, rails and small balls "
             "(bench/quality_tiles.py). One alignment per scene; edge AbsRel = within 2 px of a depth jump; edge "
             "sharpness = |depth step| across the true jumps ÷ the truth's (1 = as sharp); seam ratio 1 = no "
             "seam (the truth's own in brackets); ÷ = the run's mean over one pass's:", "",
             f"| scenes | run ({name} model) | AbsRel | edge AbsRel | edge sharpness | seam ratio | AbsRel ÷ | "
             "edge AbsRel ÷ |", "|---|---|---|---|---|---|---|---|"]
    for key in (k for k in first if SEP in k):
        group, run = key.split(SEP)
        vals = [s[key] for s in per_seed]
        base = [s[group + SEP + "one pass"] for s in per_seed]
        seam = (f"{_ms([v['seam_ratio'] for v in vals])} ({np.mean([v['seam_ratio_truth'] for v in vals]):.2f})"
                if "seam_ratio" in vals[0] else "–")
        ratio = lambda k: np.mean([v[k] for v in vals]) / np.mean([b[k] for b in base])  # noqa: E731
        lines.append(f"| {group} | {run} | {_ms([v['abs_rel'] for v in vals])} | "
                     f"{_ms([v['edge_abs_rel'] for v in vals])} | {_ms([v['edge_sharpness'] for v in vals])} | "
                     f"{seam} | {ratio('abs_rel'):.2f} | {ratio('edge_abs_rel'):.2f} |")
    return lines


def vae_round_trip(vae):
    """``f(depth [1,1,h,w]) → [1,1,h,w]``: the map through a checkpoint's VAE (its folder, or the loaded module)
    and back, as a model whose UNet were perfect would return it (normalised to Marigold's -1..1 per view, the 3
    channels averaged, then back to the map's own range)."""
    import torch

    if isinstance(vae, (str, os.PathLike)):
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(vae).eval()

    def rt(d):
        lo, hi = float(d.min()), float(d.max())
        x = ((d - lo) / max(hi - lo, 1e-12)).repeat(1, 3, 1, 1) * 2 - 1  # [1,3,h,w]
        with torch.no_grad():
            x = x.to(vae.device, vae.dtype)
            y = vae.decode(vae.encode(x).latent_dist.mode()).sample.float().cpu().mean(1, keepdim=True)  # [1,1,h,w]
        return (y + 1) / 2 * (hi - lo) + lo
    return rt


def sharpness_row(model, n: int = 32) -> dict:
    """How sharp the model is at its own resolution, against the most its VAE allows: on ``n`` held-out whole
    views at the native 96×128, edge AbsRel and edge sharpness of the model's one pass and of the true depth
    through the checkpoint's VAE round trip (:func:`vae_round_trip`: a perfect UNet's answer). A tile can only
    add what the model resolves at its own scale, so this gap bounds what tiles can buy."""
    import torch

    import marigold
    from bench.quality import HELDOUT, SIZE, _edges
    from train.metrics import align, depth_metrics

    rt = vae_round_trip(model.vae)
    rows: dict[str, list] = {"model": [], "VAE round trip": []}
    for i in range(n):
        s = _scene(HELDOUT + i, SIZE, False)
        mask = s.valid & (s.depth > 1e-3)
        edges = _edges(s.depth, s.valid)
        if not (mask & edges).any():
            continue
        x = torch.from_numpy(s.rgb).permute(2, 0, 1)[None]  # [1,3,H,W]
        runs = {"model": marigold.predict(model, x, seed=0).prediction[0, 0].numpy()}
        truth = torch.from_numpy(filled_truth(s).astype(np.float32))[None, None]  # [1,1,H,W]
        runs["VAE round trip"] = rt(truth)[0, 0].numpy()  # [1,1,H,W] → [H,W]
        for name, p in runs.items():
            a = align(p, s.depth, mask)
            rows[name].append({"edge_abs_rel": depth_metrics(a, s.depth, mask & edges)["abs_rel"],
                               "edge_sharpness": edge_sharpness(a, s.depth, mask)})
    return {name: {k: float(np.mean([r[k] for r in v])) for k in v[0]} for name, v in rows.items() if v}


def oracle_model(s, drift: float, rng: np.random.Generator, rt=None):
    """The oracle of :func:`oracle_row` for one rendered scene ``s``: (a stand-in model, the image to give
    ``predict_tiled`` (each pixel says where it lies, so a crop knows its place), the predictor, the one pass
    ``[1,1,H,W]``). ``rt``: a :func:`vae_round_trip` every pass goes through (None: exact)."""
    import types

    import torch
    import torch.nn.functional as F

    import marigold
    from bench.quality import SIZE

    rt = rt or (lambda d: d)
    truth = torch.from_numpy(filled_truth(s).astype(np.float32))[None, None]  # [1,1,H,W]
    span = float(truth.max() - truth.min())
    big = truth.shape[-2:]

    def oracle(crop, resolution):
        if resolution:  # the global pass, at the model's size
            return rt(F.interpolate(truth, size=SIZE, mode="area")), None
        th, tw = crop.shape[-2:]
        y0, x0 = round(float(crop[0, 0, 0, 0]) * (big[0] - 1)), round(float(crop[0, 1, 0, 0]) * (big[1] - 1))
        v, u = torch.meshgrid(torch.linspace(-1, 1, th), torch.linspace(-1, 1, tw), indexing="ij")
        a, b, c = rng.uniform(-1, 1, 3)
        d = truth[..., y0:y0 + th, x0:x0 + tw] + drift * span * (a * u * u + b * v * v + c * u * v)  # [1,1,th,tw]
        return rng.uniform(0.5, 2.0) * rt(d) + rng.uniform(-1, 1), None

    model = types.SimpleNamespace(task="depth", modality=marigold.modality.get("depth"),
                                  default_processing_resolution=max(SIZE), default_denoising_steps=1,
                                  scale_invariant=True, shift_invariant=True, target_names=["depth"])
    yy, xx = torch.meshgrid(torch.linspace(0, 1, big[0]), torch.linspace(0, 1, big[1]), indexing="ij")
    coords = torch.stack([yy, xx, torch.full_like(xx, 0.5)])[None]  # [1,3,H,W]
    one = F.interpolate(oracle(None, 1)[0], size=tuple(big), mode="bilinear")  # [1,1,H,W]
    return model, coords, oracle, one


def oracle_row(n: int = 4, scales: tuple[int, ...] = (4,), drift: float = 0.1, vae: str | None = None) -> dict:
    """The same scenes and scores with an oracle in place of the model (no training, seconds): the global pass
    is the true depth area-averaged to the model's resolution (a model perfect at its own size), a tile the true
    depth of its crop bent by a random quadratic of ``drift`` × the scene's depth range over the tile, then given a
    random scale and shift (tests/test_tile_detail.py's oracle). What each merge can do when the tiles' detail is
    right and their shape is not. ``vae``: a checkpoint's VAE folder; every pass (the global one and each tile)
    then goes through its round trip (:func:`vae_round_trip`): a model whose UNet is perfect and whose VAE is
    that one, the ceiling of a trained model on it."""
    import marigold
    from bench.quality import HELDOUT, SIZE, _edges

    rt = vae_round_trip(vae) if vae else None

    per: dict[str, list] = {}
    for scale in scales:
        big = (SIZE[0] * scale, SIZE[1] * scale)
        for kind, fine in SCENE_KINDS.items():
            for i in range(n):
                s = _scene(HELDOUT + i, big, fine)
                edges = _edges(s.depth, s.valid)
                model, coords, oracle, one = oracle_model(s, drift, np.random.default_rng(i), rt)
                runs = {"one pass": (one[0, 0].numpy(), None)}  # perfect at the model's size
                for merge in ("coalign", "detail"):
                    t = marigold.predict_tiled(model, coords, tile_factor=scale, merge=merge, predictor=oracle)
                    runs[f"tiled {scale}×, {merge}"] = (t.prediction[0, 0].numpy(), t.plans[0])
                for name, (p, plan) in runs.items():
                    per.setdefault(f"{kind} {scale}×{SEP}{name}", []).append(_score(p, s, edges, plan))
    out = {name: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} for name, rows in per.items()}
    return out | {"_setup": {"scenes": {"4×": n, "8×": n}, "tile": max(SIZE), "drift": drift, "vae": vae}}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.quality_tiles [--n 4] [--drift 0.1] [--scale 4]``: the oracle tiles table (no model)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.quality_tiles", description=oracle_row.__doc__)
    ap.add_argument("--n", type=int, default=None, help="scenes per kind (default 4); --sharpness: views (default 32)")
    ap.add_argument("--drift", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--vae", help="a checkpoint's VAE folder: every pass through its round trip (a perfect UNet)")
    ap.add_argument("--sharpness", metavar="CHECKPOINT", help="instead: the model's edges at its own resolution "
                    "against its VAE's round trip of the truth (sharpness_row)")
    a = ap.parse_args(argv)
    if a.sharpness:
        import marigold

        row = sharpness_row(marigold.load(a.sharpness, device="cpu", dtype="fp32"), a.n or 32)
        print("| run | edge AbsRel | edge sharpness |\n|---|---|---|")
        for name, v in row.items():
            print(f"| {name} | {v['edge_abs_rel']:.3f} | {v['edge_sharpness']:.3f} |")
        return 0
    for drift in a.drift:
        print(f"\nOracle tiles, drift {drift} × the scene's depth range" + (f", through {a.vae}:" if a.vae else ":"))
        print("\n".join(markdown([oracle_row(a.n or 4, (a.scale,), drift, a.vae)], "oracle")[3:]), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
