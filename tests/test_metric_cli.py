"""``python -m marigold --sparse / --known``: metric depth files, 3D in metres, and every problem said before the
first image runs."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from marigold import cli
from marigold.io.images import load_sparse_depth


@pytest.fixture()
def photos(tmp_path):
    g = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    (tmp_path / "sp").mkdir()
    for n in ("a", "b"):
        Image.fromarray(g.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "in" / f"{n}.png")
    s = np.zeros((48, 64), np.float32)
    s.flat[g.choice(48 * 64, 80, replace=False)] = g.uniform(1, 4, 80)
    np.save(tmp_path / "sp" / "a.npy", s)
    Image.fromarray(np.round(s * 1000).astype(np.uint16)).save(tmp_path / "sp" / "b.png")  # millimetres
    return tmp_path, s


def test_sparse_folder_writes_metric_files_and_a_mesh_in_metres(depth_checkpoint, photos):
    tmp, s = photos
    out = tmp / "out"
    rc = cli.main([str(tmp / "in"), "-o", str(out), "--checkpoint", str(depth_checkpoint), "--sparse", str(tmp / "sp"),
                   "--complete-steps", "2", "--processing-resolution", "32", "--mesh", "glb", "--edge-threshold", "0"])
    assert rc == 0
    for stem in ("a", "b"):
        for suffix in ("_metric.npy", "_metric.exr", "_metric_16bit.png", "_metric.png", "_depth.png", "_mesh.glb"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
    d = np.load(out / "a_metric.npy")
    assert d.shape == (48, 64) and np.isfinite(d).all() and d.min() > 0
    mm = np.asarray(Image.open(out / "a_metric_16bit.png"), np.float32)
    assert np.abs(mm / 1000.0 - d).max() < 1e-3  # the 16-bit PNG is millimetres
    mesh = trimesh.load(out / "a_mesh.glb", force="mesh")
    assert abs(-mesh.vertices[:, 2].max() - d.min()) < 0.02 and abs(-mesh.vertices[:, 2].min() - d.max()) < 0.02


def test_known_points_fit(depth_checkpoint, photos, capsys):
    tmp, _ = photos
    out = tmp / "fit"
    rc = cli.main([str(tmp / "in" / "a.png"), "-o", str(out), "--checkpoint", str(depth_checkpoint), "--metric", "fit",
                   "--known", "3,4,2.0", "50,40,4.5", "--processing-resolution", "32"])
    assert rc == 0
    d = np.load(out / "a_metric.npy")
    assert abs(d[4, 3] - 2.0) < 1.5 and d.min() > 0  # a two-point line through a random model: near, not exact
    snapped = tmp / "fit_snap"
    rc = cli.main([str(tmp / "in" / "a.png"), "-o", str(snapped), "--checkpoint", str(depth_checkpoint), "--metric",
                   "fit", "--snap", "--known", "3,4,2.0", "50,40,4.5", "--processing-resolution", "32"])
    assert rc == 0
    ds = np.load(snapped / "a_metric.npy")
    miss, miss_snapped = abs(d[4, 3] - 2.0) + abs(d[40, 50] - 4.5), abs(ds[4, 3] - 2.0) + abs(ds[40, 50] - 4.5)
    assert miss_snapped < 0.2 * miss + 1e-3  # drawn to the known distances


@pytest.mark.parametrize("extra,match", [
    (["--sparse", "MISSING"], "no such file or folder"),
    (["--sparse", "SP_ONE"], "is one file for 2 images"),
    (["--sparse", "SP_PARTIAL"], "no sparse depth for 1 image"),
    (["--known", "1,2"], "x,y,depth"),
    (["--complete-steps", "3"], "need --sparse or --known"),
    (["--no-snap"], "need --sparse or --known"),
    (["--known", "1,2,3", "--tile"], "do not combine with --tile"),
])
def test_problems_are_said_before_any_image_runs(depth_checkpoint, photos, monkeypatch, capsys, extra, match):
    tmp, _ = photos
    partial = tmp / "partial"
    partial.mkdir()
    np.save(partial / "a.npy", np.ones((48, 64), np.float32))
    extra = [{"MISSING": str(tmp / "nope"), "SP_ONE": str(tmp / "sp" / "a.npy"), "SP_PARTIAL": str(partial)}.get(x, x)
             for x in extra]
    calls = []
    import marigold.cli_parts.images as images
    import marigold.core.predict as predict

    monkeypatch.setattr(images, "metric_depth", lambda *a, **k: calls.append("metric"))
    monkeypatch.setattr(predict, "predict", lambda *a, **k: calls.append("predict"))
    rc = cli.main([str(tmp / "in"), "-o", str(tmp / "o"), "--checkpoint", str(depth_checkpoint), *extra])
    assert rc == 2 and calls == []
    assert match in capsys.readouterr().err


def test_sparse_files_read_in_their_units(tmp_path):
    s = np.zeros((4, 5), np.float32)
    s[1, 2] = 2.345
    Image.fromarray(np.round(s * 1000).astype(np.uint16)).save(tmp_path / "s.png")
    assert load_sparse_depth(tmp_path / "s.png")[1, 2] == pytest.approx(2.345)
    np.save(tmp_path / "s.npy", np.where(s > 0, s, np.nan))
    assert load_sparse_depth(tmp_path / "s.npy")[1, 2] == pytest.approx(2.345)
    assert load_sparse_depth(tmp_path / "s.npy")[0, 0] == 0  # NaN = unmeasured
    Image.fromarray((s * 50).astype(np.uint8)).save(tmp_path / "s8.png")
    from marigold.errors import InputError

    with pytest.raises(InputError, match="16-bit"):
        load_sparse_depth(tmp_path / "s8.png")
