"""Post-processing and files: 16-bit PNG on current Pillow, .npy, colormaps, normals, geometry, the CLI."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

import marigold
from marigold.io import colorize, images as io


def test_16bit_png_is_depth_times_65535(tmp_path):
    d = torch.rand(1, 1, 23, 31)
    path = io.save_depth_16bit(d, tmp_path / "d.png")
    with Image.open(path) as im:
        assert im.mode.startswith("I;16") or im.mode == "I"
        arr = np.asarray(im).astype(np.int64)
    assert arr.shape == (23, 31)
    assert np.array_equal(arr, (d[0, 0].numpy() * 65535).astype(np.uint16).astype(np.int64))
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_16bit_png_refuses_nan_and_clips(tmp_path):
    with pytest.raises(marigold.InputError, match="NaN"):
        io.save_depth_16bit(torch.tensor([[float("nan")]]), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    u = io.depth_to_uint16(np.array([[-0.5, 0.0, 1.0, 2.0]]))
    assert u.tolist() == [[0, 0, 65535, 65535]]


def test_npy_and_rgb(tmp_path):
    d = torch.rand(1, 1, 5, 6)
    np.testing.assert_array_equal(np.load(io.save_npy(d, tmp_path / "d.npy")), d[0, 0].numpy())
    rgb = torch.rand(3, 5, 6)
    with Image.open(io.save_rgb(rgb, tmp_path / "c.png")) as im:
        assert im.mode == "RGB" and im.size == (6, 5)


def test_colorize_matches_matplotlib():
    d = torch.linspace(0, 1, 1000).view(1, 1, 20, 50)
    for cmap in ("Spectral", "magma", "gray"):
        ours = colorize.colorize_depth(d, cmap)[0].permute(1, 2, 0).numpy()
        ref = matplotlib.colormaps[cmap](d[0, 0].numpy())[..., :3]
        np.testing.assert_allclose(ours, ref, atol=1e-6)
    inv = colorize.colorize_depth(d, "gray", invert=True)
    assert inv[0, :, 0, 0].tolist() == pytest.approx([1.0, 1.0, 1.0])  # near (0) is white for ControlNet
    with pytest.raises(marigold.InputError, match="colormap"):
        colorize.colorize_depth(d, "no-such-map")


def test_colorize_percentile_and_range():
    d = torch.linspace(0, 10, 101).view(1, 1, 1, 101)
    stretched = colorize.normalize_range(d, percentile=(10, 90))
    assert stretched[0, 0, 0, 10].item() == pytest.approx(0.0, abs=1e-6)
    assert stretched[0, 0, 0, 90].item() == pytest.approx(1.0, abs=1e-6)
    fixed = colorize.normalize_range(d, value_range=(0, 10))
    assert fixed[0, 0, 0, 50].item() == pytest.approx(0.5)


def test_normals_rgb_and_uncertainty():
    n = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert colorize.normals_to_rgb(n)[0, :, 0, 0].tolist() == [0.5, 0.5, 1.0]
    assert colorize.normals_to_rgb(n, flip_z=True)[0, :, 0, 0].tolist() == [0.5, 0.5, 0.0]
    u = colorize.uncertainty_to_gray(torch.linspace(0, 1, 100).view(1, 1, 10, 10))
    assert u.max() == 1.0 and u.min() == 0.0


def test_depth_to_normals_of_a_plane():
    # a fronto-parallel plane (constant depth) faces the camera
    n = marigold.depth_to_normals(torch.full((1, 1, 16, 16), 0.5))
    assert torch.allclose(n[0, :, 8, 8], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    # depth growing to the right: the surface turns away, its normal points right-ish... to +x, facing us
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 1, 32, 32)
    n = marigold.depth_to_normals(ramp, fov_degrees=60)
    assert n[0, 0, 16, 16] > 0.1 and n[0, 2, 16, 16] > 0
    assert torch.allclose(n.norm(dim=1), torch.ones(1, 32, 32), atol=1e-5)
    # depth growing upwards in the image (floor receding): normal points up
    floor = torch.linspace(1, 0, 32).view(1, 1, 32, 1).expand(1, 1, 32, 32)
    assert marigold.depth_to_normals(floor)[0, 1, 16, 16] > 0.1
    with pytest.raises(marigold.InputError):
        marigold.depth_to_normals(ramp, fov_degrees=0)


def _write_photos(folder):
    from skimage import data

    folder.mkdir()
    Image.fromarray(data.astronaut()[::4, ::4]).save(folder / "astronaut.png")
    Image.fromarray(data.coffee()[::4, ::4]).convert("RGBA").save(folder / "coffee.png")
    Image.fromarray(data.camera()[::4, ::4]).save(folder / "camera.jpg")  # greyscale


def test_cli_writes_the_promised_files(depth_checkpoint, tmp_path):
    _write_photos(tmp_path / "in")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "marigold", str(tmp_path / "in"), "-o", str(out),
                        "--checkpoint", str(depth_checkpoint), "--processing-resolution", "64", "--ensemble", "3",
                        "--seed", "1", "--dtype", "fp32", "--npy", "--exr", "--uncertainty"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for stem in ("astronaut", "coffee", "camera"):
        with Image.open(out / f"{stem}_depth.png") as c:
            assert c.mode == "RGB"
        with Image.open(out / f"{stem}_depth_16bit.png") as d:
            arr = np.asarray(d)
            assert arr.dtype == np.uint16 and arr.shape == (c.size[1], c.size[0])
        assert (out / f"{stem}_depth.npy").is_file() and (out / f"{stem}_uncertainty.png").is_file()
        np.testing.assert_array_equal(io.read_exr(out / f"{stem}_depth.exr"), np.load(out / f"{stem}_depth.npy"))
    # the same seed through the library gives the same 16-bit file
    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32", progress=False)
    pred = marigold.predict(model, marigold.load_image(tmp_path / "in" / "astronaut.png"),
                            processing_resolution=64, ensemble_size=3, seed=1).prediction
    with Image.open(out / "astronaut_depth_16bit.png") as d:
        diff = np.abs(np.asarray(d).astype(np.int64) - io.depth_to_uint16(pred).astype(np.int64))
        # bit-equal floats would give equal files; across processes oneDNN may order sums differently
        assert diff.max() <= 1 and (diff > 0).mean() < 0.05


def test_cli_reports_bad_files_and_keeps_going(depth_checkpoint, tmp_path):
    _write_photos(tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_text("not a png")
    r = subprocess.run([sys.executable, "-m", "marigold", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                        "--checkpoint", str(depth_checkpoint), "--processing-resolution", "32"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "broken.png: not an image" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "out" / "astronaut_depth_16bit.png").is_file()
    r = subprocess.run([sys.executable, "-m", "marigold", str(tmp_path / "in"), "-o", str(tmp_path / "o2"),
                        "--checkpoint", str(tmp_path / "nothing-here")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_cli_normals_and_intrinsics(make_checkpoint, tmp_path):
    _write_photos(tmp_path / "in")
    for name, suffixes in (("normals", ["normals"]), ("iid-lighting", ["albedo", "shading", "residual"])):
        r = subprocess.run([sys.executable, "-m", "marigold", str(tmp_path / "in" / "coffee.png"), "-o",
                            str(tmp_path / name), "--checkpoint", str(make_checkpoint(name)),
                            "--processing-resolution", "32"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        for s in suffixes:
            assert (tmp_path / name / f"coffee_{s}.png").is_file()


def test_exr_round_trip_keeps_float_depth_exactly(tmp_path):
    depth = torch.rand(1, 1, 37, 53) * 80.0  # metric-like values well above 1: EXR keeps them as they are
    path = io.save_exr(depth, tmp_path / "d.exr")
    back = io.read_exr(path)
    assert back.shape == (37, 53) and back.dtype == np.float32
    np.testing.assert_array_equal(back, depth[0, 0].numpy())
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temp file left behind


def test_exr_reader_refuses_a_non_exr_file_clearly(tmp_path):
    bad = tmp_path / "x.exr"
    bad.write_bytes(b"not an exr")
    with pytest.raises(marigold.MarigoldError, match="not a readable OpenEXR"):
        io.read_exr(bad)
