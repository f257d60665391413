"""``python -m marigold --stereo``: a photo and a clip in one call (tiny checkpoint), bad inputs alongside."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from marigold.geometry.stereo import stereo
from marigold.video.io import VideoWriter
from test_cli_video import FPS, H, T, W, _cli, _clip, _frames16, _video


def _decode(path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])  # [T,H,W,3]


def test_stereo_for_a_photo_and_a_clip_with_bad_inputs_beside(depth_checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with VideoWriter(src / "walk.mp4", FPS) as vw:
        for f in _clip():
            vw.write(f)
    photo = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(photo).save(src / "photo.png")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(src / "dot.png")
    out = tmp_path / "out"
    r = _cli(src / "photo.png", src / "dot.png", src / "walk.mp4", "-o", out, "--checkpoint", depth_checkpoint,
             "--processing-resolution", "32", "--stereo", "sbs", "--divergence", "4")
    assert r.returncode == 1, r.stderr
    assert "dot.png" in r.stderr and "too small" in r.stderr and "Traceback" not in r.stderr
    assert not (out / "dot_stereo.png").exists()  # refused up front (the model needs 8 px), the others written

    sbs = np.asarray(Image.open(out / "photo_stereo.png"))
    assert sbs.shape == (H, 2 * W, 3)
    depth = np.asarray(Image.open(out / "photo_depth_16bit.png")).astype(np.float32) / 65535
    want = stereo(torch.from_numpy(photo).permute(2, 0, 1)[None] / 255.0, torch.from_numpy(depth),
                  divergence=4.0).compose("sbs")[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(sbs - want).mean() < 1.0  # the file is the library's pair from the written depth

    # the clip: every frame, the input's rate, from the clip's ONE normalisation (the 16-bit frames)
    n, rate, size = _video(out / "walk_stereo.mp4")
    assert (n, rate, size) == (T, FPS, (2 * W, H))
    frames = _decode(out / "walk_stereo.mp4").astype(np.float32)
    source = _decode(src / "walk.mp4")
    d16 = _frames16(out / "walk_depth_16bit").astype(np.float32) / 65535  # [T,H,W]
    ours = np.stack([stereo(torch.from_numpy(source[k]).permute(2, 0, 1)[None] / 255.0,
                            torch.from_numpy(d16[k]), divergence=4.0).compose("sbs")[0].permute(1, 2, 0).numpy()
                     for k in range(T)]) * 255
    assert np.abs(frames - ours).mean() < 4.0  # H.264 at crf 18 on a 64-px frame

    # bad stereo options: one line naming the option, before any depth is predicted (tests/test_cli_checks.py)
    r = _cli(src / "photo.png", "-o", tmp_path / "o2", "--checkpoint", depth_checkpoint, "--processing-resolution",
             "32", "--stereo", "anaglyph", "--divergence", "-1")
    assert r.returncode == 2 and "error: --divergence must be" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o2" / "photo_depth_16bit.png").exists() and not (tmp_path / "o2" / "photo_stereo.png").exists()


def test_stereo_bench_runs_end_to_end(depth_checkpoint, tmp_path):
    """The harness only (speed is measured by `python -m bench.stereo`, never in a test)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "bench.stereo", "--size", "64x48", "--rounds", "1", "--checkpoint",
                    str(depth_checkpoint), "--frames", "2", "--processing-resolution", "32", "--out", str(tmp_path)],
                   cwd=root, check=True, capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"})
    r = json.loads((tmp_path / "stereo.json").read_text())
    assert r["size"] == [64, 48] and r["stereo_s"] > 0 and r["backward_reference_s"] > 0
    assert r["video"]["frames"] == 2 and 0 < r["video"]["stereo_share"] < 1
