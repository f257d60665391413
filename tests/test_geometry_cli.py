"""The CLI's 3D outputs: --relief, --mesh, --points write files that reopen as what they promise."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from PIL import Image

from marigold import cli
from marigold.geometry.relief import DEFAULTS, relief


def test_cli_defaults_are_the_librarys():
    sig = inspect.signature(relief).parameters
    assert cli.RELIEF == DEFAULTS == {k: sig[k].default for k in DEFAULTS}
    args = cli.parse_args(["x.png", "-o", "out"])
    assert (args.relief_size_mm, args.relief_resolution, args.embossing, args.median_size, args.frame_mm,
            args.frame_near_mm, args.back_mm) == (100.0, 512, 20.0, 3, 5.0, 1.0, 1.0)
    assert not cli.wants_geometry(args)


def test_cli_writes_relief_mesh_and_points(depth_checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "in" / "photo.png")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "marigold", str(tmp_path / "in" / "photo.png"), "-o", str(out),
                        "--checkpoint", str(depth_checkpoint), "--processing-resolution", "32", "--dtype", "fp32",
                        "--relief", "stl", "--relief-resolution", "96", "--relief-size-mm", "50", "--embossing",
                        "10", "--mesh", "glb", "--points"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (out / "photo_depth_16bit.png").is_file()
    solid = trimesh.load(out / "photo_relief.stl", force="mesh")
    assert solid.is_watertight and solid.volume > 0
    assert max(solid.extents[:2]) == pytest.approx(50.0, abs=0.1)
    assert solid.extents[2] == pytest.approx(1.0 + 5.0 + 1.0, abs=1e-4)
    assert len(solid.vertices) == 96 * 72 + 3 * (2 * (96 + 72) - 4) + 1
    scene = trimesh.load(out / "photo_mesh.glb", force="mesh")
    assert len(scene.vertices) == 48 * 64 and len(scene.visual.vertex_colors) == 48 * 64
    points = trimesh.load(out / "photo_points.ply")
    assert isinstance(points, trimesh.PointCloud) and len(points.vertices) == 48 * 64


def test_cli_refuses_bad_relief_options_with_a_message(depth_checkpoint, tmp_path):
    Image.new("RGB", (40, 30), (90, 120, 200)).save(tmp_path / "p.png")
    r = subprocess.run([sys.executable, "-m", "marigold", str(tmp_path / "p.png"), "-o", str(tmp_path / "o"),
                        "--checkpoint", str(depth_checkpoint), "--processing-resolution", "32", "--relief", "obj",
                        "--plane-near", "0.7", "--plane-far", "0.3"], capture_output=True, text=True, timeout=300)
    # refused before any depth is predicted (tests/test_cli_checks.py), naming the options typed
    assert r.returncode == 2 and "--plane-near < --plane-far" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "p_depth_16bit.png").exists() and not (tmp_path / "o" / "p_relief.obj").exists()


def test_geometry_bench_runs_end_to_end(tmp_path):
    """The harness only (speed is measured by `python -m bench.geometry`, never in a test)."""
    import json
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "bench.geometry", "--size", "48", "--rounds", "1", "--out",
                    str(tmp_path)], cwd=root, check=True, capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(root)})
    r = json.loads((tmp_path / "geometry.json").read_text())
    assert r["size"] == [48, 36] and r["relief"]["watertight"]
    assert r["mesh"]["vertices"] == 48 * 36 and all(v["median_s"] >= 0 for v in r["rows"].values())
    assert "| Python loop over the pixels |" in (tmp_path / "geometry.md").read_text()
