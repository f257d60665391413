"""The ComfyUI video node on a snippet checkpoint that OUR trainer wrote (issue 11: "the checkpoint it writes
runs in ... the ComfyUI video node with no conversion"), in a real ComfyUI 0.30.0 (tests/nodes_comfyui.py).

``train.finetune --mode snippet`` runs a few steps from the tiny SD2 stand-in (as tests/test_train_video.py
does); its ``final/`` folder is copied as it is into ``models/marigold/`` and picked in LoadMarigold. The shipped
video workflow (LoadVideo → MarigoldVideoDepth → Colorize → CreateVideo → SaveVideo, plus 16-bit frames) must write
one depth frame per input frame at the input's rate, and the depth must come from the frames: the input's frames
differ, so must the depth's, and a different clip gives a different depth clip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nodes_comfyui as comfy
from test_nodes_e2e import P, _read_video, _run_ok, outputs, tiny, to_api, video_graph
from test_train_finetune import _env

ROOT = Path(__file__).resolve().parents[1]
NAME = "marigold/trained-snippet"


@pytest.fixture(scope="module")
def trained_snippet(tiny_sd2, tmp_path_factory) -> Path:
    """A RollingDepth-layout folder written by train.finetune in snippet mode (6 steps, 3-frame snippets)."""
    out = tmp_path_factory.mktemp("snippet") / "run"
    res = subprocess.run([sys.executable, "-m", "train.finetune", "--base", str(tiny_sd2), "--output", str(out),
                          "--mode", "snippet", "--data", "synthetic-video", "--resolution", "32",
                          "--batch-size", "1", "--grad-accum", "1", "--max-steps", "6", "--checkpoint-every", "0",
                          "--num-workers", "0", "--lr", "1e-3", "--seed", "0", "--no-progress",
                          "--set", "snippet.objective=e2e", "--set", "validation.every=0"],
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out / "final"


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_checkpoint, trained_snippet):
    py, comfy_dir = comfy.ensure()
    base = comfy.prepare_base(tmp_path_factory.mktemp("comfy_base"), make_checkpoint, py, comfy_dir, sd15=False)
    import shutil

    shutil.copytree(trained_snippet, base / "models" / NAME)  # as the trainer wrote it: no conversion
    # a second clip with other content: the example clip mirrored left-right and darkened
    subprocess.run([str(py), "-c", _MIRROR, str(base / "input" / "example.mp4"), str(base / "input" / "other.mp4")],
                   check=True)
    s = comfy.Server(base, py, comfy_dir).start()
    s.object_info = s.get("/object_info")
    yield s
    s.stop()


_MIRROR = """
import sys, av, numpy as np
src, dst = sys.argv[1:]
with av.open(src) as i, av.open(dst, "w") as o:
    si = i.streams.video[0]
    st = o.add_stream("libx264", rate=si.average_rate); st.width, st.height, st.pix_fmt = si.width, si.height, "yuv420p"
    for f in i.decode(si):
        a = np.ascontiguousarray(f.to_ndarray(format="rgb24")[:, ::-1] // 2)
        for p in st.encode(av.VideoFrame.from_ndarray(a, format="rgb24")): o.mux(p)
    for p in st.encode(): o.mux(p)
"""


def test_trained_snippet_checkpoint_is_listed_and_runs_the_video_workflow(server):
    ckpts = server.object_info[P + "LoadMarigold"]["input"]["required"]["checkpoint"][1]["options"]
    assert NAME in ckpts
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_video_depth.json"),
               **{"prs-eth/rollingdepth-v1-0": NAME})
    by_type = {v["class_type"]: k for k, v in api.items()}
    assert api[by_type[P + "LoadMarigold"]]["inputs"]["checkpoint"] == NAME
    entry = _run_ok(server, api)
    (video,) = outputs(server, entry, by_type["SaveVideo"])
    assert _read_video(video) == (comfy.CLIP_FRAMES, comfy.CLIP_FPS, comfy.VIDEO_SIZE)
    assert len(outputs(server, entry, by_type[P + "SaveDepth16"])) == comfy.CLIP_FRAMES


def _depth_clip(server, file: str) -> np.ndarray:
    entry = _run_ok(server, video_graph(NAME, file=file))
    files = outputs(server, entry, "s")
    assert len(files) == comfy.CLIP_FRAMES
    clip = np.stack([np.load(f) for f in files])  # [T,H,W], one normalisation for the clip
    w, h = comfy.VIDEO_SIZE
    assert clip.shape == (comfy.CLIP_FRAMES, h, w) and np.isfinite(clip).all()
    assert clip.min() == 0.0 and clip.max() == 1.0
    return clip


def test_trained_snippet_checkpoint_depth_depends_on_the_frames(server):
    clip = _depth_clip(server, "example.mp4")
    # the example clip's frames differ (brightness, a bar's width): a model that ignored them would give one map
    # for every frame (the video node shares one noise across the clip)
    change = np.abs(np.diff(clip, axis=0)).mean((1, 2))  # [T-1]
    assert (change > 1e-3).all(), change
    other = _depth_clip(server, "other.mp4")
    assert np.abs(other - clip).mean() > 1e-2
    # the same clip again gives the same depth (same seed): the differences above are the input's doing
    np.testing.assert_allclose(_depth_clip(server, "example.mp4"), clip, atol=1e-6)
