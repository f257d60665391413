r"""The tiny-scale learning check of text-grounded segmentation (issue 19), on the CPU in minutes per seed.

    python -m train.segmentation_tiny --base TINY_SD2 --runs RUNS [--seeds 0 1 2] [--train] [--json out.json]

Per seed: (with ``--train``) ``train.finetune`` with ``configs/cpu_tiny_segmentation.yaml`` into ``RUNS/seed<k>``;
then the threshold is chosen on the ``val`` synthetic scenes (the tiny VAE does not paint the 0.93 white of SD2's;
the threshold is a user knob) and the model is scored on the ``heldout`` scenes with
:func:`train.segmentation_eval.evaluate_segmentation`: mIoU with the right prompt, with a wrong prompt (another
label of the same scene), the best constant mask, and the overlap of the masks of two labels of one scene.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.3, 0.951, 0.05))


def train(base: str, out: Path, seed: int, steps: int | None, config: Path = ROOT / "train/configs/"
          "cpu_tiny_segmentation.yaml") -> None:
    cmd = [sys.executable, "-m", "train.finetune", "--config", str(config),
           "--base", base, "--output", str(out), "--seed", str(seed), "--num-workers", "0", "--no-progress",
           "--set", "checkpoint_every=0"] + (["--max-steps", str(steps)] if steps else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def score(folder: Path, val_scenes: int, heldout_scenes: int, size: int = 64) -> dict:
    """``size``: the recipe's training resolution; the scenes are rendered at its 3:4 (64 → 48×64)."""
    import marigold

    from .segmentation_eval import evaluate_segmentation, synthetic_segmentation_set

    model = marigold.load(folder, device="cpu", dtype="fp32")
    hw = (size * 3 // 4, size)
    val = synthetic_segmentation_set(val_scenes, "val", *hw)
    kw = dict(steps=1, processing_resolution=size, seed=0)
    by_t = evaluate_segmentation(model, val, baselines=False, thresholds=list(THRESHOLDS), **kw)["by_threshold"]
    best = max(by_t, key=by_t.get)
    res = evaluate_segmentation(model, synthetic_segmentation_set(heldout_scenes, "heldout", *hw), threshold=best,
                                **kw)
    m = res["metrics"]
    return {"threshold": best, "val_miou": by_t[best], **{k: m[k] for k in (
        "miou", "ciou", "wrong_prompt_miou", "constant_miou", "cross_prompt_overlap")},
        "per_prompt": {k[4:]: v for k, v in m.items() if k.startswith("iou/")}, "n": res["n"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.segmentation_tiny", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="tiny SD2 stand-in (python -m train.tiny)")
    ap.add_argument("--runs", required=True, help="folder of the runs (seed<k>/final)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train", action="store_true", help="train first (else score the existing runs)")
    ap.add_argument("--steps", type=int, default=None, help="override max_steps")
    ap.add_argument("--val-scenes", type=int, default=8)
    ap.add_argument("--heldout-scenes", type=int, default=16)
    ap.add_argument("--json", default=None)
    ap.add_argument("--config", type=Path, default=ROOT / "train" / "configs" / "cpu_tiny_segmentation.yaml",
                    help="the recipe; configs/cpu_small_segmentation.yaml with the small stand-in "
                         "(python -m train.tiny --size small); its resolution sets the scenes' size")
    a = ap.parse_args(argv)
    from .config import load_file

    size = int(load_file(a.config).get("resolution", 64))
    rows = {}
    for seed in a.seeds:
        out = Path(a.runs) / f"seed{seed}"
        if a.train:
            train(a.base, out, seed, a.steps, a.config)
        rows[seed] = score(out / "final", a.val_scenes, a.heldout_scenes, size)
        r = rows[seed]
        print(f"seed {seed}: threshold {r['threshold']:.2f}, mIoU {r['miou']:.3f} (wrong prompt "
              f"{r['wrong_prompt_miou']:.3f}, best constant {r['constant_miou']:.3f}), cIoU {r['ciou']:.3f}, "
              f"two labels' masks overlap {r['cross_prompt_overlap']:.3f}", flush=True)
    margins = [r["miou"] - max(r["wrong_prompt_miou"], r["constant_miou"]) for r in rows.values()]
    overlaps = [r["cross_prompt_overlap"] for r in rows.values()]
    print(f"margin over the best prompt-blind answer: {np.mean(margins):.3f} (min {min(margins):.3f}); "
          f"overlap of two labels' masks: {np.mean(overlaps):.3f} (max {max(overlaps):.3f})")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
