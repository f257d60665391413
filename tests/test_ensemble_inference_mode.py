"""Ensembling works under torch.inference_mode(), as ComfyUI runs every node, with inference tensors as input."""

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
