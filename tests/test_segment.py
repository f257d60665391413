"""Text-grounded segmentation (Cocogold) in the library and the CLI, on a tiny checkpoint with random weights:
the mask post-processing, prompt encoding and its cache, UNet-only folders with a base, parity with a plain loop
written from the Cocogold fork's pipeline, and the bad inputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import marigold
from marigold.core import prompts as prompts_mod
from marigold.modalities.segmentation import mask_from_painted, open_mask, tone_down_white

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seg(segmentation_checkpoint, tmp_path_factory):
    cache = tmp_path_factory.mktemp("seg-cache")
    return marigold.load(segmentation_checkpoint, device="cpu", dtype="fp32", cache_dir=cache)


def _photo(seed=0, h=48, w=64):
    return torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(seed))  # [1,3,H,W]


# --- post-processing ---------------------------------------------------------------------------------------------

def test_opening_drops_specks_and_keeps_blobs():
    m = torch.zeros(1, 1, 20, 20)
    m[0, 0, 2, 2] = 1  # a lone white pixel: noise
    m[0, 0, 8:14, 8:14] = 1  # an object
    out = open_mask(m)
    assert out[0, 0, 2, 2] == 0
    assert torch.equal(out[0, 0, 8:14, 8:14], torch.ones(6, 6)) and out.sum() == 36


def test_mask_is_white_pixels_of_the_painted_image():
    painted = torch.full((1, 3, 16, 16), 0.5)
    painted[:, :, 4:10, 4:10] = 0.96  # painted white (the model gives 0.935–0.997)
    painted[:, 0, 12:16, 12:16] = 1.0  # bright red is not white: one channel only
    mask = mask_from_painted(painted, 0.93)
    assert mask.shape == (1, 1, 16, 16) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.sum() == 36 and mask[0, 0, 4:10, 4:10].all()
    assert mask_from_painted(painted, 0.97).sum() == 0


def test_near_white_input_is_toned_down_below_the_threshold_and_colours_kept():
    x = torch.tensor([[1.0, 1.0, 1.0], [0.95, 0.97, 1.0], [0.9, 0.2, 0.1], [0.5, 0.5, 0.5]]).T[None, :, None, :]
    y = tone_down_white(x)  # [1,3,1,4]
    assert y[0, :, 0, 0].min() <= 0.9 + 1e-6 and y[0, :, 0, 1].min() < 0.93
    assert torch.equal(y[..., 2:], x[..., 2:])  # saturated and mid-grey pixels untouched
    assert (y[0, 2, 0, 1] - y[0, 0, 0, 1]).item() == pytest.approx(0.05, abs=1e-6)  # hue kept


# --- the library ---------------------------------------------------------------------------------------------------

def test_segment_gives_a_binary_mask_the_painted_image_and_an_uncertainty(seg):
    out = marigold.segment(seg, _photo(), "car", seed=0, ensemble_size=3, output_uncertainty=True,
                           threshold=0.5, clean=False)
    assert out.mask.shape == (1, 1, 48, 64) and out.painted.shape == (1, 3, 48, 64)
    assert set(out.mask.unique().tolist()) <= {0.0, 1.0}
    assert 0.0 <= out.painted.min() and out.painted.max() <= 1.0
    assert torch.equal(out.mask, (out.painted.amin(dim=1, keepdim=True) >= 0.5).float())
    assert out.uncertainty is not None and out.uncertainty.shape == (1, 1, 48, 64) and out.uncertainty.max() > 0
    batch = marigold.segment(seg, torch.cat([_photo(0), _photo(1)]), "car", seed=0)
    assert batch.mask.shape == (2, 1, 48, 64)


def test_the_prompt_conditions_the_answer(seg):
    a = marigold.segment(seg, _photo(), "car", seed=0).painted
    b = marigold.segment(seg, _photo(), "dog", seed=0).painted
    again = marigold.segment(seg, _photo(), "car", seed=0).painted
    assert torch.equal(a, again) and (a - b).abs().max() > 1e-4


def test_prompt_embeddings_are_cached_per_model_and_the_text_encoder_is_loaded_once(seg, monkeypatch):
    calls = []
    real = prompts_mod._load_text_model
    monkeypatch.setattr(prompts_mod, "_load_text_model", lambda folder: calls.append(folder) or real(folder))
    got = marigold.prompt_embeddings(seg, ["train", "giraffe"])
    assert len(calls) == 1  # one load for both prompts
    assert got["train"].shape == (1, 77, 32) and not torch.equal(got["train"], got["giraffe"])
    marigold.prompt_embedding(seg, "train")
    assert len(calls) == 1  # in memory
    seg.prompt_embeddings.clear()
    again = marigold.prompt_embedding(seg, "train")  # from the disk cache beside the checkpoint
    assert len(calls) == 1 and torch.equal(again, got["train"])
    files = list((seg.path / prompts_mod.PROMPT_DIR).glob("*.safetensors"))
    assert len(files) >= 2


def test_depth_models_never_load_the_text_encoder_for_prompts(depth_checkpoint, monkeypatch):
    monkeypatch.setattr(prompts_mod, "_load_text_model", lambda folder: pytest.fail("text encoder loaded"))
    d = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    assert not d.takes_prompt
    assert marigold.predict(d, _photo(), num_inference_steps=1, processing_resolution=64).prediction.shape == \
        (1, 1, 48, 64)


def test_unet_only_folder_with_a_base_loads_and_answers_like_the_full_checkpoint(segmentation_checkpoint,
                                                                                 depth_checkpoint, seg, tmp_path):
    # Cocogold's layout: the UNet alone; the base (an SD2 stand-in) lends VAE, scheduler, tokenizer, text encoder
    only = tmp_path / "unet-only"
    shutil.copytree(segmentation_checkpoint / "unet", only / "unet")
    with pytest.raises(marigold.CheckpointError, match="`base`"):
        marigold.load(only, device="cpu", dtype="fp32", cache_dir=tmp_path / "c")
    u = marigold.load(only, base=depth_checkpoint, device="cpu", dtype="fp32", cache_dir=tmp_path / "c")
    assert u.task == "segmentation" and u.default_denoising_steps == 50  # Cocogold validated with 50 DDIM steps
    kw = dict(seed=0, num_inference_steps=2, processing_resolution=64)
    assert torch.equal(marigold.segment(u, _photo(), "car", **kw).painted,
                       marigold.segment(seg, _photo(), "car", **kw).painted)
    # the UNet at the top level, and a model_index.json beside it honoured
    top = tmp_path / "top"
    shutil.copytree(segmentation_checkpoint / "unet", top)
    (top / "model_index.json").write_text(json.dumps({"default_denoising_steps": 7}))
    t = marigold.load(top, base=depth_checkpoint, device="cpu", dtype="fp32", cache_dir=tmp_path / "c")
    assert t.task == "segmentation" and t.default_denoising_steps == 7
    with pytest.raises(marigold.CheckpointError, match="`base`"):
        marigold.load(segmentation_checkpoint, base=depth_checkpoint, device="cpu", dtype="fp32")


def test_published_list_names_cocogold_with_its_base():
    from marigold.core.checkpoint import PUBLISHED, PUBLISHED_FACTS

    assert "pcuenq/marigold-coco-segmentation" in PUBLISHED
    facts = PUBLISHED_FACTS["pcuenq/marigold-coco-segmentation"]
    assert facts["task"] == "segmentation" and facts["base"] == "stabilityai/stable-diffusion-2"


# --- parity with the Cocogold fork's pipeline ---------------------------------------------------------------------

@torch.no_grad()
def _reference(folder: Path, photo: torch.Tensor, prompt: str, steps: int, seed: int) -> torch.Tensor:
    """A plain loop written from pcuenca/Marigold (branch cocogold) marigold/marigold_pipeline.py ``single_infer``
    and src/trainer/cocogold_trainer.py ``encode_prompt``: encoder mean × 0.18215, noise of the latent's shape from
    the generator, the prompt padded to 77 tokens, [rgb, noisy] into the UNet, DDIM steps, decode, (x+1)/2 clipped."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    tok = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    enc = CLIPTextModel.from_pretrained(folder / "text_encoder").eval()
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    text = enc(ids)[0]  # [1,77,D]
    rgb = photo * 2.0 - 1.0
    mean, _ = torch.chunk(vae.quant_conv(vae.encoder(rgb)), 2, dim=1)
    rgb_latent = mean * 0.18215
    gen = torch.Generator().manual_seed(seed)
    latent = torch.randn(rgb_latent.shape, generator=gen)
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        noise_pred = unet(torch.cat([rgb_latent, latent], dim=1), t, encoder_hidden_states=text).sample
        latent = scheduler.step(noise_pred, t, latent, generator=gen).prev_sample
    out = vae.decoder(vae.post_quant_conv(latent / 0.18215))
    return ((out.clip(-1.0, 1.0) + 1.0) / 2.0)  # [1,3,H,W]


def test_parity_with_a_loop_from_the_cocogold_pipeline(segmentation_checkpoint, tmp_path):
    model = marigold.load(segmentation_checkpoint, device="cpu", dtype="fp32", optimize=False, cache_dir=tmp_path)
    photo = _photo(3, 48, 64)
    ours = marigold.segment(model, photo, "clock", seed=5, num_inference_steps=3, processing_resolution=0,
                            tone_down=False).painted
    ref = _reference(segmentation_checkpoint, photo, "clock", 3, 5)
    assert (ours - ref).abs().max().item() < 1e-4


# --- bad input ------------------------------------------------------------------------------------------------------

def test_bad_prompts_are_one_line_each_naming_the_option(seg, depth_checkpoint):
    for bad, match in [("", "`prompt` is empty"), ("  ", "`prompt` is empty"), (None, "needs a `prompt`"),
                       ("a " * 80, "tokens long")]:
        with pytest.raises(marigold.InputError, match=match) as e:
            marigold.segment(seg, _photo(), bad)
        assert "\n" not in str(e.value)
    with pytest.raises(marigold.InputError, match="needs a `prompt`"):
        marigold.predict(seg, _photo())
    depth = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    with pytest.raises(marigold.InputError, match="takes no prompt"):
        marigold.segment(depth, _photo(), "car")
    with pytest.raises(marigold.InputError, match="`threshold`"):
        marigold.segment(seg, _photo(), "car", threshold=1.5)
    # one bad prompt among good ones: the others are still encoded
    got = marigold.prompt_embeddings(seg, ["cat", "", "a " * 80, "horse"])
    assert isinstance(got[""], marigold.InputError) and isinstance(got["a " * 80], marigold.InputError)
    assert got["cat"].shape == got["horse"].shape == (1, 77, 32)


# --- CLI --------------------------------------------------------------------------------------------------------------

def _cli(*args, cache):
    return subprocess.run([sys.executable, "-m", "marigold", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**__import__("os").environ, "MARIGOLD_CACHE": str(cache),
                                         "HF_HUB_OFFLINE": "1"}, timeout=300)


def test_cli_writes_a_mask_and_a_painted_image_per_prompt(segmentation_checkpoint, depth_checkpoint, tmp_path,
                                                          capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "out"
    r = _cli(photo, "-o", out, "--checkpoint", segmentation_checkpoint, "--prompt", "car", "--prompt",
             "dining table", "--prompt", "", "--threshold", "0.4", cache=tmp_path / "c")
    assert r.returncode == 1, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--prompt ''" in errors[0] and "empty" in errors[0]
    for slug in ("car", "dining-table"):
        mask = np.array(Image.open(out / f"photo_mask_{slug}.png"))
        assert mask.dtype == np.uint8 and mask.shape == (40, 56) and set(np.unique(mask)) <= {0, 255}
        assert np.array(Image.open(out / f"photo_painted_{slug}.png")).shape == (40, 56, 3)
    # the refusals, in process (each one line, exit status 2)
    from marigold.cli import main

    for args, needle in [(["--checkpoint", depth_checkpoint, "--prompt", "car"], "error: --prompt was given"),
                         (["--checkpoint", segmentation_checkpoint], "--prompt"),
                         (["--checkpoint", _unet_only(segmentation_checkpoint, tmp_path), "--prompt", "car"],
                          "--base")]:
        assert main([str(photo), "-o", str(out), "--cache-dir", str(tmp_path / "c"), *map(str, args)]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("error:") and needle in last


def _unet_only(checkpoint: Path, tmp_path: Path) -> Path:
    only = tmp_path / "only"
    shutil.copytree(checkpoint / "unet", only / "unet")
    return only
