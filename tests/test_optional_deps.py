"""A missing optional package is one line naming the extra to install, at every entry point; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marigold.errors import MarigoldError
from marigold.optional import MissingDependency, require

ROOT = Path(__file__).resolve().parents[1]
# what `pip install marigold-suite` without the [train] extra lacks (None in sys.modules makes an import fail)
WITHOUT_TRAIN = ("tensorboard", "torch.utils.tensorboard", "h5py", "skimage", "scipy")
RUN_WITHOUT = (
    "import runpy, sys\n"
    "for m in {mods!r}: sys.modules[m] = None\n"
    "sys.argv = [{module!r}] + {args!r}\n"
    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
)


def run_without(module: str, args: list[str], mods=WITHOUT_TRAIN) -> subprocess.CompletedProcess:
    code = RUN_WITHOUT.format(mods=mods, module=module, args=args)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args", [[], ["--base", "nowhere", "--output", "x"]])
def test_finetune_without_the_train_extra_is_one_line(args):
    r = run_without("train.finetune", args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "marigold-suite[train]" in lines[0] and "tensorboard" in lines[0]


def test_finetune_synthetic_data_without_scikit_image_is_one_line():
    r = run_without("train.finetune", ["--base", "nowhere", "--output", "x"], mods=("skimage",))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "scikit-image" in r.stderr and "[train]" in r.stderr


def test_evaluate_middlebury_without_scikit_image_is_one_line(depth_checkpoint):
    r = run_without("train.evaluate", ["--checkpoint", str(depth_checkpoint), "--dataset", "middlebury"],
                    mods=("skimage",))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "scikit-image" in r.stderr and "marigold-suite[train]" in r.stderr


def test_require_names_the_extra_and_is_a_marigold_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingDependency) as e:
        require("h5py", "train", "Reading HDF5 files")
    assert isinstance(e.value, MarigoldError)
    assert str(e.value).startswith("Reading HDF5 files needs h5py") and "'marigold-suite[train]'" in str(e.value)


def test_a_broken_package_is_not_blamed_on_the_extra(tmp_path, monkeypatch):
    """A package that is installed but fails inside its own imports shows its real error."""
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("import a_module_that_does_not_exist_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="a_module_that_does_not_exist_xyz"):
        require("brokenpkg", "train", "Something")
