"""``python -m marigold … --video``: tiny RollingDepth and Marigold checkpoints, clips made here, bad videos."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from marigold.video.io import VideoWriter

ROOT = Path(__file__).resolve().parents[1]
T, H, W, FPS = 6, 48, 64, 12


def _clip(t: int = T) -> np.ndarray:
    frames = np.zeros((t, H, W, 3), np.uint8)
    for i in range(t):
        frames[i] = 25 * i
        frames[i, :, : 8 * (i + 2)] = (220, 140, 60)  # a bar that grows: near and far change over the clip
    return frames


def _cli(*args, timeout=400) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "marigold", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _video(path: Path) -> tuple[int, Fraction, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sum(1 for _ in c.decode(s)), s.average_rate, (s.codec_context.width, s.codec_context.height)


def _frames16(folder: Path) -> np.ndarray:
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(len(files))]
    return np.stack([np.asarray(Image.open(f)) for f in files]).astype(np.int64)  # [T,H,W]


def test_rollingdepth_video_and_bad_inputs_in_one_call(make_checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    with VideoWriter(src / "walk.mp4", FPS) as vw:
        for f in _clip():
            vw.write(f)
    (src / "empty.mp4").write_bytes(b"")
    (src / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, size in enumerate([(32, 24), (32, 24), (40, 24)]):
        Image.new("RGB", size).save(mixed / f"{i:03d}.png")
    Image.fromarray(_clip(1)[0]).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    r = _cli(src / "walk.mp4", src / "empty.mp4", src / "corrupt.mp4", mixed, tmp_path / "photo.png", "--video",
             "-o", out, "--checkpoint", make_checkpoint("rollingdepth"), "--processing-resolution", "64",
             "--dtype", "fp32", "--dilations", "1,2")
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, r.stderr[-3000:]  # one line each for the empty, the corrupt file and the folder
    assert any("empty.mp4" in e and "empty" in e for e in errors)
    assert any("corrupt.mp4" in e and "decoded" in e for e in errors)
    assert any(str(mixed) in e and "32×24 (2 frames" in e and "40×24 (1 frame" in e for e in errors)
    assert "3 of 5 inputs failed" in r.stderr

    assert _video(out / "walk_depth.mp4") == (T, FPS, (W, H))
    disparity = _frames16(out / "walk_disparity_16bit")  # RollingDepth: inverse depth, its own folder name
    assert disparity.shape == (T, H, W)
    assert disparity.min() == 0 and disparity.max() == 65535  # ONE normalisation: the clip spans the range...
    per_frame = [(d.min(), d.max()) for d in disparity]
    assert not all(lo == 0 and hi == 65535 for lo, hi in per_frame)  # ...not every frame on its own
    assert not (out / "walk_depth_16bit").exists() and not (out / "walk_disparity_npy").exists()
    assert (out / "photo_disparity_16bit.png").is_file()  # the image among the videos is still an image
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the parked frames are gone


def test_marigold_checkpoint_on_a_frame_folder(depth_checkpoint, tmp_path):
    folder = tmp_path / "shot"
    folder.mkdir()
    for i, f in enumerate(_clip(5)):
        Image.fromarray(f).save(folder / f"f{i}.png")
    out = tmp_path / "out"
    r = _cli(folder, "--video", "-o", out, "--checkpoint", depth_checkpoint, "--processing-resolution", "32",
             "--dtype", "fp32", "--fps", "8", "--npy", "--colormap", "magma")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _video(out / "shot_depth.mp4") == (5, 8, (W, H))
    depth = _frames16(out / "shot_depth_16bit")
    assert depth.shape == (5, H, W) and depth.min() == 0 and depth.max() == 65535
    raw = np.stack([np.load(out / "shot_depth_npy" / f"{i:06d}.npy") for i in range(5)])  # aligned, not normalised
    lo, hi = raw.min(), raw.max()
    np.testing.assert_allclose(depth / 65535, (raw - lo) / (hi - lo), atol=2 / 65535)
    assert not (out / "shot_depth.png").exists()  # with --video the folder is one clip, not five images


def test_normals_checkpoint_with_a_video_is_refused(make_checkpoint, tmp_path):
    with VideoWriter(tmp_path / "c.mp4", FPS) as vw:
        vw.write(_clip(1)[0])
    r = _cli(tmp_path / "c.mp4", "-o", tmp_path / "out", "--checkpoint", make_checkpoint("normals"))
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr[-2000:]
    assert errors[0].startswith("error: Videos need a depth checkpoint"), errors
    assert "normals checkpoint" in r.stderr and "Traceback" not in r.stderr
