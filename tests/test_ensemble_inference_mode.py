"""Ensembling works under torch.inference_mode(), as ComfyUI runs every node, with inference tensors as input."""

import pytest
import torch

from marigold import ensemble_depth


def test_ensemble_depth_aligns_inference_tensors_under_inference_mode():
    base = torch.rand(1, 1, 16, 16)
    with torch.inference_mode():
        members = torch.cat([base * 0.5 + 0.2, base * 0.8, base])  # [3,1,16,16], inference tensors
        depth, unc = ensemble_depth(members, output_uncertainty=True)
    plain, _ = ensemble_depth(members.clone(), output_uncertainty=True)
    assert depth.shape == (1, 1, 16, 16) and unc.shape == (1, 1, 16, 16)
    assert torch.allclose(depth, plain)


def test_model_loaded_and_run_under_inference_mode_gives_the_same_depth(depth_checkpoint):
    """ComfyUI loads and runs nodes under inference mode: weights become inference tensors (no version counter),
    which the fast sub-pixel upsampling's weight cache must handle."""
    import marigold

    image = torch.rand(1, 3, 40, 56)
    ref = marigold.predict(marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False), image,
                           num_inference_steps=2, processing_resolution=64, seed=3).prediction
    with torch.inference_mode():
        model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
        # parameters created under inference mode (as a loader running on ComfyUI's thread makes them): new
        # Parameter objects around inference tensors, which have no version counter
        torch.__future__.set_overwrite_module_params_on_conversion(True)
        try:
            for part in (model.unet, model.vae):
                part._apply(lambda t: t.clone(memory_format=torch.preserve_format))
        finally:
            torch.__future__.set_overwrite_module_params_on_conversion(False)
        weight = next(model.vae.parameters())
        assert weight.is_inference()
        with pytest.raises(RuntimeError, match="version counter"):
            weight._version
        first = marigold.predict(model, image, num_inference_steps=2, processing_resolution=64, seed=3).prediction
        again = marigold.predict(model, image, num_inference_steps=2, processing_resolution=64, seed=3).prediction
    torch.testing.assert_close(first, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(again, first, atol=0, rtol=0)
