"""Parity with diffusers' Marigold pipelines on identical weights and noise: our proof of correctness.

fp32, max abs difference < 1e-4, for depth (DDIM trailing and LCM; 1 and 4 steps; native resolution and a
downscale; an odd-sized image), the pre-ensemble members at ensemble 5, normals, and intrinsics.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import MarigoldDepthPipeline, MarigoldIntrinsicsPipeline, MarigoldNormalsPipeline

import marigold
from marigold.compat import diffusers_dtype_kwarg

TOL = 1e-4
PIPELINES = {"depth": MarigoldDepthPipeline, "normals": MarigoldNormalsPipeline,
             "intrinsics": MarigoldIntrinsicsPipeline}


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 37, 53, generator=g)  # odd size on both sides: padding and resizing matter


_cache: dict = {}


def _pair(path):
    if path not in _cache:
        ours = marigold.load(path, device="cpu", dtype="fp32", progress=False)
        ref = PIPELINES[ours.task].from_pretrained(str(path), **{diffusers_dtype_kwarg(): torch.float32})
        ref.set_progress_bar_config(disable=True)
        _cache[path] = (ours, ref)
    return _cache[path]


@pytest.mark.parametrize("name", ["depth", "lcm", "depth-leading"])
@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("resolution", [0, 32])
def test_depth_matches_diffusers(make_checkpoint, image, name, steps, resolution):
    ours, ref = _pair(make_checkpoint(name))
    expected = ref(image, num_inference_steps=steps, processing_resolution=resolution, output_type="pt",
                   generator=torch.Generator().manual_seed(7)).prediction  # [1,1,H,W]
    got = marigold.predict_depth(ours, image, num_inference_steps=steps, processing_resolution=resolution,
                                 seed=7).prediction
    assert got.shape == expected.shape == (1, 1, 37, 53)
    assert (got - expected).abs().max().item() < TOL


@pytest.mark.parametrize("name,steps,batch", [("depth", 1, 2), ("lcm", 4, 3), ("depth", 4, 5)])
def test_ensemble_members_match_diffusers(make_checkpoint, image, monkeypatch, name, steps, batch):
    """With ensemble 5 the members entering the ensembling step are the same (LCM draws noise inside its
    steps too, so this also checks that the generator is consumed in diffusers' order)."""
    ours, ref = _pair(make_checkpoint(name))
    captured = []

    def spy(depth, *args, **kwargs):
        captured.append(depth.clone())
        return depth[:1], None

    monkeypatch.setattr(MarigoldDepthPipeline, "ensemble_depth", staticmethod(spy))
    two = torch.cat([image, image.flip(-1)])  # two images: batches straddle the image boundary
    ref(two, num_inference_steps=steps, ensemble_size=5, processing_resolution=48, batch_size=batch,
        output_type="pt", generator=torch.Generator().manual_seed(11))
    members = list(marigold.iter_members(ours, two, num_inference_steps=steps, ensemble_size=5,
                                         processing_resolution=48, batch_size=batch, seed=11))
    assert [m.index for m in members] == [0, 1]
    for m, expected in zip(members, captured):
        assert m.values.shape == expected.shape == (5, 1, 33, 48)
        assert (m.values - expected).abs().max().item() < TOL


@pytest.mark.parametrize("steps,ensemble,resolution", [(1, 1, 0), (4, 1, 32), (2, 3, 0)])
def test_normals_match_diffusers(make_checkpoint, image, steps, ensemble, resolution):
    ours, ref = _pair(make_checkpoint("normals"))
    expected = ref(image, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=resolution,
                   output_type="pt", generator=torch.Generator().manual_seed(5),
                   output_uncertainty=ensemble > 1)
    got = marigold.predict_normals(ours, image, num_inference_steps=steps, ensemble_size=ensemble,
                                   processing_resolution=resolution, seed=5, output_uncertainty=ensemble > 1)
    assert got.prediction.shape == expected.prediction.shape == (1, 3, 37, 53)
    assert (got.prediction - expected.prediction).abs().max().item() < TOL
    if ensemble > 1:
        assert (got.uncertainty - expected.uncertainty).abs().max().item() < TOL


@pytest.mark.parametrize("name", ["iid-appearance", "iid-lighting"])
def test_intrinsics_match_diffusers(make_checkpoint, image, name):
    ours, ref = _pair(make_checkpoint(name))
    expected = ref(image, num_inference_steps=2, ensemble_size=3, processing_resolution=0, output_type="pt",
                   generator=torch.Generator().manual_seed(2), batch_size=2).prediction  # [N·T,3,H,W]
    got = marigold.predict_intrinsics(ours, image, num_inference_steps=2, ensemble_size=3, processing_resolution=0,
                                      seed=2, batch_size=2).prediction  # [N,T·3,H,W]
    t = len(ours.target_names)
    assert got.shape == (1, 3 * t, 37, 53)
    assert (got.reshape(t, 3, 37, 53) - expected).abs().max().item() < TOL


def test_bf16_matches_diffusers_bf16_and_resizes_on_cpu(depth_checkpoint, image):
    """At native resolution diffusers runs in bf16 too: same answer within bf16's tolerance. With a resize,
    diffusers crashes on the CPU in bf16 ("compute_index_ranges_weights" not implemented); we resize in fp32."""
    ours = marigold.load(depth_checkpoint, device="cpu", dtype="bf16", progress=False)
    assert ours.dtype == torch.bfloat16
    ref = MarigoldDepthPipeline.from_pretrained(str(depth_checkpoint), **{diffusers_dtype_kwarg(): torch.bfloat16})
    ref.set_progress_bar_config(disable=True)
    expected = ref(image, processing_resolution=0, output_type="pt",
                   generator=torch.Generator().manual_seed(0)).prediction.float()
    got = marigold.predict_depth(ours, image, processing_resolution=0, seed=0).prediction
    assert got.dtype == torch.float32
    diff = (got - expected).abs()
    # bf16 steps are 1/256 near 0.5; we cast an fp32 empty-text embedding where diffusers computes it in bf16
    assert diff.mean().item() < 1 / 256 and diff.max().item() < 0.08
    resized = marigold.predict_depth(ours, image, processing_resolution=24, seed=0).prediction
    assert resized.shape == (1, 1, 37, 53) and torch.isfinite(resized).all()
