"""Training other modalities: an IID checkpoint our trainer writes runs the same in diffusers'
MarigoldIntrinsicsPipeline and in ours, and in the CLI; bases that cannot serve a task are refused in one line
with nothing written; a toy modality defined in this file alone (one entry + one loader) trains and runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import marigold

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--resolution", "32", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3", "--num-workers", "0",
        "--set", "checkpoint_every=0", "--set", "lr_schedule.warmup_steps=1", "--no-progress",
        "--set", "export.default_processing_resolution=32"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false"}


def _finetune(*args, check=True):
    return subprocess.run([sys.executable, "-m", "train.finetune", *args], env=_env(), cwd=ROOT,
                          capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def iid_run(tiny_sd2, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("iid") / "run"
    _finetune("--base", str(tiny_sd2), "--task", "iid-appearance", "--data", "synthetic:flat+materials",
              "--output", str(out), "--max-steps", "3", "--seed", "1", *TINY)
    return out / "final"


def test_iid_checkpoint_matches_diffusers_and_runs_in_the_cli(iid_run, tmp_path):
    from diffusers import MarigoldIntrinsicsPipeline

    index = json.loads((iid_run / "model_index.json").read_text())
    assert index["_class_name"] == "MarigoldIntrinsicsPipeline"
    assert index["target_properties"]["target_names"] == ["albedo", "material"]
    assert "modality" not in index  # a built-in entry: the published keys say it all
    ours = marigold.load(iid_run, device="cpu", dtype="fp32", progress=False)
    assert ours.modality.name == "iid-appearance" and ours.unet.config.in_channels == 12
    ref = MarigoldIntrinsicsPipeline.from_pretrained(str(iid_run), dtype=torch.float32)
    ref.set_progress_bar_config(disable=True)
    image = torch.rand(1, 3, 29, 41, generator=torch.Generator().manual_seed(0))
    for steps, ensemble in ((2, 1), (1, 3)):
        expected = ref(image, num_inference_steps=steps, ensemble_size=ensemble, processing_resolution=32,
                       output_type="pt", generator=torch.Generator().manual_seed(3)).prediction  # [T,3,H,W]
        got = marigold.predict_intrinsics(ours, image, num_inference_steps=steps, ensemble_size=ensemble,
                                          processing_resolution=32, seed=3).prediction  # [1,T·3,H,W]
        assert got.shape == (1, 6, 29, 41) and expected.shape == (2, 3, 29, 41)
        assert (got.reshape(2, 3, 29, 41) - expected).abs().max().item() < 1e-4

    from PIL import Image

    Image.fromarray((np.random.default_rng(0).uniform(0, 1, (24, 32, 3)) * 255).astype(np.uint8)).save(
        tmp_path / "room.png")
    from marigold.cli import main

    assert main([str(tmp_path / "room.png"), "-o", str(tmp_path / "out"), "--checkpoint", str(iid_run),
                 "--device", "cpu", "--dtype", "fp32"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["room_albedo.png", "room_material.png"]


def test_bases_that_cannot_serve_the_task_are_refused(iid_run, depth_checkpoint, tmp_path):
    out = tmp_path / "run"
    r = _finetune("--base", str(depth_checkpoint), "--task", "iid-lighting", "--output", str(out), "--max-steps",
                  "1", *TINY, check=False)
    assert r.returncode == 2 and not out.exists()
    assert "is a Marigold depth checkpoint; continuing it as a iid-lighting model" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    bad = tmp_path / "bad"
    shutil.copytree(iid_run, bad)
    cfg = json.loads((bad / "unet" / "config.json").read_text())
    (bad / "unet" / "config.json").write_text(json.dumps({**cfg, "in_channels": 8}))
    r = _finetune("--base", str(bad), "--task", "iid-appearance", "--output", str(out), "--max-steps", "1", *TINY,
                  check=False)
    assert r.returncode == 2 and not out.exists()
    assert "unet has 8 input and 8 output channels; --task iid-appearance" in r.stderr
    r = _finetune("--base", str(iid_run), "--task", "edges", "--output", str(out), check=False)
    assert r.returncode != 0 and "--task 'edges' is not a modality" in r.stderr and not out.exists()


def test_continuing_an_iid_checkpoint_keeps_its_channels(iid_run, tmp_path):
    """Continued with the end-to-end objective too (one step at t = 999, MSE on each decoded target)."""
    out = tmp_path / "more"
    _finetune("--base", str(iid_run), "--task", "iid-appearance", "--data", "synthetic:flat+materials",
              "--output", str(out), "--max-steps", "1", "--mode", "e2e", "--set", "e2e.target_weights={material: 3}",
              *TINY)
    cfg = json.loads((out / "final" / "unet" / "config.json").read_text())
    assert (cfg["in_channels"], cfg["out_channels"]) == (12, 8)
    r = _finetune("--base", str(iid_run), "--task", "iid-appearance", "--data", "synthetic:flat+materials",
                  "--output", str(tmp_path / "bad"), "--max-steps", "1", "--mode", "e2e",
                  "--set", "e2e.target_weights={residual: 3}", *TINY, check=False)
    assert r.returncode != 0 and "the task's targets are albedo, material" in r.stderr
    assert not (tmp_path / "bad" / "final").exists()


# ---------------------------------------------------------------------------------------------------------------
# A toy modality in one entry plus one loader, nothing else


def test_a_toy_modality_is_one_entry_and_one_loader(tiny_sd2, tmp_path, monkeypatch, capsys):
    from marigold.core import modality as mod
    from train import finetune
    from train.data import register_dataset
    from train.data.synthetic import SyntheticDataset

    from train.evaluate import Evaluation
    from train.evaluate import main as evaluate_main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    validated = []

    def score(model, n: int) -> dict:  # the toy's own scoring: IoU of the predicted edges on held-out scenes
        ds = Edges(n, 32, 32, "val", "flat")
        ious = []
        for i in range(n):
            s = ds[i]
            pred = marigold.predict(model, s.rgb, num_inference_steps=1, processing_resolution=32).prediction
            p, gt = pred[0, 0].numpy() > 0.5, s.targets["edges"] > 0.5  # [H,W]
            ious.append((p & gt).sum() / max((p | gt).sum(), 1))
        return {"dataset": "synthetic-edges", "n": n, "metrics": {"edges_iou": float(np.mean(ious))}, "rows": []}

    # the entry names how it is scored: train.evaluate and the trainer's validation ask it, nothing else changes
    evaluation = Evaluation(lambda model, spec, a: score(model, int(spec.partition(":")[2] or 1)),
                            lambda model, vcfg, size: validated.append((model.modality.name, size))
                            or score(model, vcfg["num_images"]))
    edges = mod.register(mod.Modality("edges", "edges", (mod.Target("edges", 1, "raw"),), "MarigoldDepthPipeline",
                                      "depth", files=("_edges.png",), evaluation=evaluation), replace=True)

    class Edges(SyntheticDataset):  # the loader: depth discontinuities of the synthetic scenes
        def __getitem__(self, i):
            s = super().__getitem__(i)
            d = np.log(np.where(s.valid, s.depth, 100.0))
            g = np.zeros_like(d)
            g[:, 1:] = np.abs(np.diff(d, axis=1))
            g[1:, :] = np.maximum(g[1:, :], np.abs(np.diff(d, axis=0)))
            s.targets = {"edges": (g > 0.05).astype(np.float32)}
            return s

    register_dataset("synthetic-edges", lambda path, **kw: Edges(texture="flat", **kw))
    try:
        out = tmp_path / "edges"
        assert finetune.main(["--base", str(tiny_sd2), "--task", "edges", "--data", "synthetic-edges",
                              "--output", str(out), "--max-steps", "2", *TINY, "--set", "validation.every=2",
                              "--set", "validation.num_images=1"]) == 0
        assert validated == [("edges", (24, 32))]  # at the training size; the trainer's validation asked the entry
        index = json.loads((out / "final" / "model_index.json").read_text())
        assert index["modality"] == "edges"
        model = marigold.load(out / "final", device="cpu", dtype="fp32", progress=False)
        assert model.modality is edges and model.unet.config.out_channels == 4
        from PIL import Image

        from marigold.cli import main

        Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(tmp_path / "box.png")
        assert main([str(tmp_path / "box.png"), "-o", str(tmp_path / "cli"), "--checkpoint", str(out / "final"),
                     "--device", "cpu", "--dtype", "fp32", "--npy"]) == 0
        assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == ["box_edges.npy", "box_edges.png"]
        assert np.load(tmp_path / "cli" / "box_edges.npy").shape[-2:] == (24, 32)
        capsys.readouterr()
        assert evaluate_main(["--checkpoint", str(out / "final"), "--dataset", "synthetic-edges:2",
                              "--json", str(tmp_path / "eval.json")]) == 0
        assert "edges_iou" in capsys.readouterr().out  # train.evaluate printed the entry's scores
        res = json.loads((tmp_path / "eval.json").read_text())
        assert res[0]["n"] == 2 and 0.0 <= res[0]["metrics"]["edges_iou"] <= 1.0
    finally:
        mod.MODALITIES.pop("edges", None)
        from train.data import REGISTERED

        REGISTERED.pop("synthetic-edges", None)
