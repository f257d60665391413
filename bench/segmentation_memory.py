"""What text-grounded segmentation costs in memory: ``python -m bench.segmentation_memory [--size full]``.

Issue 19 ("How we will know", Memory): the peak RSS of a segmentation run minus that of a depth run at the same
size is about the text encoder's size, and only while it is loaded (:mod:`marigold.core.prompts` loads it for the
prompts not yet encoded and frees it before the UNet runs); a depth run after it pays nothing for it.

Checkpoints: the full-size Marigold v1-1 architecture with random weights (bench.ckpt, built once); the
segmentation checkpoint is that same folder's parts (linked, not copied) under a segmentation ``model_index.json``
(the layout ``train.finetune --task segmentation`` writes), so that both runs hold the very same UNet and VAE.
Every job runs in its own process, one after the other, fp32 on the CPU, at processing resolution 256 (1 step) on
a 320×240 photo (``skimage.data.coffee()``); the prompt-embedding cache is emptied before each job, so the text
encoder really loads.

Per job, from ``/proc/self/status``: the RSS once the model is loaded; the run's peak (``VmHWM`` reset after the
load through ``/proc/self/clear_refs``, so it is the run's alone, not the load's); the RSS held after the run.
Jobs:

* ``depth``: load the depth checkpoint, ``marigold.predict``;
* ``segmentation``: load the segmentation checkpoint, ``marigold.segment(prompt="car")`` (loads the text encoder),
  then the same call again (the prompt's embedding is cached: no text encoder);
* ``segmentation-then-depth``: a segmentation run, the model dropped, then the depth checkpoint loaded and run
  in the same process: its peak against the ``depth`` job's.

Rows go to ``bench/segmentation_memory_results.json`` (full size) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "segmentation_memory_results.json"
JOBS = ("depth", "segmentation", "segmentation-then-depth")
PROMPT_CACHE = "marigold_prompt_embeddings"  # marigold.core.prompts.PROMPT_DIR: emptied before every job


def status_gb(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in GB (the kernel's numbers, kB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError(f"{key} not in /proc/self/status")


def reset_peak() -> None:
    """From now on ``VmHWM`` is the peak since this call (Linux: writing 5 to clear_refs resets it)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def photo():
    from .tiling import photo as coffee

    return coffee(320)  # [240,320,3] uint8: the tiling bench's photo at 320 px


def segmentation_checkpoint(depth: Path, out: Path) -> Path:
    """``depth``'s parts linked under a segmentation ``model_index.json`` (tests/conftest.py's layout)."""
    if (out / "model_index.json").is_file():
        return out
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (tmp / part).symlink_to((depth / part).resolve(), target_is_directory=True)
    index = json.loads((depth / "model_index.json").read_text())
    for k in ("scale_invariant", "shift_invariant"):
        index.pop(k, None)
    index.update(_class_name="MarigoldSegmentationPipeline", prediction_type="segmentation")
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def text_encoder_gb(folder: Path) -> float:
    """The fp32 text encoder's weights (what loading it adds), from its safetensors header."""
    from safetensors import safe_open

    files = [p for p in (folder / "text_encoder").glob("*.safetensors") if ".fp16." not in p.name]
    n = 0
    for p in files:
        with safe_open(str(p), framework="pt") as f:
            for k in f.keys():
                n += _numel(f.get_slice(k).get_shape())
    return n * 4 / 2**30


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def worker(spec: dict) -> dict:
    import gc

    import marigold
    from marigold.core.prompts import prompt_embedding

    img, res, steps = photo(), spec["resolution"], spec["steps"]
    kw = dict(num_inference_steps=steps, processing_resolution=res, seed=0)
    row: dict = {"job": spec["job"]}

    def run_depth(prefix: str) -> None:
        t0 = time.perf_counter()
        model = marigold.load(spec["depth"], device="cpu", dtype="fp32", progress=False)
        row[f"{prefix}rss_loaded_gb"] = status_gb("VmRSS")
        reset_peak()
        marigold.predict(model, img, **kw)
        row[f"{prefix}run_peak_gb"] = status_gb("VmHWM")
        row[f"{prefix}rss_after_gb"] = status_gb("VmRSS")
        row[f"{prefix}seconds"] = round(time.perf_counter() - t0, 1)

    if spec["job"] == "depth":
        run_depth("")
    else:
        t0 = time.perf_counter()
        model = marigold.load(spec["segmentation"], device="cpu", dtype="fp32", progress=False)
        assert model.takes_prompt and not model.prompt_embeddings
        row["rss_loaded_gb"] = status_gb("VmRSS")
        reset_peak()
        # marigold.segment's first step on its own, to see it: load the text encoder, encode, free it
        prompt_embedding(model, "car")
        row["encode_peak_gb"] = status_gb("VmHWM")
        row["rss_after_encode_gb"] = status_gb("VmRSS")
        marigold.segment(model, img, "car", **kw)  # the rest of the run (the embedding is cached on the model)
        row["run_peak_gb"] = status_gb("VmHWM")  # the whole run's: the encoding and the sampling
        row["rss_after_gb"] = status_gb("VmRSS")
        row["seconds"] = round(time.perf_counter() - t0, 1)
        if spec["job"] == "segmentation":
            reset_peak()
            marigold.segment(model, img, "car", **kw)  # the embedding is cached on the model: no text encoder
            row["again_run_peak_gb"] = status_gb("VmHWM")
            row["again_rss_after_gb"] = status_gb("VmRSS")
        else:
            del model
            gc.collect()
            row["rss_dropped_gb"] = status_gb("VmRSS")
            run_depth("depth_")
    row["process_peak_gb"] = status_gb("VmHWM")  # since the last reset: the last run's
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}


def summary(rows: dict, te_gb: float) -> dict:
    """The issue's two checks, from the rows."""
    out = {"text_encoder_fp32_gb": round(te_gb, 6)}  # tiny checkpoints: a few hundred KB
    d, s, sd = rows.get("depth"), rows.get("segmentation"), rows.get("segmentation-then-depth")
    if s:
        out["encode_peak_minus_loaded_gb"] = round(s["encode_peak_gb"] - s["rss_loaded_gb"], 3)
        out["encode_ratio_to_text_encoder"] = round(out["encode_peak_minus_loaded_gb"] / te_gb, 2) if te_gb else None
        out["after_encode_minus_loaded_gb"] = round(s["rss_after_encode_gb"] - s["rss_loaded_gb"], 3)
    if d and s:
        out["segmentation_minus_depth_run_peak_gb"] = round(s["run_peak_gb"] - d["run_peak_gb"], 3)
        out["cached_prompt_minus_depth_run_peak_gb"] = round(s["again_run_peak_gb"] - d["run_peak_gb"], 3)
        out["segmentation_minus_depth_rss_after_gb"] = round(s["rss_after_gb"] - d["rss_after_gb"], 3)
    if d and sd:
        out["depth_after_segmentation_minus_depth_run_peak_gb"] = round(sd["depth_run_peak_gb"] - d["run_peak_gb"], 3)
    return out


def markdown(rows: dict, summ: dict, spec: dict) -> str:
    lines = [f"processing resolution {spec['resolution']}, {spec['steps']} step(s), 320×240 photo, fp32, CPU; GB",
             "",
             "| job | RSS loaded | run peak | RSS after the run | then |",
             "|---|---|---|---|---|"]
    for name in JOBS:
        r = rows.get(name)
        if r is None:
            lines.append(f"| {name} | not run | | | |")
            continue
        then = ""
        if name == "segmentation":
            then = (f"encoding the prompt: peak {r['encode_peak_gb']:.2f}, then RSS {r['rss_after_encode_gb']:.2f}; "
                    f"same prompt again: run peak {r['again_run_peak_gb']:.2f}")
        elif name == "segmentation-then-depth":
            then = (f"model dropped: RSS {r['rss_dropped_gb']:.2f}; depth loaded {r['depth_rss_loaded_gb']:.2f}, "
                    f"run peak {r['depth_run_peak_gb']:.2f}")
        lines.append(f"| {name} | {r['rss_loaded_gb']:.2f} | {r['run_peak_gb']:.2f} | {r['rss_after_gb']:.2f} | "
                     f"{then} |")
    lines += ["", f"text encoder (fp32 weights): {summ['text_encoder_fp32_gb']:.2f} GB"]
    if "encode_peak_minus_loaded_gb" in summ:
        lines += [f"while the text encoder is loaded (encoding the prompt): peak − RSS loaded "
                  f"{summ['encode_peak_minus_loaded_gb']:+.2f} GB ({summ['encode_ratio_to_text_encoder']}× the text "
                  f"encoder); once it is freed: RSS − RSS loaded {summ['after_encode_minus_loaded_gb']:+.2f} GB"]
    if "segmentation_minus_depth_run_peak_gb" in summ:
        lines += [f"segmentation run peak − depth run peak: {summ['segmentation_minus_depth_run_peak_gb']:+.2f} GB; "
                  f"with the prompt cached: {summ['cached_prompt_minus_depth_run_peak_gb']:+.2f} GB",
                  f"RSS after the run, segmentation − depth: {summ['segmentation_minus_depth_rss_after_gb']:+.2f} GB"]
    if "depth_after_segmentation_minus_depth_run_peak_gb" in summ:
        lines.append(f"depth run after a segmentation run − depth run alone (peak): "
                     f"{summ['depth_after_segmentation_minus_depth_run_peak_gb']:+.2f} GB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.segmentation_memory", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, from {', '.join(JOBS)}")
    ap.add_argument("--resolution", type=int, default=256, help="processing resolution (default 256)")
    ap.add_argument("--steps", type=int, default=1, help="denoising steps (default 1)")
    ap.add_argument("--size", default="full", help="checkpoint size for bench.ckpt (full; tiny for a smoke run)")
    ap.add_argument("--out", default=None, help=f"JSON results (default {RESULTS.relative_to(ROOT)} at full size)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    from bench import ckpt

    jobs = args.jobs.split(",")
    for name in jobs:
        if name not in JOBS:
            raise SystemExit(f"--jobs: unknown job {name!r}; choose from {', '.join(JOBS)}")
    depth = ckpt.ensure(args.size, log=lambda m: print(m, file=sys.stderr))
    seg = segmentation_checkpoint(depth, ckpt.CACHE / f"segmentation-{args.size}")
    spec = {"depth": str(depth), "segmentation": str(seg), "resolution": args.resolution, "steps": args.steps}
    rows: dict = {}
    for name in jobs:
        shutil.rmtree(seg / PROMPT_CACHE, ignore_errors=True)  # the text encoder must load, every job
        print(f"{name} …", file=sys.stderr, flush=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        r = subprocess.run([sys.executable, "-m", "bench.segmentation_memory", "--worker",
                            json.dumps({**spec, "job": name})], cwd=ROOT, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
        rows[name] = json.loads(r.stdout.strip().splitlines()[-1])
        print(json.dumps(rows[name]), file=sys.stderr, flush=True)
    summ = summary(rows, text_encoder_gb(seg))
    out = Path(args.out) if args.out else (RESULTS if args.size == "full" else None)
    if out is not None:
        out.write_text(json.dumps({"spec": {k: v for k, v in spec.items() if k not in ("depth", "segmentation")},
                                   "size": args.size, "rows": rows, "summary": summ}, indent=1) + "\n")
    print(markdown(rows, summ, spec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
