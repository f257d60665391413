"""The supported dependency range (issue 22): one list of lower bounds, checked at import in one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from marigold import compat
from marigold.errors import DependencyError

ROOT = Path(__file__).resolve().parents[1]


def _bounds(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        m = re.match(r"\s*\"?([A-Za-z0-9_.-]+)\s*(>=|==)\s*([0-9][^\",;#\s]*)", line)
        if m:
            out[m.group(1).lower().replace("-", "_")] = m.group(3)
    return out


def test_the_lower_bounds_are_one_list():
    want = {k.lower(): v for k, v in compat.MINIMUM.items()}
    pyproject = _bounds((ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]")[0].splitlines())
    requirements = _bounds((ROOT / "requirements.txt").read_text().splitlines())
    oldest = _bounds((ROOT / ".ci" / "oldest.txt").read_text().splitlines())
    assert {k: pyproject[k] for k in want} == want
    assert oldest == want  # CI's second stage installs exactly the bounds
    # ComfyUI-Manager's file: the same bounds for what the nodes need (accelerate is the trainer's alone)
    assert {k: requirements[k] for k in want if k != "accelerate"} == {k: v for k, v in want.items() if k != "accelerate"}
    assert "accelerate" not in requirements


def test_a_too_old_package_is_one_line_naming_it_and_the_version_needed(monkeypatch):
    assert compat.too_old(compat.installed_versions()) == []  # this environment is new enough
    monkeypatch.setattr(compat, "installed_versions",
                        lambda: {**{k: v for k, v in compat.MINIMUM.items()}, "diffusers": "0.32.2"})
    with pytest.raises(DependencyError) as err:
        compat.check_versions()
    msg = str(err.value)
    assert "\n" not in msg and "diffusers 0.32.2" in msg and "diffusers>=0.33.0" in msg
    assert isinstance(err.value, ImportError)  # what a failed node-pack import shows in ComfyUI's log
    assert compat.too_old({"numpy": "1.24.0rc1", "pillow": "11.1.0.post1", "safetensors": None}) == []
    assert compat.too_old({"transformers": "4.39.3"})[0].startswith("transformers 4.39.3 is installed")


def test_import_marigold_with_an_old_package_fails_in_one_line(tmp_path):
    # a fake distribution of an old diffusers ahead of the real one on the path: `import marigold` stops there
    dist = tmp_path / "diffusers-0.30.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: diffusers\nVersion: 0.30.0\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    run = subprocess.run([sys.executable, "-c", "import marigold"], capture_output=True, text=True, env=env)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last == ("marigold.errors.DependencyError: diffusers 0.30.0 is installed but marigold-suite needs "
                    "diffusers>=0.33.0: pip install -U \"diffusers>=0.33.0\"")


def test_installing_our_requirements_moves_nothing_already_supported():
    """What ComfyUI-Manager runs, in this environment (CI runs this at the oldest versions too): pip's resolver
    must find every requirement satisfied and install or upgrade nothing (no index is even consulted)."""
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet", "--report",
                          "-", "-r", str(ROOT / "requirements.txt")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert [i["metadata"]["name"] for i in report["install"]] == []
