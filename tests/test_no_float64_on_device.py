"""No float64 on the model's device, anywhere (issue 22): Apple's MPS has no float64, and a consumer GPU runs it
at 1/32 to 1/64 of float32 speed.

THE RULE, for every path that runs on the model's device (image, ensembling, video, tiling, stereo, 3D): tensors
on a device other than the CPU are float32, float16, bfloat16, integer or bool, never float64 (nor complex128).
Where float64 matters for accuracy (a solver's few unknowns, E×E moments, a weight transform done once), move
the small tensor to the CPU first and cast there: ``x.to("cpu").double()``, and back with
``y.float().to(device)`` (cast, then move: a cast fused into the move may run on the device).

No Mac is here, so the paths run on the "meta" device (shapes and dtypes, no data) under a dispatch mode that
fails on any float64 tensor that is not on the CPU. Where the code reads a value back (``.item()``, a copy to
the CPU), the mode makes one up (0.5, True, uniform noise), which is all a dtype check needs. A new path that
runs on the model's device belongs in this file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import marigold

BANNED = (torch.float64, torch.complex128)
aten = torch.ops.aten


class NoFloat64OnDevice(TorchDispatchMode):
    """Fails on any op with a float64 tensor off the CPU among its inputs or outputs; makes up the values that
    meta tensors cannot give."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    @staticmethod
    def _offenders(tree) -> list[str]:
        return [f"{t.dtype} on {t.device}" for t in tree_flatten(tree)[0]
                if isinstance(t, torch.Tensor) and t.device.type != "cpu" and t.dtype in BANNED]

    @staticmethod
    def _made_up(t):
        if not (isinstance(t, torch.Tensor) and t.is_meta):
            return t
        if t.dtype == torch.bool:
            return torch.ones(t.shape, dtype=torch.bool)
        if not t.dtype.is_floating_point:
            return torch.zeros(t.shape, dtype=t.dtype)
        return torch.rand(t.shape).to(t.dtype)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        bad = self._offenders((args, kwargs))
        if not bad and func is aten._local_scalar_dense.default and args[0].is_meta:
            x = args[0]  # .item() / bool() / float() of a meta tensor: a stand-in value
            return True if x.dtype == torch.bool else (1 if not x.dtype.is_floating_point else 0.5)
        if not bad and func.overloadpacket in (aten._to_copy, aten.to, aten.copy_):
            src = args[1] if func is aten.copy_.default else args[0]
            dev = kwargs.get("device") or next((a for a in args[1:] if isinstance(a, (str, torch.device))), None)
            dst_cpu = (args[0].device.type == "cpu" if func is aten.copy_.default
                       else torch.device(dev or src.device).type == "cpu")
            if src.is_meta and dst_cpu:  # meta → CPU: noise of the right shape and dtype
                dt = kwargs.get("dtype") or next((a for a in args[1:] if isinstance(a, torch.dtype)), None)
                made = torch.rand(src.shape, dtype=torch.float32).to(
                    dt or (args[0].dtype if func is aten.copy_.default else src.dtype))
                if func is aten.copy_.default:
                    with torch.utils._python_dispatch._disable_current_modes():
                        return args[0].copy_(made)
                return made
        try:
            out = func(*args, **kwargs)
        except (RuntimeError, NotImplementedError) as e:
            # an op that needs the data (unique, nonzero, a 0-d tensor used as an index) runs on made-up CPU
            # values, and its outputs stay there: the sizes and indices read from them later are consistent
            if "meta" not in str(e).lower():
                raise
            args, kwargs = torch.utils._pytree.tree_map(self._made_up, (args, kwargs))
            out = func(*args, **kwargs)
        bad = bad or self._offenders(out)
        if bad:
            raise AssertionError(f"{func} has a tensor of {bad[0]}: float64 must stay on the CPU (see the "
                                 f"rule at the top of {__name__}.py)")
        return out


@pytest.fixture
def no_float64():
    mode = NoFloat64OnDevice()
    with mode:
        yield mode
    assert mode.ops > 100, "the mode saw no device work: the path did not run under it"


def _meta(model):
    return model.to("meta", dtype=torch.float32)


def test_the_mode_catches_a_float64_on_the_device():
    with pytest.raises(AssertionError, match="float64"), NoFloat64OnDevice():
        torch.ones(3, device="meta").double()
    with NoFloat64OnDevice():
        torch.ones(3).double().sum().float().to("meta")  # on the CPU, then moved as float32: allowed


def test_image_with_ensembling(depth_checkpoint, no_float64):
    model = _meta(marigold.load(depth_checkpoint, device="cpu", progress=False))
    out = marigold.predict(model, torch.rand(3, 40, 56), ensemble_size=3, num_inference_steps=1,
                           processing_resolution=32, seed=0, output_uncertainty=True)
    assert out.prediction.shape[-2:] == (40, 56)


def _clip(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 24, 32, generator=g)  # [T,3,H,W]


def test_video_rollingdepth(make_checkpoint, no_float64):
    model = _meta(marigold.load(make_checkpoint("rollingdepth"), device="cpu", dtype="fp32", progress=False))
    pred = marigold.predict_video(model, _clip(6), dilations=[1, 2], processing_resolution=32, seed=0,
                                  refine_steps=1)
    assert pred.depth.shape == (6, 1, 24, 32)


def test_video_marigold_mode(depth_checkpoint, no_float64):
    model = _meta(marigold.load(depth_checkpoint, device="cpu", progress=False))
    pred = marigold.predict_video(model, list(_clip(5)), processing_resolution=32, seed=0)
    assert pred.depth.shape == (5, 1, 24, 32)


def test_relief_and_mesh_from_a_device_depth(no_float64):
    depth = torch.rand(1, 1, 24, 32, device="meta")  # [1,1,H,W] as a node hands it over from the model's device
    image = torch.rand(1, 3, 24, 32, device="meta")
    assert len(marigold.relief(depth, image, resolution_px=32).faces) > 0
    assert len(marigold.depth_to_mesh(depth, image).vertices) > 0
    assert len(marigold.depth_to_points(depth, image).vertices) > 0
    assert marigold.depth_to_normals(depth).shape[1] == 3
    no_float64.ops += 100  # these are short on purpose
