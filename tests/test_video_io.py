"""Video files and frame folders in, mp4 and 16-bit frames out (marigold.video.io), on tiny clips made here."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from marigold.errors import InputError
from marigold.video.io import DepthFrameStore, DepthFrameWriter, FrameFolder, VideoWriter, open_video


def clip(t: int = 6, h: int = 48, w: int = 64) -> np.ndarray:
    """``[T,H,W,3]`` uint8: a bright bar that grows frame by frame on a darkening background."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i] = 20 * i
        frames[i, :, : (i + 1) * w // (t + 1)] = (230, 120, 40)
    return frames


def write_mp4(path, frames, fps=12) -> None:
    with VideoWriter(path, fps) as vw:
        for f in frames:
            vw.write(f)


def test_mp4_round_trip_keeps_count_rate_size_and_content(tmp_path):
    frames = clip()
    write_mp4(tmp_path / "a.mp4", frames, fps=12)
    src = open_video(tmp_path / "a.mp4")
    assert (src.frame_count, src.fps, src.size, src.name) == (6, Fraction(12), (64, 48), "a")
    back = np.stack(list(src))
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).mean() < 6  # lossy, but the same pictures
    assert len(list(src)) == 6  # iterating again starts over


def test_writer_takes_float_tensors_pads_odd_sides_and_keeps_ntsc_rate(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, Fraction(30000, 1001)) as vw:
        for i in range(3):
            vw.write(torch.full((3, 47, 65), i / 3))
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (66, 48)
        assert s.average_rate == Fraction(30000, 1001)
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in c.decode(s)) == 3


def test_writer_leaves_no_file_when_the_work_fails(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 10) as vw:
            vw.write(np.zeros((16, 16, 3), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="16×16"):
        with VideoWriter(out, 10) as vw:
            vw.write(np.zeros((16, 16, 3), np.uint8))
            vw.write(np.zeros((16, 18, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_frame_folder_in_natural_order_with_given_rate(tmp_path):
    frames = clip(t=11, h=16, w=24)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"frame_{i}.png")  # frame_10 must come after frame_9
    (tmp_path / "notes.txt").write_text("not a frame")
    src = open_video(tmp_path, fps=8)
    assert isinstance(src, FrameFolder)
    assert (src.frame_count, src.fps, src.size, src.name) == (11, Fraction(8), (24, 16), tmp_path.name)
    np.testing.assert_array_equal(np.stack(list(src)), frames)
    assert open_video(tmp_path).fps == Fraction(30)  # no rate given: 30


def test_frame_folder_with_two_sizes_is_refused_naming_them(tmp_path):
    for i in range(3):
        Image.new("RGB", (32, 24)).save(tmp_path / f"{i:03d}.png")
    Image.new("RGB", (40, 24)).save(tmp_path / "003.png")
    with pytest.raises(InputError) as e:
        open_video(tmp_path)
    msg = str(e.value)
    assert "32×24 (3 frames" in msg and "40×24 (1 frame, e.g. 003.png)" in msg and str(tmp_path) in msg


@pytest.mark.parametrize("content, says", [
    (b"", "empty"),
    (b"\x00\x01garbage" * 500, "not a video file that can be decoded \\(Invalid data"),
])
def test_empty_or_corrupt_video_file_is_named(tmp_path, content, says):
    f = tmp_path / "bad.mp4"
    f.write_bytes(content)
    with pytest.raises(InputError, match=says) as e:
        open_video(f)
    assert str(f) in str(e.value)


def test_truncated_video_is_refused_or_stops_with_the_file_named(tmp_path):
    write_mp4(tmp_path / "whole.mp4", clip(t=12))
    data = (tmp_path / "whole.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        list(open_video(cut))
    assert str(cut) in str(e.value)


def test_missing_path_is_named(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        open_video(tmp_path / "nope.mp4")


def test_store_normalises_the_clip_with_one_range_and_cleans_up(tmp_path):
    maps = [torch.full((1, 4, 5), v) for v in (2.0, 3.0, 6.0)]
    maps[1][0, 0, 0] = 10.0
    with DepthFrameStore(tmp_path) as store:
        for i, m in enumerate(maps):
            store.add(i, m)
        assert store.value_range == (2.0, 10.0)
        out = dict(store.normalized())
        hidden = store.folder
        assert hidden.parent == tmp_path and hidden.name.startswith(".")
    assert not hidden.exists()
    assert sorted(out) == [0, 1, 2] and out[0].shape == (1, 4, 5)
    assert out[0].max() == 0.0 and out[1][0, 0, 0] == 1.0  # one range: frame 0's own max is not stretched to 1
    torch.testing.assert_close(out[2], torch.full((1, 4, 5), 0.5))


def test_store_can_keep_the_raw_frames(tmp_path):
    store = DepthFrameStore(tmp_path)
    store.add(0, torch.ones(1, 3, 3))
    kept = store.keep(tmp_path / "clip_depth_npy")
    store.cleanup()
    assert np.load(kept / "000000.npy").shape == (3, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["clip_depth_npy"]


def test_depth_frames_are_16bit(tmp_path):
    w = DepthFrameWriter(tmp_path / "f")
    w.write(3, torch.linspace(0, 1, 20).view(1, 4, 5))
    im = Image.open(tmp_path / "f" / "000003.png")
    a = np.asarray(im)
    assert im.mode.startswith("I") and a.max() == 65535 and a.min() == 0


def test_store_maps_the_clip_maximum_to_exactly_one(tmp_path):
    hits = []
    for seed in range(50):  # values whose 1/(hi - lo) product would round just below 1
        g = torch.Generator().manual_seed(seed)
        with DepthFrameStore(tmp_path) as store:
            store.add(0, torch.rand(1, 8, 8, generator=g) * 3.7 + 0.123)
            hits.append(max(v.max().item() for _, v in store.normalized()))
    assert set(hits) == {1.0}




def _depth_frames() -> list[torch.Tensor]:
    """9 frames ``[3,48,64]``: a coloured depth map that moves, with a little noise."""
    from marigold.io.colorize import colorize_depth

    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    frames = []
    for i in range(9):
        noise = 0.05 * np.random.default_rng(i).standard_normal(xx.shape)
        d = (0.5 + 0.3 * np.sin(6 * xx + 0.3 * i) * np.cos(4 * yy) + noise).clip(0, 1)
        frames.append(colorize_depth(torch.tensor(d, dtype=torch.float32)[None, None])[0])
    return frames


_ENCODE_ON_ONE_CPU = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[2])})
sys.path.insert(0, "tests")
from test_video_io import _depth_frames, write_mp4
write_mp4(sys.argv[1], _depth_frames(), fps=30)
"""


def test_the_mp4_is_the_same_file_however_often_and_wherever_it_is_written(tmp_path):
    """The same frames give the same file: written again and again in one process (each file decoded in between,
    which is when x264 with B-frames gave a different file from run to run), and in a process pinned to one CPU
    (x264 then runs one thread). CI once saw 1 and 2 processes write different mp4s of the same frames."""
    frames = _depth_frames()
    files = []
    for k in range(6):
        write_mp4(tmp_path / f"{k}.mp4", frames, fps=30)
        files.append((tmp_path / f"{k}.mp4").read_bytes())
        with av.open(str(tmp_path / f"{k}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 9
    if hasattr(os, "sched_setaffinity"):
        one_cpu = tmp_path / "one_cpu.mp4"
        subprocess.run([sys.executable, "-c", _ENCODE_ON_ONE_CPU, str(one_cpu), str(min(os.sched_getaffinity(0)))],
                       check=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
        files.append(one_cpu.read_bytes())
    assert all(f == files[0] for f in files), [hash(f) for f in files]
