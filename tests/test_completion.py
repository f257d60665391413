"""Depth completion (Marigold-DC) and the metric fit: parity with a plain loop, bad input, the one-second fit.

The parity loop below is written from the method's published recipe (prs-eth/Marigold-DC ``marigold_dc.py`` and
the paper, arXiv 2412.13389, Eq. 1-2) on diffusers' own pipeline parts (its image processor, latents, decoder),
not on ours: the same tiny checkpoint and noise must give the same metric depth to < 1e-4 in fp32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, MarigoldDepthPipeline

import marigold
from marigold.compat import diffusers_dtype_kwarg
from marigold.core.completion import complete
from marigold.core.metric import fit_metric, metric_errors, parse_points, sparse_depth
from marigold.errors import Cancelled, InputError

TOL = 1e-4


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))  # odd: padding and resizing matter


@pytest.fixture(scope="module")
def sparse() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    z = torch.zeros(37, 53)
    idx = torch.randperm(37 * 53, generator=g)[:60]
    z.view(-1)[idx] = 1.0 + 4.0 * torch.rand(60, generator=g)  # metres
    return z  # [H,W], 0 = unmeasured


def reference_loop(pipe: MarigoldDepthPipeline, image: torch.Tensor, sparse: torch.Tensor, steps: int,
                   res: int, ensemble: int, noise: torch.Tensor) -> torch.Tensor:
    """Marigold-DC as published, on diffusers' parts (see the module docstring). → metric depth [1,1,H,W]."""
    sched = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    sched.set_timesteps(steps)
    x, padding, size = pipe.image_processor.preprocess(image, processing_resolution=res, dtype=torch.float32)
    with torch.no_grad():
        cond, _ = pipe.prepare_latents(x, noise, None, ensemble, 1)  # [E,4,h,w]
        ids = pipe.tokenizer("", padding="do_not_pad", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        text = pipe.text_encoder(ids)[0]  # [1,2,D]
    target = sparse[None, None]
    mask = target > 0
    lo, span = target[mask].min().item(), (target[mask].max() - target[mask].min()).item()

    def metric_of(latent, s, b):
        d = pipe.decode_prediction(latent)  # [1,1,PPH,PPW] 0..1
        d = pipe.image_processor.unpad_image(d, padding)
        d = pipe.image_processor.resize_antialias(d, size, "bilinear", is_aa=False)  # [1,1,H,W]
        return s ** 2 * span * d + b ** 2 * lo  # Eq. 2

    members = []
    for k in range(ensemble):
        latent = torch.nn.Parameter(noise[k:k + 1].clone())
        s, b = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
        opt = torch.optim.Adam([{"params": [s, b], "lr": 0.005}, {"params": [latent], "lr": 0.05}])
        for t in sched.timesteps:
            opt.zero_grad()
            v = pipe.unet(torch.cat([cond[k:k + 1], latent], 1), t, encoder_hidden_states=text,
                          return_dict=False)[0]
            a = sched.alphas_cumprod[t]
            eps = (a ** 0.5 * v + (1 - a) ** 0.5 * latent).detach()  # v-prediction → the noise
            x0 = sched.step(v, t, latent).pred_original_sample  # Eq. 1 (Tweedie)
            m = metric_of(x0, s, b)
            loss = F.l1_loss(m[mask], target[mask]) + F.mse_loss(m[mask], target[mask])
            loss.backward()
            for p in pipe.unet.parameters():  # only the latent, scale and shift are optimised
                p.grad = None
            latent.grad *= eps.norm() / latent.grad.norm().clamp(min=1e-8)
            opt.step()
            with torch.no_grad():
                latent.data = sched.step(v.detach(), t, latent).prev_sample
        with torch.no_grad():
            members.append(metric_of(latent, s, b))
    stack = torch.cat(members)
    return stack.median(0, keepdim=True).values if ensemble > 1 else stack


@pytest.mark.parametrize("name,steps,ensemble,res", [("depth-leading", 3, 1, 32), ("depth", 2, 3, 0)])
def test_completion_matches_the_published_recipe(make_checkpoint, image, sparse, name, steps, ensemble, res):
    path = make_checkpoint(name)  # depth-leading: v1-0's scheduler, which the method runs with trailing spacing
    pipe = MarigoldDepthPipeline.from_pretrained(str(path), **{diffusers_dtype_kwarg(): torch.float32})
    ours = marigold.load(path, device="cpu", dtype="fp32", progress=False)
    h, w = (np.array(image.shape[-2:]) * (res / max(image.shape[-2:]) if res else 1)).astype(int)
    noise = torch.randn(ensemble, 4, -(-h // 8), -(-w // 8), generator=torch.Generator().manual_seed(3))
    expected = reference_loop(pipe, image, sparse, steps, res, ensemble, noise)
    got = complete(ours, image, sparse, num_inference_steps=steps, processing_resolution=res,
                   ensemble_size=ensemble, noise=noise, snap=False)  # the published method's own map
    assert got.depth.shape == expected.shape == (1, 1, 37, 53)
    assert (got.depth - expected).abs().max().item() < TOL
    assert len(got.loss[0]) == ensemble and len(got.loss[0][0]) == steps
    assert got.points == [60]


def test_completion_snaps_to_the_points_by_default(depth_checkpoint, image, sparse):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    raw = complete(model, image, sparse, num_inference_steps=2, processing_resolution=32, seed=0, snap=False)
    snapped = complete(model, image, sparse, num_inference_steps=2, processing_resolution=32, seed=0)
    assert raw.unsnapped is None and torch.equal(snapped.unsnapped, raw.depth)
    pts = torch.as_tensor(sparse).reshape(raw.depth.shape) > 0
    z = torch.as_tensor(sparse).reshape(raw.depth.shape)[pts]
    miss_raw, miss = (raw.depth[pts] - z).abs().mean(), (snapped.depth[pts] - z).abs().mean()
    assert miss < 0.5 * miss_raw  # nearer its measurements
    assert snapped.scale == raw.scale and snapped.loss == raw.loss  # the same optimisation underneath


def test_completion_same_answer_with_checkpointing_and_under_inference_mode(depth_checkpoint, image, sparse):
    """ComfyUI loads and runs nodes under torch.inference_mode: completion still gets its gradients there."""
    with torch.inference_mode():
        model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
        under = complete(model, image, sparse, num_inference_steps=2, processing_resolution=32, seed=0)
    plain = complete(model, image, sparse, num_inference_steps=2, processing_resolution=32, seed=0,
                     checkpointing=False)
    assert torch.equal(under.depth, plain.depth)
    assert not model.unet.is_gradient_checkpointing  # switched back off after the call
    assert all(p.grad is None for p in model.unet.parameters())  # the weights were never optimised


def test_completion_points_progress_cancel_and_batch(depth_checkpoint, image, sparse):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    seen = []
    pts = [(3, 4, 2.0), (40, 30, 5.0), (20, 10, 3.5)]
    two = torch.cat([image, image.flip(-1)])  # [2,3,H,W]
    out = complete(model, two, pts, num_inference_steps=2, processing_resolution=32, ensemble_size=2, seed=0,
                   progress=lambda d, t: seen.append((d, t)))
    assert out.depth.shape == (2, 1, 37, 53) and out.points == [3, 3]
    assert seen[-1] == (8, 8) and torch.isfinite(out.depth).all() and (out.depth > 0).all()
    assert len(out.scale) == 2 and len(out.scale[0]) == 2

    def cancel():
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        complete(model, image, pts, num_inference_steps=2, processing_resolution=32, check_cancel=cancel)


def test_completion_one_point_is_said_and_gives_a_map(depth_checkpoint, image):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    with pytest.warns(UserWarning, match="one measured depth"):
        out = complete(model, image, [(10, 10, 2.0)], num_inference_steps=2, processing_resolution=32, seed=0)
    assert "one measured depth" in out.note
    assert float(out.depth.std()) > 0  # not the flat map the plain formula gives with cmax = cmin


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(37, 53), "no valid point"),
    (torch.full((37, 53), float("nan")), "no valid point"),
    (torch.where(torch.rand(37, 53) > 0.9, -1.0, 0.0), "negative"),
    (torch.where(torch.rand(37, 53) > 0.9, float("inf"), 0.0), "infinite"),
    (torch.ones(40, 53), "40×53|53×40"),
    ([(100, 5, 2.0)], "outside"),
    ([(1, 2)], r"\(x, y, depth\)"),
])
def test_bad_sparse_input_is_one_line(depth_checkpoint, image, bad, match):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    with pytest.raises(InputError, match=match):
        complete(model, image, bad, num_inference_steps=1, processing_resolution=32)


def test_completion_refuses_other_modalities(make_checkpoint, image, sparse):
    model = marigold.load(make_checkpoint("normals"), device="cpu", dtype="fp32", progress=False)
    with pytest.raises(InputError, match="depth completion needs an affine depth checkpoint"):
        complete(model, image, sparse)


def test_nan_means_unmeasured():
    z = torch.full((8, 8), float("nan"))
    z[2, 3] = 1.5
    z[5, 6] = 2.5
    t = sparse_depth(z, (8, 8))
    assert t.shape == (1, 1, 8, 8) and int((t > 0).sum()) == 2 and float(t[0, 0, 5, 6]) == 2.5


def test_fit_metric_recovers_depth_and_disparity():
    g = np.random.default_rng(0)
    p = g.uniform(0, 1, (24, 32)).astype(np.float32)  # an affine prediction
    truth = 0.5 + 4.0 * p  # depth = 4·p + 0.5
    mask = g.uniform(size=p.shape) < 0.1
    fit = fit_metric(p, np.where(mask, truth, 0))
    assert np.allclose(fit.depth[0, 0].numpy(), truth, atol=1e-4) and fit.note == ""
    assert abs(fit.scale[0] - 4.0) < 1e-4 and abs(fit.shift[0] - 0.5) < 1e-4
    inv = 1.0 / (0.1 + 0.9 * p)  # disparity prediction: 1/depth = 0.9·p + 0.1
    fit = fit_metric(p, np.where(mask, inv, 0), space="disparity")
    assert np.allclose(fit.depth[0, 0].numpy(), inv, rtol=1e-4)
    # fitted in depth, an inverse-depth map flips: said
    assert "flips" in fit_metric(p, np.where(mask, 1.0 / (0.1 + 0.9 * p), 0)).note


def test_fit_metric_robust_ignores_outliers_and_one_point_is_said():
    g = np.random.default_rng(1)
    p = g.uniform(0, 1, (24, 32))
    truth = 1.0 + 2.0 * p
    pts = [(x, y, truth[y, x]) for x, y in zip(g.integers(0, 32, 40), g.integers(0, 24, 40))]
    pts += [(1, 1, 50.0), (2, 2, 60.0)]  # two wild readings
    plain = metric_errors(fit_metric(p, pts).depth, truth)["mae"]
    robust = metric_errors(fit_metric(p, pts, robust=True).depth, truth)["mae"]
    assert robust < 0.05 < plain
    one = fit_metric(p, [(5, 5, 3.0)])
    assert "one measured depth" in one.note
    d = one.depth[0, 0].numpy()
    assert abs(d[5, 5] - 3.0) < 1e-5 and abs(d.max() / d.min() - 3.0) < 0.2  # the default range: far ≈ 3× near


def test_parse_points():
    assert parse_points(["1,2,3.5", "4,5,6;7,8,9"]) == [(1, 2, 3.5), (4, 5, 6), (7, 8, 9)]
    with pytest.raises(InputError, match="x,y,depth"):
        parse_points("1,2")


def test_metric_errors():
    e = metric_errors(torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[1.0, 2.0], [3.0, 3.0]]))
    assert e["mae"] == pytest.approx(0.5) and e["rmse"] == pytest.approx(1.0)


def test_public_names():
    assert marigold.complete is complete and marigold.fit_metric is fit_metric
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(marigold.Completion, type) and isinstance(marigold.MetricDepth, type)


def test_3d_outputs_take_metric_depth():
    """A metric map builds a mesh in its own units and a stereo pair with its own far/near ratio."""
    from marigold.geometry.mesh import depth_to_mesh, depth_to_points
    from marigold.geometry.stereo import stereo

    g = np.random.default_rng(0)
    aff = g.uniform(0, 1, (24, 32)).astype(np.float32)
    metres = 2.0 + 3.0 * aff  # 2..5 m
    mesh = depth_to_mesh(metres, space="metric", edge_threshold=0)
    assert abs(-mesh.vertices[:, 2].min() - metres.max()) < 1e-4 and abs(-mesh.vertices[:, 2].max() - 2.0) < 0.01
    pts = depth_to_points(metres, space="metric")
    assert abs(-pts.vertices[:, 2].max() - metres.min()) < 1e-4
    img = torch.rand(1, 3, 24, 32)
    got = stereo(img, torch.from_numpy(metres), space="metric")
    # the same as the affine map with far/near given by the metric map: metres.max()/metres.min()
    want = stereo(img, torch.from_numpy((metres - metres.min()) / np.ptp(metres)),
                  far_over_near=float(metres.max() / metres.min()))
    assert torch.allclose(got.shift, want.shift, atol=1e-4) and "far/near" in got.notes[-1]
    with pytest.raises(InputError, match="≤ 0"):
        depth_to_mesh(metres - 3.0, space="metric")


def test_merge_points_writes_known_points_over_a_measured_map():
    from marigold.core.metric import merge_points

    measured = np.zeros((6, 8), np.float32)
    measured[1, 2], measured[4, 5] = 3.0, 7.0
    out = merge_points(measured, [(2, 1, 2.5), (7.4, 0.2, 1.0)], (6, 8))
    assert out[1, 2] == 2.5 and out[4, 5] == 7.0 and out[0, 7] == 1.0 and int((out > 0).sum()) == 3
    assert measured[1, 2] == 3.0  # the caller's map is not changed
    assert merge_points(None, [(0, 0, 4.0)], (6, 8))[0, 0] == 4.0
    with pytest.raises(InputError, match="outside the 8×6 image"):
        merge_points(None, [(8, 0, 1.0)], (6, 8))
    with pytest.raises(InputError, match="sparse depth is 8×6, the image 4×3"):
        merge_points(measured, None, (3, 4))


def test_colorize_metric_batch_pads_each_scale_bar_to_one_width():
    from marigold.io.colorize import colorize_metric, colorize_metric_batch

    d = torch.stack([torch.linspace(1.0, 2.0, 48 * 64).reshape(1, 48, 64),
                     torch.linspace(2.0, 15.0, 48 * 64).reshape(1, 48, 64)])  # [2,1,48,64]: labels of 4 and 5 chars
    out = colorize_metric_batch(d)
    one = [colorize_metric(d[i:i + 1]) for i in range(2)]
    assert one[0].shape[-1] < one[1].shape[-1]  # the padding is exercised
    assert out.shape == (2, 3, 48, max(o.shape[-1] for o in one))
    for i, o in enumerate(one):
        assert torch.equal(out[i, :, :, :o.shape[-1]], o)  # each picture as colorize_metric draws it
        assert bool((out[i, :, :, o.shape[-1]:] == 1.0).all())  # white padding after it


def test_one_step_mode_refines_the_noise_of_one_prediction(depth_checkpoint, image, sparse):
    """For end-to-end (one-step) checkpoints: every iteration at the first timestep, no DDIM step; the answer is
    that one step's prediction from the refined noise, and the fit to the points improves as it goes."""
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    out = complete(model, image, sparse, num_inference_steps=12, processing_resolution=32, seed=0, one_step=True)
    trace = out.loss[0][0]
    assert len(trace) == 12 and trace[-1] < 0.9 * trace[0]
    walked = complete(model, image, sparse, num_inference_steps=12, processing_resolution=32, seed=0)
    assert not torch.allclose(out.depth, walked.depth)
