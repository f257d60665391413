"""``accelerate launch -m marigold``: two CPU processes split the inputs and write the same files as one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from marigold.core.checkpoint import EMBEDDING_FILE

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _files(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p)).astype(np.int64)
            for p in sorted(folder.rglob("*.png"))}


def _assert_same_files(one: Path, two: Path) -> None:
    a, b = _files(one), _files(two)
    assert sorted(a) == sorted(b) and a
    for name in a:
        # the same thread count in every process: bit-equal floats, so equal files (a first run that computes the
        # empty-text embedding agrees with the runs that read its cache, tests/test_checkpoint.py)
        assert a[name].shape == b[name].shape and np.array_equal(a[name], b[name]), name


def test_two_processes_split_a_folder_and_write_what_one_process_writes(depth_checkpoint, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):  # odd: the ranks get 3 and 2
        Image.fromarray(rng.integers(0, 255, (24 + 8 * i, 32, 3), dtype=np.uint8)).save(src / f"im{i}.png")
    (depth_checkpoint / EMBEDDING_FILE).unlink(missing_ok=True)  # the single run computes it, the split run reads it
    args = ["-m", "marigold", str(src), "--checkpoint", str(depth_checkpoint), "--processing-resolution", "32",
            "--steps", "2", "--seed", "3", "--dtype", "fp32"]
    one = subprocess.run([sys.executable, *args, "-o", str(tmp_path / "one")], env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                          "--main_process_port", str(_free_port()), *args, "-o", str(tmp_path / "two")],
                         env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "[1/2]" in two.stderr and "[2/2]" in two.stderr  # two processes, each with its share
    _assert_same_files(tmp_path / "one", tmp_path / "two")
    assert len(_files(tmp_path / "two")) == 10  # colour + 16-bit per image
