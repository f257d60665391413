"""Old module paths of before the layout by part still import, with a DeprecationWarning naming the new one
(issue #37 item 3): ``from marigold.ensemble import ensemble_depth`` is what users wrote."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import marigold
from marigold.moved import ALIASES, MOVED, PACKAGE_NAMES

ROOT = Path(__file__).resolve().parents[1]


def test_from_the_old_ensemble_module_import_ensemble_depth(monkeypatch):
    monkeypatch.delitem(sys.modules, "marigold.ensemble", raising=False)
    with pytest.warns(DeprecationWarning, match=r"`marigold\.ensemble` moved to `marigold\.core\.ensemble`"):
        from marigold.ensemble import ensemble_depth
    assert ensemble_depth is marigold.ensemble_depth


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_module_is_the_moved_module(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = importlib.import_module(old)
    new = importlib.import_module(MOVED[old])
    assert module is new and new.__spec__.name == MOVED[old]  # one module, its own spec kept


def test_old_paths_do_not_replace_the_public_functions_of_the_same_name(monkeypatch):
    """marigold.predict, .relief, .segment and .stereo are functions and were old modules too."""
    for name in ("predict", "relief", "segment", "stereo"):
        monkeypatch.delitem(sys.modules, f"marigold.{name}", raising=False)
        with pytest.warns(DeprecationWarning):
            importlib.import_module(f"marigold.{name}")
        assert isinstance(getattr(marigold, name), types.FunctionType), name
    from marigold.predict import predict_depth  # the module's names, from the cached old path: no second warning
    assert predict_depth is marigold.predict_depth


@pytest.mark.parametrize("package", sorted(PACKAGE_NAMES))
def test_the_names_of_the_flat_modules_that_became_packages(package, monkeypatch):
    home, names = PACKAGE_NAMES[package]
    pkg = importlib.import_module(package)
    for name in names:
        monkeypatch.delitem(pkg.__dict__, name, raising=False)
        with pytest.warns(DeprecationWarning, match=rf"`{home}\.{name}`"):
            got = getattr(pkg, name)
        assert got is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError):  # what `from package import no_such_name` meets (as ImportError)
        getattr(pkg, "no_such_name")


def test_public_module_names_are_aliases_without_a_warning(recwarn, monkeypatch):
    for old, new in ALIASES.items():
        monkeypatch.delitem(sys.modules, old, raising=False)
        assert importlib.import_module(old) is importlib.import_module(new)
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    from marigold.modality import register
    assert register is marigold.modality.register


def test_unknown_modules_still_fail():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("marigold.nonexistent")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("marigold.video.video_io")  # an old name under a new folder is no old path


def test_a_script_sees_the_warning_and_plain_import_imports_no_old_path():
    code = ("import sys, marigold; from marigold.moved import MOVED; "
            "assert not [m for m in MOVED if m in sys.modules], 'an old path was imported eagerly'; "
            "from marigold.mesh import depth_to_mesh; assert depth_to_mesh is marigold.depth_to_mesh")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # shown by Python's default filters (the warning is attributed to the script's import line, __main__)
    assert "<string>:1: DeprecationWarning: `marigold.mesh` moved to `marigold.geometry.mesh`" in r.stderr
