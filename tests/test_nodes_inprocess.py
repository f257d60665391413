"""Runs tests/nodes_inprocess_cases.py in ComfyUI's venv (real comfy modules: progress bar, interrupt, model
management), and checks the pack's install metadata with comfy-cli."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import nodes_comfyui as comfy

ROOT = Path(__file__).resolve().parents[1]


def test_in_process_node_cases_pass_with_real_comfy_modules(depth_checkpoint, make_checkpoint, tmp_path):
    py, comfy_dir = comfy.ensure()
    env = dict(os.environ, COMFYUI_DIR=str(comfy_dir), MARIGOLD_TINY_DEPTH=str(depth_checkpoint),
               MARIGOLD_TINY_ROLLINGDEPTH=str(make_checkpoint("rollingdepth")),
               CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "-c", os.devnull, str(ROOT / "tests" / "nodes_inprocess_cases.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert re.search(r"\b18 passed", r.stdout), r.stdout[-2000:]


def test_comfy_node_validate_passes():
    py, _ = comfy.ensure()
    cli = Path(py).parent / "comfy"
    r = subprocess.run([str(cli), "--skip-prompt", "--no-enable-telemetry", "node", "validate"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "validation checks passed" in r.stdout + r.stderr, r.stdout + r.stderr


def test_install_metadata():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["name"] != "comfyui-marigold"  # kijai's pack
    assert meta["tool"]["comfy"]["PublisherId"]
    reqs = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in reqs if r}
    assert names and not names & {"torch", "torchvision", "torchaudio"}
    assert not (ROOT / "install.py").exists()
    init = (ROOT / "__init__.py").read_text()
    assert "comfy_entrypoint" in init and "NODE_CLASS_MAPPINGS" not in init.replace(
        "Exporting NODE_CLASS_MAPPINGS", "")
