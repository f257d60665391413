"""Every CLI option is checked before the checkpoint loads or any image is predicted (issue #37, item 6): a bad
--divergence on a folder of 500 photos is one line at once, not 500 depth runs and then a refusal each."""

from __future__ import annotations

import pytest
from PIL import Image

import marigold.core.checkpoint as checkpoint_mod
import marigold.core.predict as predict_mod
from marigold import cli
from marigold.errors import MarigoldError

LOADED = "the checkpoint was loaded"


@pytest.fixture
def folder(tmp_path):
    """A folder of three photos and one of frames (a clip under --video)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 30), (30 * i, 90, 200)).save(photos / f"p{i}.png")
    return photos


@pytest.fixture
def calls(monkeypatch):
    """load and predict count their calls; load then stops the run with one line, so reaching it is visible."""
    seen = {"load": 0, "predict": 0}

    def load(*a, **k):
        seen["load"] += 1
        raise MarigoldError(LOADED)

    def predict(*a, **k):
        seen["predict"] += 1
        raise AssertionError("an image was predicted")

    monkeypatch.setattr(checkpoint_mod, "load", load)
    monkeypatch.setattr(predict_mod, "predict", predict)
    return seen


BAD = [
    (["--stereo", "sbs", "--divergence", "-1"], "--divergence"),
    (["--stereo", "anaglyph", "--convergence", "2"], "--convergence"),
    (["--stereo", "tb", "--stereo-far-over-near", "1"], "--stereo-far-over-near"),
    (["--relief", "obj", "--plane-near", "0.7", "--plane-far", "0.3"], "--plane-near"),
    (["--relief", "stl", "--embossing", "200"], "--embossing"),
    (["--relief", "stl", "--relief-size-mm", "0"], "--relief-size-mm"),
    (["--relief", "stl", "--frame-mm", "60"], "--frame-mm"),
    (["--relief", "stl", "--back-mm", "0"], "--back-mm"),
    (["--relief", "stl", "--relief-resolution", "1"], "--relief-resolution"),
    (["--mesh", "glb", "--fov", "0"], "--fov"),
    (["--mesh", "glb", "--edge-threshold", "-1"], "--edge-threshold"),
    (["--mesh", "ply", "--mesh-resolution", "1"], "--mesh-resolution"),
    (["--points", "--far-over-near", "0.5"], "--far-over-near"),
    (["--steps", "0"], "--steps"),
    (["--ensemble", "0"], "--ensemble"),
    (["--batch-size", "0"], "--batch-size"),
    (["--processing-resolution", "30"], "--processing-resolution"),
    (["--colormap", "no-such-map"], "--colormap"),
    (["--prompt", "car", "--threshold", "2"], "--threshold"),
    (["--tile", "--tile-factor", "0", "--processing-resolution", "32"], "--tile-factor"),
    (["--tile-overlap", "8"], "--tile"),
    (["--video", "--dilations", "2,5"], "--dilations"),
    (["--video", "--dilations", "1,x"], "--dilations"),
    (["--video", "--snippet-length", "0"], "--snippet-length"),
    (["--video", "--refine-steps", "-1"], "--refine-steps"),
    (["--video", "--fps", "0"], "--fps"),
]


@pytest.mark.parametrize("bad, option", BAD, ids=[" ".join(b) for b, _ in BAD])
def test_a_bad_option_is_refused_before_the_model_loads(bad, option, folder, calls, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([str(folder), "-o", str(out), *bad]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and option in lines[0], err
    assert LOADED not in err and calls == {"load": 0, "predict": 0}
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("good", [
    ["--stereo", "sbs", "--divergence", "4", "--convergence", "0"],
    ["--relief", "stl", "--mesh", "glb", "--points", "--embossing", "10", "--mesh-resolution", "0"],
    ["--video", "--dilations", "1,3", "--refine-steps", "0", "--fps", "8", "--colormap", "magma"],
    ["--tile", "--tile-factor", "3"],
    ["--prompt", "car", "--threshold", "0.9"],
])
def test_good_options_reach_the_checkpoint(good, folder, calls, tmp_path, capsys):
    """The control: with every option in range the run goes on to load the checkpoint (the patch is live)."""
    assert cli.main([str(folder), "-o", str(tmp_path / "out"), *good]) == 2
    assert LOADED in capsys.readouterr().err and calls == {"load": 1, "predict": 0}
