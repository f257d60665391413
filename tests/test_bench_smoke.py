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
