r"""Tiny-scale learning check for the intrinsics modalities (issue #18's acceptance), on this CPU.

    python -m train.modality_acceptance --base TINY_SD2 --out /tmp/acc [--tasks iid-lighting iid-appearance]
        [--seeds 0 1 2] [--steps 300] [--eval 8]

For each task and seed: fine-tunes the tiny SD2 stand-in (``python -m train.tiny``) with
``train/configs/cpu_tiny_iid.yaml`` on flat-coloured synthetic scenes with materials, then scores on held-out
scenes (MSE per target, in prs-eth's scoring spaces, see ``train.evaluate.score_targets``):

- the trained model,
- the untrained model (the same base, widened, zero steps),
- the best constant prediction: the training scenes' per-pixel mean map.

Prints one table and writes ``OUT/results.json``. Each run is ``nice``-friendly: one process, one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

KEYS = {"iid-lighting": ("albedo_mse", "shading_mse", "residual_mse"),
        "iid-appearance": ("albedo_mse", "material_mse")}


def _train(base: str, task: str, seed: int, steps: int, out: Path, mode: str, config: Path) -> Path:
    if not (out / "final" / "model_index.json").is_file():
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep +
               os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        subprocess.run([sys.executable, "-m", "train.finetune", "--config",
                        str(config), "--base", base,
                        "--task", task, "--seed", str(seed), "--max-steps", str(steps), "--output", str(out),
                        "--mode", mode, "--no-progress"], check=True, env=env)
    return out / "final"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.modality_acceptance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the tiny SD2 stand-in (python -m train.tiny)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", nargs="+", default=list(KEYS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--eval", type=int, default=8, help="held-out scenes")
    ap.add_argument("--mode", choices=("diffusion", "e2e"), default="diffusion",
                    help="diffusion: prs-eth's objective, 4 sampling steps; e2e: one step at t = 999 with the MSE "
                         "on the decoded targets (Garcia et al.), 1 sampling step")
    ap.add_argument("--train-mean", type=int, default=200, help="training scenes averaged for the mean map")
    ap.add_argument("--config", type=Path, default=Path(__file__).parent / "configs" / "cpu_tiny_iid.yaml",
                    help="the recipe (its resolution sets the 4:3 size of the scenes: 64 → 48×64); "
                         "configs/cpu_small_iid.yaml with the small stand-in (train.tiny --size small --iid)")
    a = ap.parse_args(argv)

    import marigold

    from .data.synthetic import SyntheticDataset
    from .evaluate import evaluate_targets, mean_map_baseline, synthetic_target_samples

    from .config import load_file

    out = Path(a.out)
    size = int(load_file(a.config).get("resolution", 64))
    h, w = size * 3 // 4, size  # the renders' 3:4, at the recipe's training resolution
    held = synthetic_target_samples(a.eval, "heldout", h, w, texture="flat")
    train = SyntheticDataset(a.train_mean, h, w, "train", "flat", materials=True)
    train = [train[i] for i in range(len(train))]
    results = {}
    for task in a.tasks:
        m = marigold.modality.get(task)
        base_row = mean_map_baseline(m, train, held)["metrics"]
        rows = {"mean map": base_row}
        print(f"{task} mean map: " + "  ".join(f"{k} {base_row[k]:.4f}" for k in KEYS[task]), flush=True)
        for seed in a.seeds:
            for label, steps in (("untrained", 0), ("trained", a.steps)):
                if label == "untrained" and seed != a.seeds[0]:
                    continue  # the untrained model does not depend on the seed
                folder = _train(a.base, task, seed, steps, out / f"{task}-s{seed}-{steps}", a.mode, a.config)
                model = marigold.load(folder, device="cpu", dtype="fp32", progress=False)
                res = evaluate_targets(model, held, steps=1 if a.mode == "e2e" else 4, processing_resolution=size,
                                       seed=0)["metrics"]
                key = f"{label} (seed {seed})" if label == "trained" else label
                rows[key] = res
                print(f"{task} {key}: " + "  ".join(f"{k} {res[k]:.4f} ({res[k] / base_row[k]:.2f}x)"
                                                   for k in KEYS[task]), flush=True)
        results[task] = rows
        print(f"\n{task}: MSE on {a.eval} held-out scenes (ratio to the training-mean map)")
        for name, r in rows.items():
            cells = "  ".join(f"{k} {r[k]:.4f} ({r[k] / base_row[k]:.2f}x)" for k in KEYS[task])
            print(f"  {name:<18} {cells}")
        trained = [rows[k] for k in rows if k.startswith("trained")]
        for k in KEYS[task]:
            v = np.array([r[k] for r in trained]) / base_row[k]
            print(f"  {k}: trained/mean-map {v.mean():.2f}x ± {v.std():.2f} over {len(v)} seeds, max {v.max():.2f}x")
        (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
