"""Lotus checkpoints (marigold.core.lotus) on Marigold's one path. No Lotus pipeline ships in diffusers: the reference
is a loop written here from EnVision-Research/Lotus pipeline.py (LotusGPipeline / LotusDPipeline.__call__) and
infer.py, on diffusers' own UNet and VAE read from the same folder: encode the photo, one UNet call at t = 999 with
the task switcher as class labels, decode, ``(x / 2 + 0.5).clamp(0, 1)``, the channels' mean for depth. One
difference, ours and documented: the photo's latent is the posterior's mode (theirs draws a sample)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image

from conftest import as_lotus_checkpoint

import marigold
from marigold.errors import CheckpointError, InputError

SIZE = 64  # the photo at the processing resolution: neither pipeline resizes or pads it


def _lotus(depth_checkpoint: Path, folder: Path, kind: str, index_extra: dict | None = None) -> Path:
    """A tiny Lotus checkpoint (conftest.as_lotus_checkpoint) in ``folder``, whose name is what it predicts."""
    shutil.copytree(depth_checkpoint, folder)
    return as_lotus_checkpoint(folder, kind, **(index_extra or {}))


def _photo() -> np.ndarray:
    g = np.random.default_rng(3)
    return g.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@torch.no_grad()
def _reference(folder: Path, photo: np.ndarray, text: torch.Tensor, kind: str, seed: int) -> torch.Tensor:
    """Their pipeline's steps on diffusers' modules → the decoded image in 0..1 ``[1,3,H,W]``."""
    unet = UNet2DConditionModel.from_pretrained(folder / "unet").eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae").eval()
    rgb = torch.tensor(photo).float().permute(2, 0, 1)[None] / 127.5 - 1.0  # infer.py
    sf = vae.config.scaling_factor
    rgb_latent = vae.encode(rgb).latent_dist.mode() * sf  # theirs: .sample()
    switch = torch.tensor([[1.0, 0.0]])
    task_emb = torch.cat([torch.sin(switch), torch.cos(switch)], dim=-1)  # infer.py: [sin 1, sin 0, cos 1, cos 0]
    if kind == "g":
        noise = torch.randn(rgb_latent.shape, generator=torch.Generator("cpu").manual_seed(seed))  # prepare_latents
        x = torch.cat([rgb_latent, noise], dim=1)
    else:
        x = rgb_latent
    x0 = unet(x, 999, encoder_hidden_states=text, class_labels=task_emb, return_dict=False)[0]
    image = vae.decode(x0 / sf, return_dict=False)[0]
    return (image / 2 + 0.5).clamp(0, 1)  # image_processor.postprocess (denormalise)


@pytest.mark.parametrize("kind", ["g", "d"])
def test_lotus_depth_is_their_pipeline_on_the_same_weights(depth_checkpoint, tmp_path, kind):
    folder = _lotus(depth_checkpoint, tmp_path / f"lotus-depth-{kind}-tiny", kind)
    model = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert (model.lotus, model.task, model.prediction_type, model.default_denoising_steps) == (kind, "depth", "depth", 1)
    photo = _photo()
    ref = _reference(folder, photo, model.empty_text_embedding, kind, seed=5).mean(1, keepdim=True)  # infer.py
    ours = marigold.predict(model, Image.fromarray(photo), processing_resolution=SIZE, seed=5).prediction
    assert ours.shape == ref.shape == (1, 1, SIZE, SIZE)
    assert float((ours - ref).abs().max()) < 1e-5
    other = marigold.predict(model, Image.fromarray(photo), processing_resolution=SIZE, seed=6).prediction
    if kind == "d":  # the photo's latent alone: no noise, the same answer whatever the seed
        assert torch.equal(other, ours)
    else:  # Lotus-G's noise half counts
        assert float((other - ours).abs().max()) > 1e-4
        ref6 = _reference(folder, photo, model.empty_text_embedding, kind, seed=6).mean(1, keepdim=True)
        assert float((other - ref6).abs().max()) < 1e-5


def test_lotus_normals_and_disparity_are_read_from_the_name(depth_checkpoint, tmp_path):
    folder = _lotus(depth_checkpoint, tmp_path / "lotus-normal-d-tiny", "d")
    model = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    assert (model.task, model.prediction_type) == ("normals", "normals")
    photo = _photo()
    ref = _reference(folder, photo, model.empty_text_embedding, "d", seed=0) * 2 - 1  # [1,3,H,W] in -1..1
    ref = ref / ref.norm(dim=1, keepdim=True).clamp(min=1e-6)
    ours = marigold.predict(model, Image.fromarray(photo), processing_resolution=SIZE).prediction
    assert ours.shape == (1, 3, SIZE, SIZE)
    assert float((ours - ref).abs().max()) < 1e-4
    disp = marigold.load(_lotus(depth_checkpoint, tmp_path / "lotus-depth-g-v2-1-disparity", "g"), device="cpu",
                         dtype="fp32", progress=False)
    assert (disp.task, disp.prediction_type) == ("depth", "disparity")
    # model_index.json's word wins over the name; a name that says nothing is refused in one line
    said = _lotus(depth_checkpoint, tmp_path / "mine", "g", {"prediction_type": "normals"})
    assert marigold.inspect(said)["task"] == "normals"
    with pytest.raises(CheckpointError, match='add "prediction_type": "depth", "disparity" or "normals"'):
        marigold.load(_lotus(depth_checkpoint, tmp_path / "unnamed", "g"), device="cpu", progress=False)


def test_lotus_runs_one_step_and_the_cli_writes_its_depth(depth_checkpoint, tmp_path):
    folder = _lotus(depth_checkpoint, tmp_path / "lotus-depth-g-tiny", "g")
    model = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
    with pytest.raises(InputError, match="trained at one timestep"):
        marigold.predict(model, Image.fromarray(_photo()), num_inference_steps=4, processing_resolution=SIZE)
    from marigold.cli import main

    Image.fromarray(_photo()).save(tmp_path / "room.png")
    assert main([str(tmp_path / "room.png"), "-o", str(tmp_path / "out"), "--checkpoint", str(folder),
                 "--processing-resolution", str(SIZE), "--dtype", "fp32", "--npy", "--seed", "0"]) == 0
    depth = np.load(tmp_path / "out" / "room_depth.npy")
    ref = _reference(folder, _photo(), model.empty_text_embedding, "g", seed=0).mean(1)[0].numpy()
    assert depth.shape == (SIZE, SIZE) and np.abs(depth - ref).max() < 1e-5


def test_the_published_lotus_repos_are_listed_with_what_they_predict():
    from marigold.core.lotus import LOTUS_REPOS
    from marigold.core.published import PUBLISHED_FACTS

    assert set(LOTUS_REPOS) <= set(marigold.PUBLISHED)
    assert PUBLISHED_FACTS["jingheya/lotus-normal-g-v1-1"] == {"task": "normals", "prediction_type": "normals"}
    assert PUBLISHED_FACTS["jingheya/lotus-depth-d-v2-0-disparity"]["prediction_type"] == "disparity"
    assert PUBLISHED_FACTS["jingheya/lotus-depth-g-v1-0"]["prediction_type"] == "depth"


def test_depth_completion_refuses_a_lotus_checkpoint_in_one_line(depth_checkpoint, tmp_path):
    model = marigold.load(_lotus(depth_checkpoint, tmp_path / "lotus-depth-g-tiny", "g"), device="cpu",
                          dtype="fp32", progress=False)
    sparse = np.full((SIZE, SIZE), np.nan, np.float32)
    sparse[10, 10], sparse[40, 50] = 1.0, 3.0
    with pytest.raises(InputError, match="is a Lotus checkpoint, trained at one timestep"):
        marigold.complete(model, Image.fromarray(_photo()), sparse)


def test_lotus_runs_through_tiles_and_video_mode(depth_checkpoint, tmp_path):
    """The paths that call the one sampler take a Lotus checkpoint as they are: tiles (a 2× working resolution) and
    Marigold's video mode (per-frame predictions co-aligned; the fusion off)."""
    model = marigold.load(_lotus(depth_checkpoint, tmp_path / "lotus-depth-d-tiny", "d"), device="cpu",
                          dtype="fp32", progress=False)
    big = Image.fromarray(np.kron(_photo(), np.ones((2, 2, 1), np.uint8)))  # 128×128
    tiled = marigold.predict_tiled(model, big, processing_resolution=SIZE, tile_factor=2)
    assert tiled.prediction.shape == (1, 1, 2 * SIZE, 2 * SIZE) and torch.isfinite(tiled.prediction).all()
    from marigold.video.pipeline import iter_video_depth

    frames = [_photo()] * 3
    out = list(iter_video_depth(model, frames, processing_resolution=SIZE, temporal_strength=0, frame_count=3))
    assert len(out) == 3 and all(f.value.shape == (1, SIZE, SIZE) for f in out)
    assert torch.allclose(out[0].value, out[2].value, atol=1e-5)  # the same photo, Lotus-D: the same map


def test_the_trainer_refuses_a_lotus_base_in_one_line(depth_checkpoint, tmp_path):
    from train.base import load_base

    with pytest.raises(CheckpointError, match="is a Lotus checkpoint; the trainer fine-tunes Stable Diffusion 2"):
        load_base(_lotus(depth_checkpoint, tmp_path / "lotus-depth-g-tiny", "g"), "depth")


def test_a_lotus_d_ensemble_samples_once_and_equals_one_member(depth_checkpoint, tmp_path):
    model = marigold.load(_lotus(depth_checkpoint, tmp_path / "lotus-depth-d-tiny", "d"), device="cpu",
                          dtype="fp32", progress=False)
    calls = []
    hook = model.unet.inner.register_forward_hook(lambda *a: calls.append(1))
    photo = Image.fromarray(_photo())
    one = marigold.predict(model, photo, processing_resolution=SIZE)
    three = marigold.predict(model, photo, processing_resolution=SIZE, ensemble_size=3, output_uncertainty=True)
    hook.remove()
    assert len(calls) == 2  # one UNet call per prediction
    assert torch.allclose(three.prediction, one.prediction, atol=1e-6)
    assert float(three.uncertainty.abs().max()) < 1e-6  # equal members: no spread
