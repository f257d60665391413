"""A tiny Stable Diffusion 2 stand-in, for tests and CPU demos of the whole fine-tuning protocol.

    python -m train.tiny OUT --from TINY_MARIGOLD [--vae-steps 300]

Takes the tiny blocks of a tiny Marigold checkpoint (``shared/tools/make_marigold_checkpoint.py --size tiny``),
and writes a ``StableDiffusionPipeline``-layout folder whose UNet sees 4 latent channels (the trainer widens it),
with that checkpoint's VAE, text encoder and tokenizer. A real SD2 VAE reconstructs images and depth maps
almost perfectly; a random one does not, and nothing trained through it can be measured. ``--vae-steps`` fits
the tiny VAE as a plain autoencoder on synthetic RGB and depth renders first (a stand-in for SD2's pretrained
VAE, which Marigold keeps frozen). The fit sees photo-textured and flat-coloured renders (``texture="flat"``,
what ``configs/cpu_tiny.yaml`` trains on) and their depth maps; its ``scaling_factor`` is then set so that the
scaled latents have unit standard deviation, the rule that gave SD's 0.18215 (Rombach et al. 2022, LDM: the
latent is rescaled by 1/σ estimated on training data). The random tiny VAE's own 0.18215 left the scaled latents
at std ≈ 0.2, so the image condition was five times weaker than the unit noise beside it in the UNet's input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

# what ``fit_vae(iid=True)`` fits on, by version (stand-ins are rebuilt when it changes): 2 adds blends of material
# maps, 3 makes them blends of 2-64 maps and twice as many
IID_POOL = 3


def vae_pool(size: tuple[int, int], seed: int = 0, iid: bool = False, normals: bool = False) -> torch.Tensor:
    """What :func:`fit_vae` fits on → ``[N,3,H,W]`` in -1..1: 64 training renders at ``size`` (photo-textured and
    flat in turn; val/heldout scenes are never used) and their normalised depth, with ``normals`` their normal
    maps, with ``iid`` the flat materials render and its intrinsic layers, then blends of 2-64 material maps."""
    from marigold.core.modality import get

    from .data.common import normalize_depth, target_map
    from .data.synthetic import render

    pool, materials = [], []
    for i in range(64):
        s = render(5_000_000 + i, *size, supersample=1, texture="flat" if i % 2 else "photo")
        d = normalize_depth(s.depth, s.valid)
        pool.append(torch.from_numpy(s.rgb.transpose(2, 0, 1) * 2 - 1))
        pool.append(torch.from_numpy(np.repeat(d[None], 3, 0)))
        if normals:
            pool.append(torch.from_numpy(get("normals").targets[0].encode(s.normals)))
        if iid:
            m = render(5_000_000 + i, *size, supersample=1, texture="flat", materials=True)
            pool.append(torch.from_numpy(m.rgb.transpose(2, 0, 1) * 2 - 1))
            for task in map(get, ("iid-lighting", "iid-appearance")):
                for t in task.targets:
                    pool.append(torch.from_numpy(t.encode(target_map(m, task, t.name))))
                    if t.name == "material":
                        materials.append(pool[-1])
    # blends of material maps: a model unsure of a surface's material predicts an in-between map, and a VAE that
    # never saw one decoded the training set's mean material map with an sRGB roughness of 0.61 for 0.72
    # (train/README.md), a bias every IID appearance model inherited. Blends of 2-64 maps (a log-uniform count)
    # reach the smooth mean map too; twice as many as the training maps, so the 6000 VAE steps the albedo needs
    # do not forget them
    pick = np.random.default_rng(seed)
    for _ in range(2 * len(materials)):
        k = int(round(np.exp(pick.uniform(np.log(2), np.log(64.5)))))
        idx = pick.choice(len(materials), min(k, len(materials)), replace=False)
        pool.append(torch.stack([materials[j] for j in idx]).mean(0))  # [3,H,W]
    return torch.stack(pool).float()


def fit_vae(vae, steps: int, size: tuple[int, int] = (64, 64), batch: int = 8, seed: int = 0, lr: float = 2e-3,
            crop: int = 32, log=None, iid: bool = False, normals: bool = False) -> float:
    """Train the VAE to reconstruct synthetic RGB images and normalised depth maps (random ``crop``-pixel
    crops of ``size`` renders: the VAE is convolutional, and crops cost a quarter); returns the last loss.
    ``iid``: also the intrinsic layers (albedo, shading, residual, material, in the spaces the IID modalities
    predict them), without which the tiny VAE cannot even reconstruct those targets (the round trip alone was
    worse than the training-mean map: albedo MSE 0.046 against 0.020). ``normals``: also unit normal maps
    (encoded as the normals modality encodes them), without which the small VAE's own round trip of held-out
    normals was 54.9° of mean angular error, worse than the training-mean map's 38.0° (train/README.md).
    With ``iid``, blends of the material maps join the pool (:data:`IID_POOL`)."""
    torch.manual_seed(seed)
    torch.set_flush_denormal(True)  # denormals from the shrinking weights slow CPU convolutions ~10×
    data = vae_pool(size, seed, iid=iid, normals=normals)  # [N,3,H,W] in -1..1
    vae.train().requires_grad_(True)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    loss = torch.tensor(0.0)
    for step in range(steps):
        x = data[torch.randint(0, data.shape[0], (batch,), generator=gen)]
        if crop and crop < min(size):
            oy, ox = (int(torch.randint(0, n - crop + 1, (1,), generator=gen)) for n in size)
            oy, ox = oy // 8 * 8, ox // 8 * 8
            x = x[..., oy:oy + crop, ox:ox + crop]
        if torch.rand(1, generator=gen) < 0.5:
            x = x.flip(-1)
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.mode()).sample
        kl = post.kl().mean() / x[0].numel()
        loss = torch.nn.functional.mse_loss(rec, x) + 1e-3 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"vae step {step}: loss {float(loss):.4f}")
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        std = float(torch.cat([vae.encode(x).latent_dist.mode() for x in data.split(32)]).std())
    vae.register_to_config(scaling_factor=1.0 / std)  # unit-variance scaled latents, as SD's 0.18215 gives
    if log:
        log(f"vae scaling_factor 1/{std:.4f} = {1.0 / std:.4f}")
    return float(loss.detach())


# ``--size small``: the instrument for quality figures (train/README.md, "The small model"). Three UNet levels
# with self- and cross-attention at the two lower ones (RollingDepth's cross-frame attention acts there), ~8M
# parameters; a VAE four times wider than the tiny one, still downsampling by 8 as SD's does.
SMALL_UNET = dict(sample_size=16, layers_per_block=1, block_out_channels=(64, 128, 256),
                  attention_head_dim=(2, 4, 8), norm_num_groups=32, use_linear_projection=True,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
SMALL_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                 block_out_channels=(8, 16, 32, 32), norm_num_groups=8, sample_size=128,
                 down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                 scaling_factor=0.18215)
# ``--size small-wide``: the small UNet behind a VAE twice as wide, for targets the small VAE cannot carry (its
# round trip of the lighting residual was 2.9x the training mean map's error, this one's 0.17x; issue #35)
WIDE_VAE = dict(SMALL_VAE, block_out_channels=(16, 32, 64, 64))
SIZES = ("tiny", "small", "small-wide")


def make_tiny_sd2(out: str | Path, marigold_tiny: str | Path, vae_steps: int = 0, seed: int = 0, log=None,
                  iid: bool = False, size: str = "tiny", vae_size: tuple[int, int] = (64, 64),
                  normals: bool = False) -> Path:
    """``size="tiny"``: the tiny checkpoint's UNet blocks and VAE; ``"small"``: :data:`SMALL_UNET` and
    :data:`SMALL_VAE` (random, then fitted), with the tiny checkpoint's text encoder and tokenizer;
    ``"small-wide"``: the same with :data:`WIDE_VAE`."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}.")
    out, src = Path(out), Path(marigold_tiny)
    out.mkdir(parents=True, exist_ok=False)
    cfg = json.loads((src / "unet" / "config.json").read_text())
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    if size != "tiny":
        cfg = dict(SMALL_UNET, cross_attention_dim=cfg["cross_attention_dim"])
    cfg.update(in_channels=4, out_channels=4)
    torch.manual_seed(seed)
    UNet2DConditionModel(**cfg).save_pretrained(str(out / "unet"), safe_serialization=True)
    if size != "tiny":
        vae = AutoencoderKL(**(WIDE_VAE if size == "small-wide" else SMALL_VAE))
    else:
        vae = AutoencoderKL.from_pretrained(str(src / "vae"), use_safetensors=True)
    if vae_steps:
        fit_vae(vae, vae_steps, size=vae_size, seed=seed, log=log, iid=iid, normals=normals,
                crop=32 if size == "tiny" else 64)
    vae.save_pretrained(str(out / "vae"), safe_serialization=True)
    for part in ("text_encoder", "tokenizer"):
        shutil.copytree(src / part, out / part)
    # SD2's own scheduler config (stabilityai/stable-diffusion-2: DDIM, v-prediction, scaled-linear betas)
    DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                  clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                  prediction_type="v_prediction").save_pretrained(str(out / "scheduler"))
    import diffusers

    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "safety_checker": [None, None],
             "feature_extractor": [None, None], "requires_safety_checker": False}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


def main(argv=None) -> int:
    torch.set_flush_denormal(True)  # before any op starts torch's thread pool, so every thread inherits it
    ap = argparse.ArgumentParser(prog="python -m train.tiny", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--from", dest="src", required=True, help="a tiny Marigold checkpoint folder")
    ap.add_argument("--vae-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iid", action="store_true", help="fit the VAE on the intrinsic layers too (IID models)")
    ap.add_argument("--normals", action="store_true", help="fit the VAE on normal maps too (normals models)")
    ap.add_argument("--size", choices=SIZES, default="tiny",
                    help="tiny: the tests' 0.8M-parameter UNet; small: the quality benches' instrument; "
                         "small-wide: the same UNet behind a VAE twice as wide")
    a = ap.parse_args(argv)
    make_tiny_sd2(a.out, a.src, a.vae_steps, a.seed, log=print, iid=a.iid, normals=a.normals, size=a.size,
                  vae_size=(64, 64) if a.size == "tiny" else (96, 128))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
