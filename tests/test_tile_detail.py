"""The detail merge (marigold.core.tile_detail, predict_tiled's default): oracle tiles whose coarse shape drifts
while their detail is exact; the global pass exact but coarse. The merge must drop the drift and keep the detail."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import marigold
from marigold.core import tile_detail, tiling
from marigold.errors import InputError
from train.metrics import tile_seam_ratio

TILE = 64  # the processing resolution (tile size) the oracles run at
H, W = 200, 280  # the working canvas: 4 × 6 tiles of 64 px, 16 px overlap; the global pass is 45 × 64


def fake_model(task: str = "depth") -> SimpleNamespace:
    m = marigold.modality.get(task)
    return SimpleNamespace(task=m.task, modality=m, default_processing_resolution=TILE, default_denoising_steps=1,
                           scale_invariant=True, shift_invariant=True, target_names=m.target_names)


def coord_image(h: int, w: int) -> torch.Tensor:
    """R = row, G = column (0..1): a crop says where it lies; [1,3,H,W]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([y, x, torch.full_like(x, 0.5)])[None]


def detailed_depth(h: int = H, w: int = W) -> torch.Tensor:
    """A slanted, bumpy room [H,W] (about 1..3) with boxes standing out (depth steps of 6-20 px) and three
    3-px poles: detail the 45 × 64 global pass cannot resolve."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    d = 1.5 + 0.8 * y + 0.3 * torch.sin(9 * x) * torch.cos(7 * y)
    g = torch.Generator().manual_seed(3)
    for _ in range(12):
        y0, x0 = (int(torch.randint(0, n - 20, (1,), generator=g)) for n in (h, w))
        hh, ww = (int(torch.randint(6, 20, (1,), generator=g)) for _ in range(2))
        d[y0:y0 + hh, x0:x0 + ww] -= 0.4
    for x0 in (40, 111, 205):
        d[20:180, x0:x0 + 3] = 1.2
    return d.float()


class DriftOracle:
    """The global pass: the truth area-averaged to the processing size (exact but coarse). A tile: the exact
    crop plus a smooth non-affine drift over the tile (``amp`` × a random quadratic of the tile's own
    coordinates: what a model seeing a narrow field of view does), then a random scale and shift. ``bad``: the
    tile (0-based) that also hallucinates a bump of ``bump`` that is not in the scene."""

    def __init__(self, truth: torch.Tensor, amp: float = 0.3, bad: int | None = None, bump: float = 0.6):
        self.truth = truth if truth.ndim == 4 else truth[None, None]  # [1,C,H,W]
        self.amp, self.bad, self.bump = amp, bad, bump
        self.rng = np.random.default_rng(0)
        self.tile = -1  # -1: the global pass

    def __call__(self, crop: torch.Tensor, resolution: int):
        if resolution:
            h, w = crop.shape[-2:]
            m = max(h, w)
            return F.interpolate(self.truth, size=(h * resolution // m, w * resolution // m), mode="area"), None
        self.tile += 1
        hh, ww = self.truth.shape[-2:]
        y0, x0 = round(float(crop[0, 0, 0, 0]) * (hh - 1)), round(float(crop[0, 1, 0, 0]) * (ww - 1))
        th, tw = crop.shape[-2:]
        d = self.truth[..., y0:y0 + th, x0:x0 + tw].clone()  # [1,C,th,tw]
        v, u = torch.meshgrid(torch.linspace(-1, 1, th), torch.linspace(-1, 1, tw), indexing="ij")
        a, b, c = self.rng.uniform(-1, 1, 3)
        d = d + self.amp * (a * u * u + b * v * v + c * u * v)
        if self.tile == self.bad:
            d = d + self.bump * torch.exp(-((u - 0.1) ** 2 + (v + 0.2) ** 2) / 0.05)
        if self.truth.shape[1] == 1:  # depth is affine-invariant: each tile its own scale and shift
            s, t = self.rng.uniform(0.5, 2.0), self.rng.uniform(-1.0, 1.0)
            d = s * d + t
        return d, None


def fitted(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` [H,W] after one least-squares scale and shift onto ``gt``."""
    a = torch.stack([pred.flatten().double(), torch.ones(pred.numel(), dtype=torch.float64)], 1)
    st = torch.linalg.lstsq(a, gt.flatten().double()[:, None]).solution
    return (a @ st).reshape(gt.shape).float()


def abs_rel(pred: torch.Tensor, gt: torch.Tensor, box=None) -> float:
    err = (fitted(pred, gt) - gt).abs() / gt  # [H,W]
    if box is not None:
        y0, x0, y1, x1 = box
        err = err[y0:y1, x0:x1]
    return float(err.mean())


def one_pass(truth: torch.Tensor) -> torch.Tensor:
    """What one pass gives: the global pass (the oracle's) upsampled bilinearly."""
    g = F.interpolate(truth[None, None] if truth.ndim == 2 else truth, size=(H * TILE // W, TILE), mode="area")
    return F.interpolate(g, size=truth.shape[-2:], mode="bilinear")


def run(oracle, task: str = "depth", truth_size=(H, W), **kw):
    return tiling.predict_tiled(fake_model(task), coord_image(*truth_size), tile_resolution=max(truth_size),
                                tile_overlap=16, predictor=oracle, **kw)


def test_detail_merge_drops_the_drift_and_keeps_the_detail():
    d = detailed_depth()
    base = abs_rel(one_pass(d)[0, 0], d)
    detail = run(DriftOracle(d))
    coalign = run(DriftOracle(d), merge="coalign")
    e_detail, e_coalign = abs_rel(detail.prediction[0, 0], d), abs_rel(coalign.prediction[0, 0], d)
    # tiles kept whole carry their drift (worse than one pass); their detail alone beats one pass
    assert e_coalign > base and e_detail < 0.85 * base and e_detail < 0.6 * e_coalign, (e_detail, base, e_coalign)
    # no seam beyond the scene's own (its poles and boxes cross some tile borders: the truth's ratio is 2.35)
    plan = detail.plans[0]
    assert tile_seam_ratio(detail.prediction[0, 0], plan) <= 1.1 * tile_seam_ratio(d, plan)
    # the poles' edges: the step across them is the truth's, where the upsampled pass smears it
    p, q = fitted(detail.prediction[0, 0], d), fitted(one_pass(d)[0, 0], d)
    step = lambda m: float((m[30:170, 42] - m[30:170, 43]).abs().mean() + (m[30:170, 39] - m[30:170, 40]).abs().mean())
    assert step(p) > 0.6 * step(d) and step(q) < 0.3 * step(d), (step(p), step(q), step(d))
    # without drift the tiles' detail is recovered almost exactly, the thin poles too (the confidence does not take
    # a thing the pass resolves only faintly for a disagreement)
    exact = run(DriftOracle(d, amp=0.0))
    assert abs_rel(exact.prediction[0, 0], d) < 0.15 * base
    assert step(fitted(exact.prediction[0, 0], d)) > 0.9 * step(d)
    scales = detail.scales[0]
    assert scales.shape == (detail.plans[0].count,) and detail.replaced == [[]]


def test_without_the_fit_each_tile_brings_its_detail_at_its_own_scale(monkeypatch):
    d = detailed_depth()
    good = abs_rel(run(DriftOracle(d, amp=0.0)).prediction[0, 0], d)
    monkeypatch.setattr(tile_detail, "_fit", lambda t, g: (1.0, 0.0, False))
    assert abs_rel(run(DriftOracle(d, amp=0.0)).prediction[0, 0], d) > 2 * good


@pytest.mark.parametrize("fit", ["ols", "rma", "inverse"])
def test_the_fit_under_drift(monkeypatch, fit):
    """A tile's drift shrinks a least-squares scale (its detail comes out too faint); the default slope ("rma")
    keeps most of it. At the oracle's strongest drift: the 3-px poles' steps ÷ the truth's."""
    d = detailed_depth()
    default = tile_detail.FIT
    monkeypatch.setattr(tile_detail, "FIT", fit)
    p = fitted(run(DriftOracle(d, amp=0.6)).prediction[0, 0], d)
    step = lambda m: float((m[30:170, 42] - m[30:170, 43]).abs().mean())  # noqa: E731
    ratio = step(p) / step(d)
    assert (ratio < 0.45) if fit == "ols" else (ratio > 0.55), ratio
    if fit == default:  # and the default still beats one pass there
        assert abs_rel(p, d) < abs_rel(one_pass(d)[0, 0], d)


def test_confidence_drops_a_tile_whose_shape_departs_from_the_pass(monkeypatch):
    d = detailed_depth()
    box = list(tiling.plan_tiles((H, W), TILE, 16).boxes())[7]
    trusted = run(DriftOracle(d, amp=0.0, bad=7))
    monkeypatch.setattr(tile_detail, "CONFIDENCE_K", 0.0)  # every tile trusted
    blind = run(DriftOracle(d, amp=0.0, bad=7))
    e_trusted, e_blind = abs_rel(trusted.prediction[0, 0], d, box), abs_rel(blind.prediction[0, 0], d, box)
    assert e_trusted < 0.6 * e_blind, (e_trusted, e_blind)
    assert e_trusted < abs_rel(one_pass(d)[0, 0], d, box)  # and the tile's true detail is still used there


def test_flat_and_inverted_tiles_leave_the_pass_alone():
    d = detailed_depth()
    oracle = DriftOracle(d, amp=0.0)
    plain = oracle.__call__

    def flipped(crop, resolution):  # tile 2 comes back upside down
        p, u = plain(crop, resolution)
        return (-p if oracle.tile == 2 and not resolution else p), u

    out = run(flipped)
    assert out.replaced == [[2]]
    box = list(out.plans[0].boxes())[2]
    assert abs_rel(out.prediction[0, 0], d, box) < 1.2 * abs_rel(one_pass(d)[0, 0], d, box)
    flat = run(lambda crop, r: (torch.full((1, 1, *crop.shape[-2:]), 0.5), None) if not r else plain(crop, r))
    assert flat.replaced == [list(range(flat.plans[0].count))]
    assert torch.allclose(flat.prediction, (lambda g: (g - g.min()) / (g.max() - g.min()))(one_pass(d)), atol=1e-4)


def bumpy_normals(h: int = H, w: int = W) -> torch.Tensor:
    """Unit normals [1,3,H,W] of a gently curved surface with small dents (the detail)."""
    d = detailed_depth(h, w)
    gy, gx = torch.gradient(d * 20)
    n = torch.stack([-gx, gy, torch.ones_like(d)])[None]
    return n / n.norm(dim=1, keepdim=True)


def angle(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.rad2deg(torch.acos((a * b).sum(1).clamp(-1, 1))).mean())


def test_normals_take_the_tiles_detail_and_stay_unit():
    n = bumpy_normals()
    out = run(DriftOracle(n, amp=0.15), task="normals")
    p = out.prediction
    assert p.shape == (1, 3, H, W) and torch.allclose(p.norm(dim=1), torch.ones(1, H, W), atol=1e-4)
    coarse = marigold.modality.get("normals").renormalize(one_pass(n))
    blended = run(DriftOracle(n, amp=0.15), task="normals", merge="coalign").prediction
    assert angle(p, n) < 0.7 * angle(coarse, n) and angle(p, n) < angle(blended, n), \
        (angle(p, n), angle(coarse, n), angle(blended, n))


def test_intrinsics_split_without_a_fit_and_stay_in_range():
    d = detailed_depth()
    albedo = ((d - 1.0) / 2.0).clamp(0, 1)  # 0..1, with the same sharp edges
    truth = torch.cat([albedo[None, None].expand(1, 3, H, W), (1 - albedo)[None, None].expand(1, 3, H, W)], 1)
    out = run(DriftOracle(truth, amp=0.05), task="iid-appearance").prediction  # [1,6,H,W]
    assert out.shape == (1, 6, H, W) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    err = float((out - truth).abs().mean())
    assert err < 0.8 * float((one_pass(truth) - truth).abs().mean())


def test_unknown_merge_and_tile_split_are_refused():
    with pytest.raises(InputError, match="merge"):
        run(DriftOracle(detailed_depth()), merge="average")
    assert [marigold.modality.get(m).tile_split_kind for m in ("depth", "disparity", "normals", "iid-lighting")] \
        == ["affine", "affine", "unit", "plain"]
    bad = dataclasses.replace(marigold.modality.get("depth"), name="depth-bad-split", tile_split="median")
    with pytest.raises(InputError, match="tile_split"):
        marigold.modality.register(bad)


@pytest.mark.parametrize("name", ["normals", "iid-lighting"])
def test_a_tiny_checkpoint_of_each_kind_tiles_through_the_detail_merge(make_checkpoint, name):
    """The real sampler on tiny random checkpoints: the detail merge's shapes, unit normals, intrinsics in range."""
    model = marigold.load(make_checkpoint(name), device="cpu", dtype="fp32")
    photo = torch.rand(1, 3, 60, 80, generator=torch.Generator().manual_seed(1))
    out = tiling.predict_tiled(model, photo, processing_resolution=32, tile_resolution=80, tile_overlap=8,
                               num_inference_steps=1, seed=0)
    p = out.prediction
    assert out.plans[0].count > 1 and out.merge == "detail" and p.shape == (1, model.modality.channels, 60, 80)
    assert torch.isfinite(p).all()
    if name == "normals":
        assert torch.allclose(p.norm(dim=1), torch.ones(1, 60, 80), atol=1e-4)
    else:
        assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0
