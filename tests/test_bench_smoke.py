"""The benchmark's --quick mode runs end to end on a tiny checkpoint and writes its table and JSON.

Speed is measured by ``python -m bench``, never here: this only checks that the harness works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick(tmp_path):
    env = {**os.environ, "MARIGOLD_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path / "out"),
                    "--only", "in_process,ensembling", "--cases", "fp32:64:1:1:1,bf16:64:1:2:1:2"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["case"] for r in report["in_process"]] == ["fp32 64px 1 step × ens 1", "bf16 64px 1 step × ens 2"]
    for row in report["in_process"]:
        assert row["check"]["ok"], row["check"]
        assert row["ours"]["time_s"] > 0 and row["diffusers"]["peak_rss_gb"] > 0
    assert report["in_process"][0]["check"]["max_abs"] < 1e-4  # fp32: the same answer as diffusers
    ens = report["ensembling"][0]
    assert ens["ours_objective"] <= ens["diffusers_objective"]
    assert "| case |" in (tmp_path / "out" / "results.md").read_text()


def test_device_check_runs_where_there_is_no_gpu(tmp_path):
    """bench/device_check.py is what a session with a lent GPU runs once; here it runs on the CPU (device vs CPU
    is then CPU vs CPU), so that it still works on the day a GPU is there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "check.json"
    res = subprocess.run([sys.executable, "-m", "bench.device_check", "--device", "cpu", "--out", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    rows = json.loads(out.read_text())
    strict = [r for r in rows if r["tol"] is not None]
    assert len(strict) >= 9 and all(r["passed"] for r in strict)
    assert {r["check"] for r in rows} >= {"video RollingDepth [1,3] + 2 refine: cpu vs cpu",
                                          "video Marigold video mode: cpu vs cpu"}


def test_video_bench_quick_rows_append_json(tmp_path):
    env = {**os.environ, "MARIGOLD_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "rows.jsonl"
    subprocess.run([sys.executable, "-m", "bench.video", "--quick", "--rows", "frames,rolling-fast", "--out", str(out)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == ["frames", "rolling-fast"]
    assert all(r["s_per_frame"] > 0 and r["peak_rss_mb"] > 0 and r["peak_gpu_mb"] is None for r in rows)


def test_quality_bench_rows_run_on_a_tiny_checkpoint(depth_checkpoint, make_checkpoint):
    """bench/quality.py's measuring rows and table on a tiny random checkpoint (the bench itself trains the small
    model, minutes to hours: never here). Checks the plumbing, not the numbers: every figure is finite, the
    baselines behave as they must (the true depth warps the left view closer to the right one than no warp)."""
    import math

    import marigold
    from bench import quality as Q

    model = marigold.load(depth_checkpoint, device="cpu", dtype="fp32")
    model.default_processing_resolution = 64
    const = Q.mean_map(n=4)
    res = {"date": "today", "cpu": Q.cpu_flags(), "seeds": [0], "spent": {}, "measure_s": 0.0,
           "image": {"mean map": Q.mean_map_row(const, n=2), "small": [Q.image_row(model, n=2)]},
           "react": {"small": [Q.react_row(model, n=2)]},
           "video": {"small": [Q.video_row(model, clips=1, frames=4)]},
           "tiles": {"small": [Q.tiles_row(model, n=1, scales=(2,), variants=False)]}}
    res["completion"] = {"small": [Q.completion_row(model, n=1, points=(10,), steps=2)]}
    assert set(res["completion"]["small"][0]["10"]) == {"completion", "completion, no snap", "fit", "fit + snap",
                                                         "nearest", "linear"}
    st = Q.stereo_row({"small": model}, const, n=1)
    res["stereo"] = {k: [v] for k, v in st.items()}
    # the snippet row scores a folder jointly (3 frames) or frame by frame: the plain checkpoint stands in for both
    sn = Q.snippet_row({"snippet": depth_checkpoint, "single-frame": depth_checkpoint}, videos=1, dilations=(4,))
    res["snippet"] = {k: [v] for k, v in sn.items()}
    assert sn["snippet"]["dilation 4"]["snippets"] == 4
    for task in Q.MODALITIES:  # a random tiny model of each modality against its mean map
        m = marigold.load(make_checkpoint(task), device="cpu", dtype="fp32")
        row = Q.modality_row(m, task, n=2, train_mean=4)
        assert set(row["model"]) == {k for k, _ in Q.HEADLINE[task]} == set(row["mean map"])
        assert all(len(v) == 2 for part in row["per scene"].values() for v in part.values())  # one per scene
        res.setdefault("modalities", {})[task] = [row]
        res.setdefault("modalities_untrained", {})[task] = row["model"]
    assert res["modalities"]["normals"][0]["mean map"]["normals_mean_angle"] < 90
    assert st["true depth"] < st["no warp (the left view)"]
    flat = json.dumps(res)
    assert "NaN" not in flat and "Infinity" not in flat
    assert all(math.isfinite(v) for v in res["react"]["small"][0].values())
    assert set(res["video"]["small"][0]["moving camera"]) == {"frames, one seed", "frames, a seed per frame",
                                                              "video mode", "video mode + fusion",
                                                              "frames, one seed + fusion"}
    assert set(res["video"]["small"][0]) == set(Q.VIDEO_CLIPS)
    ball = res["video"]["small"][0]["+ a ball rolling across"]["video mode + fusion"]
    assert {"temporal_error_moving", "temporal_error_static", "tae"} <= set(ball)
    assert "temporal_error_moving" not in res["video"]["small"][0]["moving camera"]["video mode"]
    assert "seam_ratio" in res["tiles"]["small"][0]["rooms 2× | tiled 2×, detail"]
    assert 0.0 <= res["image"]["small"][0]["inverted"] <= 1.0
    table = Q.markdown(res)
    for needle in ("| mean map |", "| small | moving camera | video mode |", "| rooms 2× | tiled 2×, detail |",
                   "| true depth |", "| snippet | 4 |", "| snippet − single-frame (paired by seed) | 4 |",
                   "| iid-lighting | shading_mse |", "| untrained |", "| 10 | ",
                   "| normals | normals_a11.25 (higher is better) |"):
        assert needle in table, needle
    # IID rows of runs on differently fitted stand-ins (one task rerun alone) say which fit each row grew from
    res.update(iid_pools={"iid-lighting": 2, "iid-appearance": 3}, iid_bases={
        "iid-lighting": ["--vae-steps", "3000"], "iid-appearance": ["--vae-steps", "6000"]})
    assert ("(iid-lighting: blends of 2–8 material maps, 3000 VAE steps; iid-appearance: blends of 2–64 material "
            "maps, 6000 VAE steps)") in Q.markdown(res)
    # a task rerun alone says its own date, the others keep the modality row's
    res.update(row_dates={"image": "day 1", "modalities": "day 2"}, modality_dates={"normals": "day 3"})
    assert "Measured image day 1; iid-lighting, iid-appearance day 2; normals day 3 on" in Q.markdown(res)
    res["iid_bases"]["iid-lighting"] = ["--size", "small-wide", "--vae-steps", "3000"]
    assert "blends of 2–8 material maps, 3000 VAE steps (a VAE twice as wide); iid-appearance" in Q.markdown(res)


def test_scene_interval_is_the_spread_a_new_draw_of_held_out_scenes_gives_the_ratio():
    from bench import quality as Q

    def row(model, base):
        return {"per scene": {"model": {"m": model}, "mean map": {"m": base}}}

    base = [0.01, 0.02, 0.5, 0.03] * 8  # heavy-tailed: a few scenes hold most of the error
    lo, hi = Q.scene_interval([row([b / 2 for b in base], base)] * 3, "m")
    assert abs(lo - 0.5) < 1e-9 and abs(hi - 0.5) < 1e-9  # half on every scene: no spread
    # a model that wins only on the heavy scenes and loses on the rest: its ratio hangs on which scenes are drawn
    model = [0.02, 0.04, 0.3, 0.06] * 8
    lo, hi = Q.scene_interval([row(model, base)], "m")
    assert lo < sum(model) / sum(base) < hi and hi - lo > 0.1
    assert Q.scene_interval([{"model": {"m": 1.0}, "mean map": {"m": 1.0}}], "m") is None  # an older row
    res = {"seeds": [0], "date": "d", "cpu": "c", "modalities": {"iid-lighting": [
        {"model": {k: 0.5 for k, _ in Q.HEADLINE["iid-lighting"]}, "mean map": {k: 1.0 for k, _ in
                                                                                 Q.HEADLINE["iid-lighting"]}}]}}
    assert "| iid-lighting | residual_mse | 16 | 0.5000 | 1.0000 |  | 0.50 | – |" in Q.markdown(res)


def test_quality_bench_reuses_its_cache_and_rebuilds_on_change(tmp_path, monkeypatch):
    from bench import quality as Q

    calls = []

    def fake_run(cmd, what, threads=None):
        calls.append(what)
        Path(cmd[-1]).mkdir(parents=True, exist_ok=True)  # the folder the real command would write
        return 0.0

    monkeypatch.setattr(Q, "_run", fake_run)
    spent: dict = {}
    folder = tmp_path / "thing"
    Q._build(folder, "k1", ["x", str(folder)], "thing", spent)
    Q._build(folder, "k1", ["x", str(folder)], "thing", spent)
    assert calls == ["thing"]  # fresh: reused
    Q._build(folder, "k2", ["x", str(folder)], "thing", spent)
    assert calls == ["thing", "thing"]  # its key changed (recipe, seed, base): rebuilt


def test_segmentation_memory_bench_runs_its_three_jobs_on_tiny_checkpoints(tmp_path):
    """bench.segmentation_memory (issue 19's memory check) end to end on tiny checkpoints: every job in its own
    process, the phases measured, the summary and the table written."""
    env = {**os.environ, "MARIGOLD_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "seg.json"
    r = subprocess.run([sys.executable, "-m", "bench.segmentation_memory", "--size", "tiny", "--resolution", "64",
                        "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report = json.loads(out.read_text())
    rows, summ = report["rows"], report["summary"]
    assert list(rows) == ["depth", "segmentation", "segmentation-then-depth"]
    seg = rows["segmentation"]
    # the phases are ordered as measured: the encoder's peak within the run's, the run's at least the loaded RSS
    assert seg["rss_loaded_gb"] <= seg["encode_peak_gb"] <= seg["run_peak_gb"]
    assert all(r["run_peak_gb"] >= r["rss_loaded_gb"] > 0.05 for r in rows.values())
    assert rows["segmentation-then-depth"]["depth_run_peak_gb"] > 0
    assert summ["text_encoder_fp32_gb"] > 0 and "segmentation_minus_depth_run_peak_gb" in summ
    assert "| segmentation |" in r.stdout and "while the text encoder is loaded" in r.stdout


def test_quality_bench_builds_an_untrained_model_per_modality(tmp_path, quality_commands):
    """The modalities row also scores each task's base widened and not trained (issue #18: training must beat it):
    one zero-step model per task, whatever the seeds, built before the trainings."""
    from bench import quality as Q

    cmds = quality_commands
    models, _ = Q.build_models(tmp_path, [0, 1], ["iid-lighting"], jobs=1)
    assert set(models) == {("iid-lighting", 0), ("iid-lighting", 1), ("iid-lighting", "untrained")}
    trainings = [c for c in cmds if "train.finetune" in c]
    assert len(trainings) == 3 and trainings[0][trainings[0].index("--max-steps") + 1] == "0"
    assert all("--max-steps" not in c for c in trainings[1:])


def test_bench_quick_levers_and_whole_process_at_the_best_dtype(tmp_path):
    """The lever runs (bf16, fp32 with the Winograd row) and the whole-process row at the machine's best dtype on
    both sides, with the CPU flags it saw (issue #23)."""
    from marigold.core.devices import cpu_has_fast_bf16

    env = {**os.environ, "MARIGOLD_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path / "out"), "--only", "levers,whole",
                    "--levers-runs", "bf16,fp32-avx2"], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=900)
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    bf16, fp32 = report["levers"]
    assert (bf16["dtype"], bf16["isa"], fp32["dtype"], fp32["isa"]) == ("bf16", "native", "fp32", "avx2")
    assert any("Winograd" in x["config"] for x in fp32["levers"])
    assert not any("Winograd" in x["config"] for x in bf16["levers"])  # bf16 never takes it
    w = report["whole_process"]
    assert w["ours"]["dtype"] == w["diffusers"]["dtype"] == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert "avx2" in w["cpu_flags"] or "no AVX2" in w["cpu_flags"]
    md = (tmp_path / "out" / "results.md").read_text()
    assert "oneDNN limited to AVX2" in md and "whole process time" in md


def test_device_levers_runs_on_the_cpu(tmp_path):
    """bench/device_levers.py is what a session with a GPU runs to time each lever there (issue #23); here on the
    CPU with a tiny checkpoint: every configuration timed in both dtypes, beside diffusers, and a policy suggested."""
    env = {**os.environ, "MARIGOLD_BENCH_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    out = tmp_path / "levers.json"
    r = subprocess.run([sys.executable, "-m", "bench.device_levers", "--device", "cpu", "--size", "tiny",
                        "--resolution", "64", "--repeats", "1", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    fp32, bf16 = res["runs"]
    assert len(fp32["configs"]) == 5 and len(bf16["configs"]) == 4  # Winograd: fp32 only
    assert all(c["median_s"] > 0 and len(c["time_s"]) == 2 for run in res["runs"] for c in run["configs"])
    assert set(res["suggested_policy"]) <= {"channels_last", "blocks", "subpixel", "attention", "winograd"}
    assert "suggested devices.POLICY['cpu']" in r.stdout and "| bf16 | diffusers' MarigoldDepthPipeline |" in r.stdout


def test_modality_round_trip_scores_a_lossless_vae_perfect_and_the_mean_map_as_the_row_does():
    """``bench.quality.modality_round_trip`` (``--round-trip VAE``): the ceiling a stand-in's VAE sets. A VAE that
    returns its input exactly scores no error on every target; the mean map is the one the modality row uses."""
    from types import SimpleNamespace

    from bench import quality as Q

    class Lossless:
        def encode(self, x):
            return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: x))

        def decode(self, z):
            return SimpleNamespace(sample=z)

    for task in ("normals", "iid-lighting"):
        got = Q.modality_round_trip(Lossless(), task, n=2, train_mean=4)
        base = Q._modality_baseline(task, 2, 4)[1]["metrics"]
        assert got["mean map"] == {k: base[k] for k, _ in Q.HEADLINE[task]}
        for k, lower in Q.HEADLINE[task]:
            if "angle" in k:
                assert got["round trip"][k] < 0.5, (k, got)  # degrees
            elif k.endswith("_mse"):
                assert got["round trip"][k] < 1e-6 < got["mean map"][k], (k, got)
            else:
                assert got["round trip"][k] > 99.0, (k, got)  # % of pixels under 11.25°
