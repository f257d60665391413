"""Every input form is converted or refused with a message a user understands, never a torch traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import marigold
from marigold.core import image as img


@pytest.fixture(scope="module")
def model(depth_checkpoint):
    return marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)


def _run(model, x, **kw):
    return marigold.predict_depth(model, x, processing_resolution=kw.pop("processing_resolution", 32), seed=0,
                                  **kw).prediction


def test_rgba_grey_and_16bit_are_converted(model, tmp_path):
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    base = _run(model, Image.fromarray(rgb))
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 77, np.uint8)], axis=2)
    assert torch.equal(_run(model, Image.fromarray(rgba)), base)  # alpha dropped
    assert torch.equal(_run(model, rgba), base)
    grey = rgb[..., 0]
    g1 = _run(model, Image.fromarray(grey))
    assert torch.equal(g1, _run(model, np.repeat(grey[..., None], 3, axis=2)))
    sixteen = (rgb.astype(np.uint16) * 257)  # 16-bit RGB array, same picture
    assert (_run(model, sixteen) - base).abs().max() < 1e-5
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 16-bit greyscale PNG file
    assert (_run(model, str(tmp_path / "g16.png")) - g1).abs().max() < 1e-5
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert torch.equal(_run(model, tmp_path / "rgba.png"), base)
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert _run(model, tmp_path / "palette.png").shape == (1, 1, 20, 30)


def test_batch_of_images_and_tensor_forms(model):
    x = torch.rand(2, 3, 20, 30)
    batch = _run(model, x, ensemble_size=1)
    assert batch.shape == (2, 1, 20, 30)
    assert torch.allclose(_run(model, [x[0], x[1]]), batch)
    assert torch.allclose(_run(model, (x * 255).round().to(torch.uint8)[0]),
                          _run(model, ((x * 255).round() / 255)[0]), atol=1e-6)


@pytest.mark.parametrize("bad,match", [
    (torch.full((1, 3, 16, 16), float("nan")), "NaN"),
    (torch.rand(1, 3, 16, 16) * 2, "0..1"),
    (np.zeros((16, 16, 3), np.int16), "signed"),
    (np.zeros((16, 16, 3), bool), "not an image"),
    (np.zeros((16, 16, 5), np.uint8), "5 channels"),
    (np.zeros((1, 1, 3), np.uint8), "at least 8 pixels"),
    (np.zeros((2, 3000, 3), np.uint8), "at least 8 pixels"),
    ("no/such/file.png", "no such file"),
    (12345, "Unsupported image type"),
    ([torch.rand(3, 8, 8), torch.rand(3, 16, 16)], "share a size"),
])
def test_bad_images(model, bad, match):
    with pytest.raises(marigold.InputError, match=match):
        _run(model, bad, processing_resolution=0 if isinstance(bad, np.ndarray) and bad.shape[0] == 1 else 32)


def test_non_image_and_truncated_files(model, tmp_path):
    (tmp_path / "notes.png").write_text("this is text")
    with pytest.raises(marigold.InputError, match="not an image"):
        _run(model, tmp_path / "notes.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "cut.jpg")
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(marigold.InputError, match="truncated|cannot be decoded"):
        marigold.load_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize("kw,match", [
    (dict(processing_resolution=100), "multiple of 8"),
    (dict(processing_resolution=-8), "0 \\(native\\) or a positive"),
    (dict(ensemble_size=0), "ensemble_size"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(resample_method_input="lanczos"), "resample_method_input"),
    (dict(resample_method_output="cubic"), "resample_method_output"),
    (dict(seed="seven"), "seed"),
])
def test_bad_options(model, kw, match):
    with pytest.raises(marigold.InputError, match=match):
        marigold.predict_depth(model, torch.rand(1, 3, 16, 16), **kw)


def test_progress_and_cancel(model):
    calls = []
    marigold.predict(model, torch.rand(1, 3, 16, 16), num_inference_steps=3, ensemble_size=2, batch_size=1,
                     processing_resolution=0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 6) for i in range(1, 7)]

    n = {"steps": 0}

    def cancel_after_two():
        if n["steps"] == 2:
            raise marigold.Cancelled("stopped by the user")
        n["steps"] += 1

    with pytest.raises(marigold.Cancelled):
        marigold.predict(model, torch.rand(1, 3, 16, 16), num_inference_steps=4, processing_resolution=0,
                         check_cancel=cancel_after_two)
    assert n["steps"] == 2


def test_seed_reproducible_and_options(model):
    x = torch.rand(1, 3, 21, 34)
    a = _run(model, x, num_inference_steps=2)
    assert torch.equal(a, _run(model, x, num_inference_steps=2))
    assert not torch.equal(a, marigold.predict_depth(model, x, processing_resolution=32, seed=1,
                                                     num_inference_steps=2).prediction)
    small = marigold.predict_depth(model, x, processing_resolution=32, match_input_resolution=False).prediction
    assert small.shape == (1, 1, 19, 32)  # longest side = processing resolution, padding removed
    nearest = marigold.predict_depth(model, x, processing_resolution=32, resample_method_output="nearest",
                                     seed=0).prediction
    assert nearest.shape == (1, 1, 21, 34)


def test_processing_size_and_padding():
    assert img.processing_size((480, 640), 768) == (576, 768)
    assert img.processing_size((37, 53), 0) == (37, 53)
    assert img.padded_size((37, 53)) == (40, 56)
    x, pad = img.preprocess(torch.rand(1, 3, 37, 53), 0, "bilinear")
    assert x.shape == (1, 3, 40, 56) and pad == (3, 3) and x.min() >= -1 and x.max() <= 1
    assert img.unpad(x, pad).shape == (1, 3, 37, 53)
    # bf16 input to the resize still resizes (in fp32)
    assert img.resize(torch.rand(1, 1, 40, 40).bfloat16(), (20, 20), "bilinear", True).dtype == torch.float32


def test_comfy_image_round_trip():
    x = torch.rand(2, 10, 12, 4)  # [B,H,W,C] with alpha
    t = img.from_bhwc(x)
    assert t.shape == (2, 3, 10, 12) and torch.equal(t, x[..., :3].permute(0, 3, 1, 2))
    back = img.to_bhwc(t[:, :1])
    assert back.shape == (2, 10, 12, 3)
