"""A video split across processes: ``accelerate launch -m marigold CLIP --video`` with two CPU processes (gloo)
writes the same maps as one process, bit for bit (tiny RollingDepth checkpoint: its snippets; tiny Marigold depth
checkpoint: its frames; 9 frames)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from marigold.core.checkpoint import EMBEDDING_FILE
from marigold.core.distributed import World
from marigold.video.pipeline import plan_snippets, rolling_units
from marigold.video.distributed import Collective, aligned_mean, solve_units, split_range
from marigold.video.io import VideoWriter
from test_cli_distributed import ROOT, _env, _free_port

T, H, W, FPS = 9, 48, 64, 12


def _clip() -> np.ndarray:
    frames = np.zeros((T, H, W, 3), np.uint8)
    for i in range(T):
        frames[i] = 25 * i
        frames[i, :, : 6 * (i + 2)] = (220, 140, 60)  # a bar that grows: near and far change over the clip
        frames[i, 30:, 40:] = (40, 200, 90)
    return frames


def _write_mp4(path: Path) -> None:
    with VideoWriter(path, FPS) as vw:
        for f in _clip():
            vw.write(f)


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])  # [T,H,W,3]


def _outputs(out: Path) -> dict[str, np.ndarray]:
    files = {p.relative_to(out).as_posix(): np.asarray(Image.open(p)).astype(np.int64) for p in out.rglob("*.png")}
    files.update({p.relative_to(out).as_posix(): np.load(p) for p in out.rglob("*.npy")})
    files.update({p.name: _decoded(p) for p in out.glob("*.mp4")})
    return files


def _assert_same_outputs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Every file the same: the maps (16-bit PNG, .npy) and the colour mp4's decoded frames. The mp4 holds because the
    writer turns x264's B-frames off (with them, CI once saw 1 and 2 processes encode the same frames differently)."""
    assert sorted(a) == sorted(b) and a
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_two_processes_split_a_clips_snippets_and_write_what_one_process_writes(make_checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _write_mp4(src / "walk.mp4")
    shot = src / "shot"  # a frame folder: a second clip, split after the first
    shot.mkdir()
    for i, f in enumerate(_clip()[::-1]):
        Image.fromarray(f).save(shot / f"f{i}.png")
    (src / "empty.mp4").write_bytes(b"")  # refused by both processes alike, said once
    late = src / "late"  # its last frame cannot be decoded: only the process whose snippets read it finds out
    late.mkdir()
    for i, f in enumerate(_clip()):
        Image.fromarray(f).save(late / f"f{i}.png")
    data = (late / "f8.png").read_bytes()
    (late / "f8.png").write_bytes(data[:len(data) // 2])
    Image.fromarray(_clip()[4]).save(src / "photo.png")  # images are still shared out whole
    # 9 frames, snippets of 3 at dilations 1 and 2: 12 snippets (6 per process), and the clip fits a single
    # process's window (2·(4+1) = 10 frames), which then solves once, globally, as the split run does
    ckpt = make_checkpoint("rollingdepth")
    # no cached embedding: the single run computes and caches it, the split run reads the cache, and they must still
    # agree bit for bit (test_checkpoint.py: the first run on a checkpoint gives the same answer as later runs)
    (ckpt / EMBEDDING_FILE).unlink(missing_ok=True)
    args = ["-m", "marigold", str(src / "walk.mp4"), str(shot), str(src / "empty.mp4"), str(late),
            str(src / "photo.png"),
            "--video", "--checkpoint", str(ckpt), "--processing-resolution", "64",
            "--dilations", "1,2", "--dtype", "fp32", "--npy", "--seed", "2"]
    one = subprocess.run([sys.executable, *args, "-o", str(tmp_path / "one")], env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=400)
    assert one.returncode == 1, one.stderr[-3000:]  # the empty file, the bad frame
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(_free_port()), *args, "-o", str(tmp_path / "two")],
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=400)
    # exit status 1 from rank 0 (the launcher adds its own traceback); no traceback through marigold's code
    assert two.returncode != 0 and str(ROOT / "marigold") not in two.stderr, two.stderr[-3000:]
    assert "2 of 5 inputs failed in process 1 of 2: " in two.stderr and "process 2 of 2" not in two.stderr
    assert "walk: snippets [1/2]" in two.stderr and "walk: snippets [2/2]" in two.stderr  # both ran snippets
    errors = [line for line in two.stderr.splitlines() if line.startswith("error:")]
    # each bad clip said once; the bad frame, found by process 2 alone, stopped both (no hang) before the next clip
    assert len(errors) == 2 and "empty.mp4" in errors[0] and "f8.png" in errors[1], two.stderr[-3000:]

    a, b = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert sorted(a) == sorted(b)
    for clip, space in (("walk", "disparity"), ("shot", "disparity")):
        assert sum(k.startswith(f"{clip}_{space}_16bit/") for k in a) == T
        assert sum(k.startswith(f"{clip}_{space}_npy/") for k in a) == T
        assert f"{clip}_depth.mp4" in a and a[f"{clip}_depth.mp4"].shape == (T, H, W, 3)
    assert "photo_disparity_16bit.png" in a
    # the same snippets, the same solve with the rows in the same order, each frame's aligned maps summed in the
    # same unit order, the exact min/max for the range: bit-equal floats, so equal maps (no tolerance)
    _assert_same_outputs(a, b)
    frames = np.stack([a[f"walk_disparity_16bit/{i:06d}.png"] for i in range(T)])
    assert frames.min() == 0 and frames.max() == 65535  # one normalisation for the clip
    assert not [p for p in (tmp_path / "two").iterdir() if p.name.startswith(".")]  # parked maps are gone


def _launch(args: list[str], out: Path, processes: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *args, "-o", str(out)] if processes == 1 else [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
        str(_free_port()), *args, "-o", str(out)]
    return subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=400)


def test_two_processes_split_a_marigold_clips_frames_and_write_what_one_process_writes(make_checkpoint, tmp_path):
    """Marigold's video mode: each process predicts its block of frames, rank 0 solves the frame alignment once;
    a 9-frame clip fits a single process's window (16 frames), which then solves once too: the same files."""
    _write_mp4(tmp_path / "walk.mp4")
    ckpt = make_checkpoint("depth")
    (ckpt / EMBEDDING_FILE).unlink(missing_ok=True)  # as above: one run computes it, the other reads it
    args = ["-m", "marigold", str(tmp_path / "walk.mp4"), "--video", "--checkpoint", str(ckpt),
            "--processing-resolution", "64", "--dtype", "fp32", "--npy", "--seed", "3", "--temporal-strength", "0"]
    one = _launch(args, tmp_path / "one", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch(args, tmp_path / "two", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "walk: frames [1/2]" in two.stderr and "walk: frames [2/2]" in two.stderr  # both predicted frames
    a, b = _outputs(tmp_path / "one"), _outputs(tmp_path / "two")
    assert sum(k.startswith("walk_depth_16bit/") for k in a) == T
    _assert_same_outputs(a, b)
    if importlib.util.find_spec("cv2") is None:
        return
    # the default (the temporal fusion on) carries each frame into the next: the clip runs whole on one of the
    # processes, which says so once, and the files are the single process's
    fused = args[:-2]
    assert fused[-2:] == ["--seed", "3"]
    one = _launch(fused, tmp_path / "one_fused", 1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _launch(fused, tmp_path / "two_fused", 2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("note: each clip runs whole on one of the 2 processes") == 1, two.stderr[-3000:]
    c, d = _outputs(tmp_path / "one_fused"), _outputs(tmp_path / "two_fused")
    assert sorted(c) == sorted(a)
    _assert_same_outputs(c, d)
    assert any(not np.array_equal(a[k], c[k]) for k in a if k.startswith("walk_depth_npy/"))  # the fusion ran
    raw = np.stack([a[f"walk_depth_npy/{i:06d}.npy"] for i in range(T)])  # [T,H,W] aligned, not normalised
    assert np.abs(np.diff(raw, axis=0)).max() > 0  # the frames differ: the comparison can fail


def test_units_are_split_in_contiguous_blocks_in_the_single_process_order():
    n, dilations, _ = plan_snippets(30, [1, 25], 3)  # capped to 1 and 9
    units = rolling_units(30, n, dilations)
    assert dilations == [1, 9] and len(units) == 28 + 12
    assert units[:3] == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert units[-2:] == [[27, 28, 29], [11, 20, 29]]  # last frame 29: dilation 1, then 9 (the stream's order)
    shares = [split_range(len(units), World(r, 3)) for r in range(3)]
    assert [len(s) for s in shares] == [13, 13, 14] and list(shares[0]) + list(shares[1]) + list(shares[2]) == list(
        range(40))


def test_solve_units_and_aligned_mean_give_what_the_streaming_aligner_gives():
    from marigold.video.pipeline import StreamingAligner, lowres
    from marigold.video.distributed import UnitRow

    g = torch.Generator().manual_seed(0)
    truth = torch.rand(6, 24, 32, generator=g)  # [frames, PH, PW]
    units = rolling_units(6, 3, [1, 2])
    stream, rows, kinds = StreamingAligner(), [], {}
    for u, s in enumerate(units):
        kinds[u] = s[1] - s[0]
        stream.new_unit(kinds[u])
        scale, shift = 1 + 0.3 * u, 0.1 * u  # each snippet in its own affine frame, plus noise
        for j, f in enumerate(s):
            value = (truth[f] - shift) / scale + 0.01 * torch.randn(24, 32, generator=g)  # [PH,PW]
            stream.contribute(u, f, value)
            stream.observe(u, f, lowres(value))
            rows.append((UnitRow((u, j), u, f, lowres(value)), value))
    origin = min(float(v.min()) for _, v in rows)
    expected = dict(stream.flush(range(6)))  # one global solve, then each frame's mean
    # the rows handed over in another order (as gathered from several processes) are solved in the stream's
    scales, shifts = solve_units(Collective(World()), kinds, [r for r, _ in rows[::-1]], origin)
    assert scales == stream.scales and shifts == stream.shifts
    assert len(set(scales)) > 1  # the solve did something
    for f in range(6):
        parts = [(r.unit, v) for r, v in rows if r.group == f]
        assert torch.equal(aligned_mean(parts, scales, shifts), expected[f])


@pytest.mark.parametrize("checkpoint, n_frames, extra", [("rollingdepth", 18, {"dilations": [1, 2]}),
                                                       ("depth", 27, {})])
def test_a_clip_longer_than_the_window_is_solved_once_over_the_whole_clip(make_checkpoint, tmp_path, checkpoint,
                                                                          n_frames, extra):
    """One process through the split path: what a single stream gives with a window as long as the clip (one
    global solve), not what it gives with its default window (solved window by window: 10 frames for the
    RollingDepth snippets here, 16 for a Marigold checkpoint's frames)."""
    from marigold.core.checkpoint import load
    from marigold.video.pipeline import iter_video_depth
    from marigold.video.distributed import run_split_clip
    from marigold.video.io import FrameFolder
    from marigold.video.output import export_clip

    clip = np.concatenate([_clip(), _clip()[::-1], _clip()])[:n_frames]
    for i, f in enumerate(clip):
        Image.fromarray(f).save(tmp_path / f"{i:02d}.png")
    model = load(make_checkpoint(checkpoint), dtype="fp32")
    opts = dict(processing_resolution=64, seed=1, **extra)
    split = run_split_clip(model, FrameFolder(tmp_path), tmp_path / "split", "c", Collective(World()), keep_raw=True,
                           progress=False, **opts)
    outs = {}
    for window in (len(clip), None):
        # the split path has no temporal fusion (it runs in frame order: the CLI runs such a clip whole)
        frames = iter_video_depth(model, FrameFolder(tmp_path), window=window, temporal_strength=0.0, **opts)
        outs[window] = export_clip(frames, tmp_path / f"w{window}", "c", 30, space=frames.space, keep_raw=True,
                                   progress=False)
    raw = {k: np.stack([np.load(p) for p in sorted(c.raw.iterdir())]) for k, c in [("split", split), *outs.items()]}
    assert raw["split"].shape == (n_frames, H, W)
    assert np.array_equal(raw["split"], raw[len(clip)])
    assert not np.array_equal(raw["split"], raw[None])  # the streamed solve differs: the comparison can fail


def test_split_clips_says_why_a_clip_runs_whole(capsys):
    from marigold.cli import parse_args, split_clips

    class Model:
        video_model = True

    w = World(0, 2)
    assert split_clips(Model(), parse_args(["x.mp4", "-o", "o"]), w, True)
    assert not split_clips(Model(), parse_args(["x.mp4", "-o", "o", "--preset", "full"]), w, True)
    assert "--refine-steps 0" in capsys.readouterr().err
    assert split_clips(Model(), parse_args(["x.mp4", "-o", "o", "--preset", "full", "--refine-steps", "0"]), w, True)
    assert not split_clips(Model(), parse_args(["x.mp4", "-o", "o", "--preset", "full"]), World(1, 2), True)
    assert capsys.readouterr().err == ""  # said once, by rank 0
    Model.video_model = False  # a Marigold checkpoint's video mode never refines, but its fusion runs in order
    assert split_clips(Model(), parse_args(["x.mp4", "-o", "o", "--temporal-strength", "0"]), w, True)  # off
    assert capsys.readouterr().err == ""
    assert not split_clips(Model(), parse_args(["x.mp4", "-o", "o", "--temporal-strength", "0.5"]), w, True)
    assert "--temporal-strength 0" in capsys.readouterr().err
    if importlib.util.find_spec("cv2") is not None:  # the default: the fusion on, so the clip runs whole
        assert not split_clips(Model(), parse_args(["x.mp4", "-o", "o"]), w, True)
        err = capsys.readouterr().err
        assert "--temporal-strength 1" in err and "--temporal-strength 0 splits" in err and len(err.splitlines()) == 1


def test_without_opencv_the_cli_says_once_that_clips_run_without_the_fusion(capsys, monkeypatch):
    from marigold.cli import parse_args, split_clips
    from marigold.cli_parts.clips import fusion_note
    from marigold.video.fusion import MISSING_NOTE

    class Model:
        video_model = False

    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    args = parse_args(["x.mp4", "-o", "o"])
    fusion_note(Model(), args, World(0, 2), True)
    fusion_note(Model(), args, World(1, 2), True)  # rank 1 is silent
    assert capsys.readouterr().err == f"note: {MISSING_NOTE}\n"
    assert split_clips(Model(), args, World(0, 2), True)  # no fusion to run: the frames are split again
    fusion_note(Model(), parse_args(["x.mp4", "-o", "o", "--temporal-strength", "0"]), World(), True)
    fusion_note(Model(), args, World(), False)  # no clip among the inputs
    Model.video_model = True  # RollingDepth has no fusion to miss
    fusion_note(Model(), args, World(), True)
    assert capsys.readouterr().err == ""


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
