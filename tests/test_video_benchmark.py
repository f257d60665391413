"""train.video_benchmark's snippet-vs-single-frame comparison: several training seeds, each reported and
summarised (mean ± spread, the difference paired by seed), and the arms' data budgets."""

from __future__ import annotations

import json
import os

import pytest

from train import video_benchmark as vb


def _m(a, d, t):
    return {"abs_rel": a, "delta1": d, "temporal_error": t}


def test_seeds_are_summarised_and_paired():
    snip = {"0": {"dilation 4": _m(0.30, 0.40, 0.020)}, "1": {"dilation 4": _m(0.32, 0.44, 0.024)}}
    single = {"0": {"dilation 4": _m(0.31, 0.42, 0.030)}, "1": {"dilation 4": _m(0.31, 0.42, 0.026)}}
    s = vb.summarise(snip, [4])["dilation 4"]
    assert s["abs_rel"]["mean"] == pytest.approx(0.31) and s["abs_rel"]["n"] == 2
    assert s["abs_rel"]["std"] == pytest.approx(0.02 / 2**0.5)  # sample std of two values
    assert (s["delta1"]["min"], s["delta1"]["max"]) == (0.40, 0.44)
    d = vb.paired_difference(snip, single, [4])["dilation 4"]
    assert d["abs_rel"]["mean"] == pytest.approx(0.0) and d["abs_rel"]["min"] == pytest.approx(-0.01)
    assert d["temporal_error"]["mean"] == pytest.approx(-0.006) and d["temporal_error"]["max"] == pytest.approx(-0.002)
    table = vb.markdown_table({"steps": 5, "objective": "e2e", "dilations": [4], "rows": {
        "snippet": {"label": "S", "seeds": snip, "mean": vb.summarise(snip, [4])},
        "snippet − single (paired by seed)": {"mean": vb.paired_difference(snip, single, [4])}}})
    assert "| S | 1 | 4 | 0.3200 | 0.4400 | 0.0240 |" in table
    assert "| **S** | mean ± std | 4 | 0.3100 ± 0.0141 |" in table
    assert "| **snippet − single (paired by seed)** | mean ± std | 4 | +0.0000 ± 0.0141 [-0.0100, +0.0100] |" in table


def test_arms_budgets():
    """Frames and videos per step of each arm, for B snippets per step (what the README's table states)."""
    b = 2
    per_step = {k: (f * n * b, n * b) for k, (f, n, _) in vb.ARMS.items()}  # (frames, videos) per step
    assert per_step["snippet"] == (6, 2) and per_step["single"] == (6, 6)
    assert per_step["single-same-frames"] == (6, 2) and vb.ARMS["single-same-frames"][2] is False
    assert per_step["snippet-same-videos"] == (18, 6) and per_step["single-same-videos"] == (2, 2)


def test_two_seeds_two_arms_end_to_end(tiny_sd2, tmp_path, monkeypatch):
    """One training step per model (two seeds, the snippet model and the single-frame model on its very frames),
    scored on one held-out video: every seed is scored, the summary holds both, and the control trained with
    ``snippet.joint: false`` on the snippet model's stream."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "bench"
    assert vb.main(["--base", str(tiny_sd2), "--out", str(out), "--steps", "1", "--seeds", "0", "1", "--jobs", "2",
                    "--arms", "snippet", "single-same-frames", "--videos", "1", "--dilations", "4"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["seeds"] == [0, 1]
    for arm in ("snippet", "single-same-frames"):
        assert set(res["rows"][arm]["seeds"]) == {"0", "1"}
        m = res["rows"][arm]["mean"]["dilation 4"]["abs_rel"]
        vals = [r["dilation 4"]["abs_rel"] for r in res["rows"][arm]["seeds"].values()]
        assert m["n"] == 2 and m["mean"] == pytest.approx(sum(vals) / 2) and 0 < m["mean"] < 1
    d = res["rows"]["snippet − single-same-frames (paired by seed)"]["mean"]["dilation 4"]["abs_rel"]["mean"]
    s0 = res["rows"]["snippet"]["seeds"]["0"]["dilation 4"]["abs_rel"]
    c0 = res["rows"]["single-same-frames"]["seeds"]["0"]["dilation 4"]["abs_rel"]
    s1 = res["rows"]["snippet"]["seeds"]["1"]["dilation 4"]["abs_rel"]
    c1 = res["rows"]["single-same-frames"]["seeds"]["1"]["dilation 4"]["abs_rel"]
    assert d == pytest.approx(((s0 - c0) + (s1 - c1)) / 2)
    cfg = {k: json.loads((out / f"{k}-seed1" / "config.json").read_text()) for k in ("snippet", "single-same-frames")}
    assert cfg["snippet"]["snippet"]["joint"] is True and cfg["single-same-frames"]["snippet"]["joint"] is False
    assert cfg["snippet"]["snippet"]["frames"] == cfg["single-same-frames"]["snippet"]["frames"] == 3
    assert cfg["snippet"]["batch_size"] == cfg["single-same-frames"]["batch_size"] == 2
    assert cfg["snippet"]["seed"] == 1 and os.path.isdir(out / "snippet-seed0" / "final")


def test_unjoint_trainer_treats_every_frame_alone(tiny_sd2, tmp_path):
    """``snippet.joint: false``: the stream samples 3-frame snippets with per-frame targets, and the trainer
    attends, draws noise and aligns the loss per frame (1 frame per snippet for the UNet and the loss)."""
    import subprocess
    import sys

    from test_train_finetune import ROOT, _env

    code = ("import sys; from train.config import parse; from train.finetune import Trainer\n"
            "for joint in ('true', 'false'):\n"
            f"    t = Trainer(parse(['--base', {str(tiny_sd2)!r}, '--output', {str(tmp_path)!r} + '/' + joint,\n"
            "        '--mode', 'snippet', '--resolution', '32', '--batch-size', '2', '--num-workers', '0',\n"
            "        '--set', 'snippet.objective=e2e', '--set', 'snippet.joint=' + joint, '--no-progress']))\n"
            "    print(joint, t.frames, t.stream.frames, t.stream.joint, tuple(t.stream[0]['rgb'].shape))\n")
    res = subprocess.run([sys.executable, "-c", code], env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()[-2:]
    assert lines[0] == "true 3 3 True (3, 3, 24, 32)"
    assert lines[1] == "false 1 3 False (3, 3, 24, 32)"
