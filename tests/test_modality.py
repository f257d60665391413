"""marigold.modality: one entry per modality, read by the loader, the sampler, the trainer's data code and the
CLI; the synthetic intrinsic layers; the IID loaders on fixtures in their published layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import marigold
from marigold.core import modality as mod
from marigold.errors import CheckpointError, InputError
from train.data.common import prepare, target_map
from train.data.synthetic import SyntheticDataset, render


def test_builtin_entries_describe_the_published_models():
    assert set(mod.MODALITIES) >= {"depth", "disparity", "normals", "iid-appearance", "iid-lighting"}
    app, light = mod.get("iid-appearance"), mod.get("iid-lighting")
    assert (app.unet_in_channels, app.unet_out_channels) == (12, 8)
    assert (light.unet_in_channels, light.unet_out_channels) == (16, 12)
    assert light.target_names == ["albedo", "shading", "residual"]
    # every published Marigold model takes the empty prompt; text-grounded segmentation (Cocogold) a prompt
    assert all(m.conditioning == "empty" for m in mod.MODALITIES.values() if m.name != "segmentation")
    assert mod.get("segmentation").conditioning == "prompt"
    # what a published folder's model_index.json says picks the entry
    assert mod.for_checkpoint({"_class_name": "MarigoldIntrinsicsPipeline",
                               "target_properties": {"target_names": ["albedo", "material"]}}) is app
    assert mod.for_checkpoint({"_class_name": "MarigoldDepthPipeline", "prediction_type": "disparity"}).name \
        == "disparity"
    with pytest.raises(InputError, match="unknown modality 'edges'"):
        mod.get("edges")
    with pytest.raises(CheckpointError, match="names modality 'nope'"):
        mod.for_checkpoint({"modality": "nope"})


def test_target_encode_decode_round_trip_and_srgb_curve():
    t = mod.Target("albedo", 3, "srgb")
    lin = np.full((4, 4, 3), 0.25, np.float32)
    enc = t.encode(lin)  # [3,H,W] -1..1 of 0.25^(1/2.2)
    assert enc.shape == (3, 4, 4)
    back = t.decode(torch.from_numpy(enc)[None])[0]
    np.testing.assert_allclose(back.numpy(), 0.25 ** (1 / 2.2), atol=1e-6)
    np.testing.assert_allclose(t.to_linear(back.numpy()), 0.25, atol=1e-5)
    one = mod.Target("edges", 1, "raw")
    assert one.encode(np.zeros((2, 2), np.float32)).shape == (3, 2, 2)
    assert one.decode(torch.zeros(1, 3, 2, 2)).shape == (1, 1, 2, 2)


def test_prompt_conditioning_needs_a_prompt(depth_checkpoint):
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    assert mod.text_embedding(model) is model.empty_text_embedding
    with pytest.raises(InputError, match="takes no text prompt"):
        mod.text_embedding(model, "a cat")
    seg = mod.Modality("seg-test", "seg-test", (mod.Target("mask", 1),), "MarigoldDepthPipeline", "depth",
                       conditioning="prompt")
    model.modality = seg
    with pytest.raises(InputError, match="give a text `prompt`"):
        mod.text_embedding(model)
    emb = mod.text_embedding(model, "a cat")  # the checkpoint's own text encoder on the prompt
    assert emb.shape[0] == 1 and emb.shape[-1] == model.empty_text_embedding.shape[-1]
    assert emb.shape[1] > model.empty_text_embedding.shape[1]  # more tokens than the empty prompt's two


def test_synthetic_layers_recompose_the_image():
    s = render(11, 24, 32, supersample=1, texture="flat", materials=True)
    t = s.targets
    assert set(t) >= {"albedo", "shading", "residual", "material", "normals"}
    diffuse = t["iid-lighting/albedo"]  # the lighting model's albedo: the diffuse reflectance
    rec = np.clip(diffuse * t["shading"] + t["residual"], 0, 1)
    np.testing.assert_allclose(rec, s.rgb, atol=1e-5)  # exact at pixel centres
    metal = t["material"][..., 1]  # [H,W]
    np.testing.assert_allclose(diffuse, t["albedo"] * (1 - metal[..., None]), atol=1e-6)
    assert t["residual"].max() > 0.01  # the highlight is there
    assert (t["material"][..., 2] == 0).all() and t["material"][..., 0].max() > 0.05
    plain = render(11, 24, 32, supersample=1, texture="flat")  # depth/normals runs: no highlight
    np.testing.assert_allclose(plain.rgb, np.clip(t["albedo"] * t["shading"], 0, 1), atol=1e-5)


def test_synthetic_metals_mirror_the_environment():
    # what makes metallicity learnable from the picture (train/data/synthetic.py's docstring): a metal wall
    # mirrors a gradient across itself although its Lambert shading is flat; a dielectric wall mirrors little
    metal_std, plain_std = [], []
    for i in range(12):
        s = render(i, 24, 32, supersample=1, texture="flat", materials=True)
        t = s.targets
        walls = s.labels == 2
        for value in np.unique(t["material"][..., 1][walls]):  # one metallicity: one wall (0: the dielectric ones)
            on = walls & (t["material"][..., 1] == value)
            on &= t["shading"][..., 0] == t["shading"][..., 0][on].max()  # of several, the one lit most
            if on.sum() < 20:
                continue
            assert np.ptp(t["shading"][on]) < 1e-6  # one plane: flat shading
            (metal_std if value > 0.5 else plain_std).append(t["residual"][on].mean(1).std())
    assert metal_std and plain_std
    assert min(metal_std) > 0.005 and np.median(metal_std) > 5 * np.median(plain_std)


def test_synthetic_metals_have_no_diffuse_term():
    # MATERIALS_VERSION 4: a metal reflects and does not scatter (every metallic workflow), so it shows no
    # Lambert shading of its base colour; the lighting model's albedo there is the diffuse reflectance, near 0,
    # the appearance model's the base colour (as InteriorVerse's albedo is)
    seen = 0
    for i in range(8):
        s = render(i, 24, 32, supersample=1, texture="flat", materials=True)
        t = s.targets
        metal = t["material"][..., 1] > 0.5  # [H,W]
        if metal.sum() < 10:
            continue
        seen += 1
        np.testing.assert_allclose(s.rgb[metal], np.clip(
            t["albedo"][metal] * (1 - t["material"][..., 1][metal, None]) * t["shading"][metal]
            + t["residual"][metal], 0, 1), atol=1e-5)
        assert t["iid-lighting/albedo"][metal].max() <= 0.4 * t["albedo"][metal].max() + 1e-6
    assert seen >= 2
    s = SyntheticDataset(1, 24, 32, "train", "flat", materials=True)[0]
    assert target_map(s, mod.get("iid-lighting"), "albedo") is s.targets["iid-lighting/albedo"]
    assert target_map(s, mod.get("iid-appearance"), "albedo") is s.targets["albedo"]


def test_synthetic_smooth_metals_mirror_sharp_stripes():
    # what makes roughness visible in the picture (MATERIALS_VERSION 3): the environment's stripes reach a
    # smooth metal plane sharp and a rough one blurred to their mean; the second differences of the residual
    # inside a plane (its mirrored detail, relative to its brightness) tell them apart by orders of magnitude
    detail = {True: [], False: []}
    for i in range(32):
        s = render(i, 48, 64, supersample=1, texture="flat", materials=True)
        t = s.targets
        planes = np.isin(s.labels, (0, 1, 2))  # floor, ceiling, walls
        for rough in np.unique(t["material"][..., 0][planes]):
            on = planes & (t["material"][..., 0] == rough) & (t["material"][..., 1] > 0.5)
            if on.sum() < 60 or 0.25 <= rough <= 0.5:
                continue
            on &= t["shading"][..., 0] == t["shading"][..., 0][on].max()  # one plane
            r = t["residual"].mean(2)  # [H,W]
            d2 = np.abs(np.diff(r, 2, axis=0))[on[2:] & on[1:-1] & on[:-2]]
            if d2.size >= 20:
                detail[rough < 0.25].append(d2.mean() / r[on].mean())
    assert len(detail[True]) >= 2 and len(detail[False]) >= 2
    assert np.median(detail[True]) > 20 * np.median(detail[False])


def test_prepare_stacks_targets_and_flips_normals():
    s = render(4, 16, 24, supersample=1, texture="flat", materials=True)
    out = prepare(s, "iid-lighting")
    assert out["target"].shape == (9, 16, 24) and out["target"].abs().max() <= 1
    np.testing.assert_allclose(out["target"][3:6].numpy(), s.targets["shading"].transpose(2, 0, 1) * 2 - 1,
                               atol=1e-6)
    flipped = prepare(s, "normals", flip=True)
    np.testing.assert_allclose(flipped["target"][0].numpy(), -s.normals[:, ::-1, 0], atol=1e-6)
    bad = render(4, 16, 24, supersample=1, texture="flat", materials=True)
    bad.targets["shading"] = np.full_like(bad.targets["shading"], np.nan)
    with pytest.raises(InputError, match="no valid pixel"):
        prepare(bad, "iid-lighting")
    del bad.targets["shading"]
    with pytest.raises(InputError, match="has no 'shading' target"):
        prepare(bad, "iid-lighting")


# ---------------------------------------------------------------------------------------------------------------
# The IID loaders on fixtures written in each data set's published layout and formats


def _write_exr_rgb(path: Path, rgb: np.ndarray) -> None:
    import OpenEXR

    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": np.ascontiguousarray(rgb, dtype=np.float32)}) as f:
        f.write(str(path))


def _write_h5(path: Path, x: np.ndarray) -> None:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=x)


def test_interiorverse_loader_reads_the_published_layout(tmp_path):
    from train.data.iid_sets import InteriorVerseDataset

    rng = np.random.default_rng(0)
    scene = tmp_path / "L3D124S8ENDIDQ4XQAUI5NGMLUF3P3XC888"
    albedo = rng.uniform(0, 1, (8, 12, 3)).astype(np.float32)
    material = rng.uniform(0, 1, (8, 12, 3)).astype(np.float32)
    mask = np.ones((8, 12, 3), np.float32)
    mask[0, 0] = 0
    _write_exr_rgb(scene / "000_im.exr", albedo * 2.0)
    _write_exr_rgb(scene / "000_albedo.exr", albedo)
    _write_exr_rgb(scene / "000_material.exr", material)
    _write_exr_rgb(scene / "000_mask.exr", mask)
    ds = InteriorVerseDataset(tmp_path)
    s = ds[0]
    assert ds.native_size == (8, 12) and len(ds) == 1
    np.testing.assert_allclose(s.targets["albedo"], albedo, atol=1e-6)
    assert (s.targets["material"][..., 2] == 0).all()
    np.testing.assert_allclose(s.targets["material"][..., :2], material[..., :2], atol=1e-6)
    assert not s.valid[0, 0] and s.valid.sum() == 8 * 12 - 1
    np.testing.assert_allclose(s.rgb, np.clip((albedo * 2) ** (1 / 2.2), 0, 1), atol=1e-5)
    out = prepare(s, "iid-appearance")  # albedo and material through the sRGB curve, as prs-eth trains them
    np.testing.assert_allclose(out["target"][:3].numpy().transpose(1, 2, 0)[1:, 1:],
                               (albedo ** (1 / 2.2) * 2 - 1)[1:, 1:], atol=1e-5)
    (scene / "000_material.exr").unlink()
    with pytest.raises(InputError, match="000_material.exr: missing material file"):
        ds[0]


def test_hypersim_iid_loader_reads_the_published_layout(tmp_path):
    from train.data.iid_sets import HypersimIIDDataset

    rng = np.random.default_rng(1)
    d = tmp_path / "ai_001_001" / "images" / "scene_cam_00_final_hdf5"
    albedo = rng.uniform(0.1, 0.9, (6, 8, 3)).astype(np.float32)
    shading = rng.uniform(0, 4, (6, 8, 3)).astype(np.float32)
    residual = rng.uniform(0, 1, (6, 8, 3)).astype(np.float32)
    albedo[0, 0] = 0  # all-zero albedo: invalid
    _write_h5(d / "frame.0000.color.hdf5", albedo * shading + residual)
    _write_h5(d / "frame.0000.diffuse_reflectance.hdf5", albedo)
    _write_h5(d / "frame.0000.diffuse_illumination.hdf5", shading)
    _write_h5(d / "frame.0000.residual.hdf5", residual)
    s = HypersimIIDDataset(tmp_path)[0]
    cut = max(np.percentile(shading, 98), np.percentile(residual, 98))
    np.testing.assert_allclose(s.targets["shading"], np.clip(shading, 0, cut) / cut, atol=1e-6)
    np.testing.assert_allclose(s.targets["residual"], np.clip(residual, 0, cut) / cut, atol=1e-6)
    assert s.targets["shading"].max() == pytest.approx(1.0) and not s.valid[0, 0] and s.valid.sum() == 47
    assert prepare(s, "iid-lighting")["target"].shape == (9, 6, 8)
    (d / "frame.0000.residual.hdf5").unlink()
    with pytest.raises(InputError, match="frame.0000.residual.hdf5: missing residual file"):
        HypersimIIDDataset(tmp_path)[0]


def test_normals_augmentations_touch_the_image_only_and_are_reproducible():
    from train.data.common import augment_rgb

    s = render(2, 32, 48, supersample=1)
    cfg = {"color_jitter_p": 1.0, "gaussian_blur_p": 1.0, "motion_blur_p": 1.0, "gaussian_blur_sigma": 4,
           "motion_blur_kernel_size": 11, "motion_blur_angle_range": 360, "jitter_brightness_factor": 0.5,
           "jitter_contrast_factor": 0.5, "jitter_saturation_factor": 0.5, "jitter_hue_factor": 0.2}
    a = augment_rgb(s.rgb, np.random.default_rng(5), cfg)
    b = augment_rgb(s.rgb, np.random.default_rng(5), cfg)
    np.testing.assert_array_equal(a, b)
    assert a.shape == s.rgb.shape and 0 <= a.min() and a.max() <= 1 and np.abs(a - s.rgb).mean() > 0.01
    # blurred: less high-frequency energy than the render
    assert np.abs(np.diff(a, axis=1)).mean() < np.abs(np.diff(s.rgb, axis=1)).mean()
    np.testing.assert_array_equal(augment_rgb(s.rgb, np.random.default_rng(5), {}), s.rgb)


@pytest.mark.parametrize("name,task", [("marigold_iid_appearance.yaml", "iid-appearance"),
                                       ("marigold_iid_lighting.yaml", "iid-lighting"),
                                       ("marigold_normals.yaml", "normals"), ("cpu_tiny_iid.yaml", "iid-lighting")])
def test_recipes_parse(name, task):
    from train.config import parse

    cfg = parse(["--config", str(Path(__file__).resolve().parents[1] / "train" / "configs" / name),
                 "--base", "sd2", "--output", "out"])
    assert cfg["task"] == task
    if name == "marigold_normals.yaml":
        assert cfg["augment"]["motion_blur_kernel_size"] == 11 and [d["prob"] for d in cfg["data"]] == [0.5, 0.49, 0.01]
    if name == "marigold_iid_lighting.yaml":
        assert cfg["lr"] == 8e-5 and cfg["batch_size"] * cfg["grad_accum"] == 32


def test_a_prompt_modality_runs_in_the_cli_through_its_entry(make_checkpoint, tmp_path, capsys):
    """The CLI asks a prompt modality's entry what to run per image and prompt (``predict_prompt``) and how to write
    it (``writer``): a toy entry that predicts the prompt's length runs without any other file knowing it."""
    from PIL import Image

    from conftest import as_segmentation_checkpoint
    from marigold.cli import main
    from marigold.core import image as img

    calls = []

    def predict_prompt(model, image, prompt, options, **sampling):
        calls.append((prompt, options["threshold"], sampling["num_inference_steps"]))
        x = img.to_tensor(image)  # [1,3,H,W]
        return torch.full_like(x[:, :1], len(prompt) / 10), None  # [1,1,H,W]

    def writer(m, p, out_dir, stem, options):
        path = out_dir / f"{stem}_{options['prompt']}.npy"
        np.save(path, p.numpy())
        return {"count": path}

    entry = mod.Modality("count", "count", (mod.Target("count", 1),), "MarigoldSegmentationPipeline", "count",
                         conditioning="prompt", predict_prompt=predict_prompt, writer=writer)
    mod.register(entry, replace=True)
    try:
        ckpt = as_segmentation_checkpoint(make_checkpoint("depth", copy_to=tmp_path / "ck"), modality="count")
        photo = tmp_path / "p.png"
        Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(photo)
        args = [str(photo), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt), "--steps", "1",
                "--threshold", "0.5", "--device", "cpu", "--dtype", "fp32"]
        assert main(args + ["--prompt", "ab", "--prompt", "abcd"]) == 0
        assert calls == [("ab", 0.5, 1), ("abcd", 0.5, 1)]
        got = np.load(tmp_path / "out" / "p_abcd.npy")
        assert got.shape == (1, 24, 32) and np.allclose(got, 0.4)
        mod.register(mod.Modality(**{**entry.__dict__, "predict_prompt": None}), replace=True)
        capsys.readouterr()
        assert main(args + ["--prompt", "ab"]) == 2  # an entry that says nothing for the CLI: one line
        err = capsys.readouterr().err.strip()
        assert "names no predict_prompt" in err and "\n" not in err
    finally:
        mod.MODALITIES.pop("count", None)
