"""The pieces of the protocol: widening SD2's first conv, base loading, the exported checkpoint, configs,
multi-resolution noise, the learning-rate schedule, EMA and the losses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import marigold
from marigold.errors import CheckpointError
from train import config as C
from train.base import export_marigold, load_base, noise_scheduler_config, widen_conv_in
from train.ema import EMA
from train.finetune import lr_lambda, step_generator
from train.losses import affine_invariant_l1, angular, latent_mask, least_squares_scale_shift, masked_mse
from train.noise import multi_res_noise, training_noise


def _tiny_unet(in_channels=4):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=8, in_channels=in_channels, out_channels=4, layers_per_block=1,
                                block_out_channels=(32, 64), attention_head_dim=(2, 4), cross_attention_dim=32,
                                use_linear_projection=True, norm_num_groups=8,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))


def test_widened_unet_sees_duplicated_input_as_the_original():
    """Duplicate-and-halve: with the same latent in both halves the widened UNet computes exactly what SD2
    computed on that latent (Marigold paper, Sec. 3.2)."""
    unet = _tiny_unet().eval()
    x = torch.randn(2, 4, 8, 8)
    text = torch.randn(2, 2, 32)
    with torch.no_grad():
        ref = unet(x, 10, encoder_hidden_states=text).sample
        widen_conv_in(unet)
        out = unet(torch.cat([x, x], 1), 10, encoder_hidden_states=text).sample
    assert unet.conv_in.in_channels == 8 and unet.config.in_channels == 8
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_load_base_sd2_and_marigold(tiny_sd2, depth_checkpoint, make_checkpoint):
    sd2 = load_base(tiny_sd2, "depth")
    assert sd2.kind == "sd2" and sd2.unet.conv_in.in_channels == 8
    assert sd2.empty_text_embedding.shape == (1, 2, 32)
    assert not any(p.requires_grad for p in sd2.vae.parameters())
    mg = load_base(depth_checkpoint, "depth")
    assert mg.kind == "marigold" and mg.unet.conv_in.in_channels == 8
    with pytest.raises(CheckpointError, match="normals checkpoint"):
        load_base(make_checkpoint("normals"), "depth")


def test_exported_checkpoint_loads_in_the_core_and_in_diffusers(tiny_sd2, tmp_path):
    base = load_base(tiny_sd2, "depth")
    cfg = C.merge(C.DEFAULTS, {"noise_scheduler": {"prediction_type": "v_prediction"}})
    noise_cfg = noise_scheduler_config(base, cfg)
    out = export_marigold(tmp_path / "ckpt", base, base.unet, noise_cfg, "depth",
                          {"default_processing_resolution": 64}, default_steps=4)
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldDepthPipeline" and index["prediction_type"] == "depth"
    assert index["default_denoising_steps"] == 4 and index["scale_invariant"] and index["shift_invariant"]
    sched = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert sched["_class_name"] == "DDIMScheduler" and sched["timestep_spacing"] == "trailing"
    assert sched["prediction_type"] == "v_prediction"
    model = marigold.load(out, device="cpu", dtype="fp32")
    assert model.task == "depth" and model.unet.config.in_channels == 8
    torch.testing.assert_close(model.empty_text_embedding, base.empty_text_embedding)
    pred = marigold.predict(model, np.random.default_rng(0).random((40, 48, 3)).astype(np.float32), seed=0,
                            num_inference_steps=1)
    assert pred.prediction.shape == (1, 1, 40, 48) and torch.isfinite(pred.prediction).all()
    from diffusers import MarigoldDepthPipeline

    pipe = MarigoldDepthPipeline.from_pretrained(str(out))
    assert pipe.unet.config.in_channels == 8


def test_config_file_cli_overrides_and_typos(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 1.0e-4\nema: {enabled: true}\nmulti_res_noise: {strength: 0.5}\n")
    t = tmp_path / "c.toml"
    t.write_text("max_steps = 7\n[optimizer]\nweight_decay = 0.01\n")
    cfg = C.parse(["--config", str(f), "--config", str(t), "--base", "b", "--output", "o", "--lr", "2e-4",
                   "--set", "ema.decay=0.99", "--set", "lr_schedule.warmup_steps=5", "--data", "synthetic",
                   "--resume"])
    assert cfg["lr"] == 2e-4 and cfg["ema"] == {"enabled": True, "decay": 0.99}
    assert cfg["multi_res_noise"]["strength"] == 0.5 and cfg["multi_res_noise"]["annealed"] is True
    assert cfg["max_steps"] == 7 and cfg["optimizer"]["weight_decay"] == 0.01
    assert cfg["lr_schedule"]["warmup_steps"] == 5 and cfg["resume"] and cfg["data"] == ["synthetic"]
    f.write_text("learning_rate: 1\n")
    with pytest.raises(KeyError, match="learning_rate"):
        C.parse(["--config", str(f), "--base", "b", "--output", "o"])
    with pytest.raises(KeyError):
        C.parse(["--base", "b", "--output", "o", "--set", "ema.decya=1"])
    for name in ("marigold_depth.yaml", "e2e_ft_depth.yaml", "cpu_tiny.yaml"):  # shipped configs are valid
        C.merge(C.DEFAULTS, C.load_file(C.Path(__file__).parents[1] / "train" / "configs" / name))


def test_multi_resolution_noise_and_annealing():
    g = torch.Generator().manual_seed(0)
    n = multi_res_noise((4, 4, 32, 32), 0.9, generator=g)
    assert n.shape == (4, 4, 32, 32) and abs(float(n.std()) - 1) < 1e-4
    # strong multi-resolution noise is spatially correlated; i.i.d. noise is not
    def neighbour_corr(x):
        return float(torch.corrcoef(torch.stack([x[..., :-1].flatten(), x[..., 1:].flatten()]))[0, 1])
    assert neighbour_corr(n) > 0.3
    # annealed: at t = 0 the strength is 0, so the noise is white
    white = training_noise((4, 4, 32, 32), torch.zeros(4, dtype=torch.long), {"strength": 0.9}, 1000,
                           torch.Generator().manual_seed(0))
    assert abs(neighbour_corr(white)) < 0.05
    hot = training_noise((4, 4, 32, 32), torch.full((4,), 999), {"strength": 0.9}, 1000,
                         torch.Generator().manual_seed(0))
    assert neighbour_corr(hot) > 0.3
    # reproducible from the generator
    a = multi_res_noise((1, 4, 16, 16), 0.9, generator=torch.Generator().manual_seed(3))
    b = multi_res_noise((1, 4, 16, 16), 0.9, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_lr_schedule_warmup_then_exponential_decay():
    f = lr_lambda(100, 25000, 0.01)
    assert f(0) == pytest.approx(0.01) and f(99) == pytest.approx(1.0)
    assert f(12550) == pytest.approx(0.1, rel=1e-6) and f(25000) == pytest.approx(0.01) and f(40000) == f(25000)
    g1, g2 = step_generator(0, 5, 1), step_generator(0, 5, 1)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))
    assert not torch.equal(torch.randn(3, generator=step_generator(0, 5, 0)),
                           torch.randn(3, generator=step_generator(0, 6, 0)))


def test_ema_tracks_and_swaps():
    m = torch.nn.Linear(2, 2)
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.add_(1.0)
    before = ema.shadow["weight"].clone()
    ema.update(m)
    assert not torch.equal(ema.shadow["weight"], before)
    live = m.weight.detach().clone()
    ema.swap(m)
    assert torch.equal(m.weight, ema.state_dict()["weight"] * 0 + m.weight) and not torch.equal(m.weight, live)
    ema.swap(m)
    assert torch.equal(m.weight, live)
    e2 = EMA(m)
    e2.load_state_dict(ema.state_dict())
    assert e2.updates == 1 and torch.equal(e2.shadow["weight"], ema.shadow["weight"])


def test_gradient_matching_prices_a_soft_step_beyond_what_l1_sees():
    from train.losses import gradient_matching

    x = torch.arange(32.0)
    step = (x >= 16).float().expand(1, 1, 32, 32)  # [1,1,32,32] a sharp depth step
    soft = torch.sigmoid((x - 15.5) / 3).expand(1, 1, 32, 32)  # the same step spread over ~10 px
    mask = torch.ones_like(step, dtype=torch.bool)
    assert float(affine_invariant_l1(step * 2 + 1, step, mask, grad_weight=0.5)) < 1e-5  # exact up to an affine map
    l1 = float(affine_invariant_l1(soft, step, mask))
    with_grad = float(affine_invariant_l1(soft, step, mask, grad_weight=0.5))
    assert with_grad > l1 + 0.5 * 0.01  # the soft step's residual has gradients along its whole length
    # a gradient needs both its pixels valid: a step hidden behind the mask costs nothing
    hidden = mask.clone()
    hidden[..., 15:17] = False
    jump = torch.zeros(1, 1, 32, 32)
    jump[..., 16:] = 1.0
    assert float(gradient_matching(jump, hidden, scales=1)) == 0.0
    assert float(gradient_matching(jump, mask, scales=1)) > 0.0


def test_losses():
    gt = torch.rand(2, 1, 16, 16)
    mask = torch.ones_like(gt, dtype=torch.bool)
    pred = gt * 3 - 1
    s, t = least_squares_scale_shift(pred, gt, mask)
    torch.testing.assert_close(s, torch.full((2,), 1 / 3))
    assert float(affine_invariant_l1(pred, gt, mask)) < 1e-5
    assert float(affine_invariant_l1(torch.rand(2, 1, 16, 16), gt, mask)) > 0.05
    # an upside-down map (near = 1) is not turned over for free: it costs more than the best constant map
    constant = float((gt - gt.mean((1, 2, 3), keepdim=True)).abs().mean())
    assert float(affine_invariant_l1(1 - gt, gt, mask)) > constant
    assert float(affine_invariant_l1(1 - gt, gt, mask)) > 1.5 * float(affine_invariant_l1(gt * 0.5, gt, mask)) + 0.1
    valid = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    valid[0, 0, 0, 0] = False
    lm = latent_mask(valid)
    assert lm.shape == (1, 1, 2, 2) and not lm[0, 0, 0, 0] and lm.sum() == 3
    assert float(masked_mse(torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), lm)) == 1.0
    n = torch.nn.functional.normalize(torch.randn(1, 3, 4, 4), dim=1)
    assert float(angular(n, n, torch.ones(1, 1, 4, 4, dtype=torch.bool))) < 1e-2
    assert float(angular(-n, n, torch.ones(1, 1, 4, 4, dtype=torch.bool))) > 3.0


def test_small_stand_in_has_attention_at_its_lower_levels_and_a_factor_8_vae(make_checkpoint, tmp_path):
    """``train.tiny --size small`` (the quality benches' instrument, train/README.md "The small model"): the
    UNet's attention sits at its two lower levels (where RollingDepth's cross-frame attention acts), the VAE
    downsamples by 8 as SD's does, and the text encoder is the tiny checkpoint's (its width is the UNet's
    cross-attention width). No fitting here (``vae_steps=0``): the bench fits it."""
    import json

    from train.base import load_base
    from train.tiny import make_tiny_sd2

    out = make_tiny_sd2(tmp_path / "sd2-small", make_checkpoint("depth"), vae_steps=0, size="small")
    unet = json.loads((out / "unet" / "config.json").read_text())
    assert unet["down_block_types"] == ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
    assert unet["in_channels"] == 4 and unet["block_out_channels"] == [64, 128, 256]
    vae = json.loads((out / "vae" / "config.json").read_text())
    assert 2 ** (len(vae["block_out_channels"]) - 1) == 8
    base = load_base(out)
    assert base.unet.config.cross_attention_dim == base.empty_text_embedding.shape[-1]
    assert base.unet.config.in_channels == 8  # widened for the image latent, as for SD2
    assert sum(p.numel() for p in base.unet.parameters()) > 10 * 10**6  # not the 0.8M tiny UNet
    # --size small-wide: the same UNet, the VAE twice as wide at every level (the lighting models' stand-in)
    wide = make_tiny_sd2(tmp_path / "sd2-small-wide", make_checkpoint("depth"), vae_steps=0, size="small-wide")
    assert json.loads((wide / "unet" / "config.json").read_text())["block_out_channels"] == [64, 128, 256]
    wide_vae = json.loads((wide / "vae" / "config.json").read_text())
    assert wide_vae["block_out_channels"] == [2 * c for c in vae["block_out_channels"]]
    with pytest.raises(ValueError, match="size must be one of"):
        make_tiny_sd2(tmp_path / "x", make_checkpoint("depth"), size="huge")


def test_vae_pool_has_normal_maps_and_blends_of_material_maps():
    """What the stand-in's VAE fits on (``train.tiny.vae_pool``): with ``normals`` the unit normal maps as the
    normals modality encodes them; with ``iid`` the intrinsic layers and, after them, blends of 2-64 material maps
    (an unsure model's in-between answer, which a VAE that never saw one decoded biased; train/README.md)."""
    from train.tiny import vae_pool

    plain = vae_pool((32, 32))
    full = vae_pool((32, 32), iid=True, normals=True)
    assert plain.shape == (128, 3, 32, 32)  # an RGB render and its depth per scene
    # per scene: rgb, depth, normals, the materials render, 3 lighting + 2 appearance targets; then 128 blends
    assert full.shape == (64 * 9 + 128, 3, 32, 32) and float(full.abs().max()) <= 1.0
    normals = full[2:576:9]  # [64,3,H,W]
    assert torch.allclose(normals.norm(dim=1), torch.ones(1), atol=1e-3)
    materials, blends = full[8:576:9], full[576:]  # [64,3,H,W] each
    assert (materials[:, 2] == -1).all() and (blends[:, 2] == -1).all()  # the empty channel stays empty
    lo, hi = materials.amin(0), materials.amax(0)
    assert ((blends >= lo - 1e-6) & (blends <= hi + 1e-6)).all()  # convex combinations of material maps
    # each blend is none of the maps: its distance to the nearest one is a real fraction of the maps' spread
    nearest = torch.cdist(blends.flatten(1), materials.flatten(1)).amin(1)
    assert float(nearest.min()) > 0.1 * float(torch.cdist(materials.flatten(1), materials.flatten(1)).mean())
    # blends of many maps reach the smooth mean map (a fully unsure model's answer): one lies ten times nearer to it
    # than any single map does (blends of 2-8 maps: 2.5 times)
    mean = materials.mean(0).flatten()[None]  # [1,3HW]
    assert 10 * float(torch.cdist(mean, blends.flatten(1)).min()) < float(torch.cdist(mean, materials.flatten(1)).min())


def test_target_weights_price_each_target_and_equal_weights_are_the_plain_mse():
    from train.losses import target_weights, weighted_target_mse

    names = ["albedo", "shading", "residual"]
    assert target_weights(None, names) is None and target_weights({"albedo": 2, "shading": 2, "residual": 2},
                                                                   names) is None
    w = target_weights({"residual": 4.0}, names)  # the others weigh 1; scaled to mean 1
    assert torch.allclose(w, torch.tensor([0.5, 0.5, 2.0]))
    g = torch.Generator().manual_seed(0)
    pred, goal = torch.randn(2 * 3, 3, 8, 8, generator=g), torch.randn(2 * 3, 3, 8, 8, generator=g)  # [B·T,3,H,W]
    mask = torch.rand(2, 1, 8, 8, generator=g).repeat_interleave(3, 0) > 0.3  # [B·T,1,H,W], one per sample
    plain = masked_mse(pred, goal, mask)
    assert torch.allclose(weighted_target_mse(pred, goal, mask, torch.ones(3)), plain, atol=1e-6)
    # an error on the residual alone (the third target of each sample) costs 2 / 1 times what the plain MSE charges
    res = goal.clone()
    res[2::3] += 1.0
    assert torch.allclose(weighted_target_mse(res, goal, None, w), 2.0 * masked_mse(res, goal, None), atol=1e-6)
    alb = goal.clone()
    alb[0::3] += 1.0
    assert torch.allclose(weighted_target_mse(alb, goal, None, w), 0.5 * masked_mse(alb, goal, None), atol=1e-6)
    for bad, says in (({"material": 2.0}, "the task's targets are albedo, shading, residual"),
                      ({"residual": 0.0}, "positive"), ([1, 2, 3], "a mapping of target names")):
        with pytest.raises(SystemExit, match=says):
            target_weights(bad, names)
