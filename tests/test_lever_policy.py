"""The speed-ups choose themselves by device (marigold/core/devices.py's POLICY, issue #23): a device the policy gives
no lever runs diffusers' modules as they are, bit for bit."""

import numpy as np
import torch

import marigold
from marigold.core import devices, fast, winograd


def test_policy_names_every_lever_for_the_cpu_and_none_for_gpus():
    assert all(fast.enabled(lever, "cpu") for lever in fast.LEVERS)
    assert not any(fast.enabled(lever, dev) for lever in fast.LEVERS for dev in ("cuda", "cuda:1", "mps"))


def test_a_device_without_levers_runs_diffusers_modules_exactly(depth_checkpoint, monkeypatch):
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    plain = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", optimize=False)
    want = marigold.predict(plain, rgb, seed=0, processing_resolution=64).prediction
    # the CPU treated as a device the policy gives nothing: loaded with optimize=True, every patched forward
    # must step aside (checked per call) and the weights keep diffusers' layout
    monkeypatch.setitem(fast.POLICY, "cpu", frozenset())
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    conv = next(m for m in model.vae.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous()
    got = marigold.predict(model, rgb, seed=0, processing_resolution=64).prediction
    assert torch.equal(got, want)
    # and with the levers back (the same loaded model), the answer moves by float rounding only
    monkeypatch.setitem(fast.POLICY, "cpu", frozenset(fast.LEVERS))
    again = marigold.predict(model, rgb, seed=0, processing_resolution=64).prediction
    assert (again - want).abs().max() < 1e-4


def test_policy_lives_in_devices_and_patches_undo_themselves(depth_checkpoint):
    assert fast.POLICY is devices.POLICY and fast.enabled is devices.enabled  # one policy, re-exported
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    plain = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", optimize=False)
    want = marigold.predict(plain, rgb, seed=0, processing_resolution=64).prediction
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    wide = torch.nn.Conv2d(256, 256, 3, padding=1)  # tiny models have no conv wide enough for Winograd
    model.vae.add_module("wide_probe", wide)
    assert winograd.patch_module(model.vae) == 1
    patched = sum(fast.unpatch_module(part) for part in (model.unet, model.vae))
    assert patched > 0 and winograd.unpatch_module(model.vae) == 1
    assert not any("forward" in m.__dict__ or getattr(m, "_marigold_fast", False)
                   for part in (model.unet, model.vae) for m in part.modules())
    del model.vae.wide_probe
    for part in (model.unet, model.vae):
        part.to(memory_format=torch.contiguous_format)
    got = marigold.predict(model, rgb, seed=0, processing_resolution=64).prediction
    assert torch.equal(got, want)  # diffusers' modules again, bit for bit
