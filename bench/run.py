"""``python -m bench``: this project vs diffusers' MarigoldDepthPipeline, side by side, in one invocation.

Every measurement of a side runs in its own process (so its peak RSS is its own, read from the kernel's
rusage of that child), and the sides alternate (A B, then B A, …). Both sides get the same checkpoint (the
real Marigold v1-1 architecture with random weights, built once and cached outside the repository), the same
photo, the same seed and settings. Reported: median wall time, peak RSS, load time, and ours/theirs ratios, as
a markdown table and as JSON (``--out``).

    python -m bench                  # the full benchmark (CPU: about 30-40 minutes on 2 cores)
    python -m bench --quick          # smoke test on a tiny checkpoint (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = False


# ---------------------------------------------------------------------------------------------------------------
# Running one side in a child process


# oneDNN limited to AVX2 kernels: how a CPU without AVX-512 runs, approximated on this one (the same cores and caches;
# MKL's fp32 GEMM on AMD CPUs takes its AVX2 path either way)
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def run_child(args: list[str], log, extra_env: dict | None = None) -> dict:
    """Run ``python args…`` in ROOT; returns the RESULT json plus wall time and the child's own peak RSS."""
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if QUICK:
        # tiny models: per-op latency dominates, and with 2 OpenMP threads on a busy 2-core machine every op
        # waits for a descheduled thread (~1000× slower); one thread keeps the smoke test at seconds
        env["OMP_NUM_THREADS"] = "1"
    import tempfile

    with tempfile.TemporaryFile("w+") as errf:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errf,
                             text=True)
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)  # this child's own rusage (peak RSS)
        p.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        log(err[-3000:])
        raise RuntimeError(f"child {' '.join(args[:3])}… failed with exit code {p.returncode}")
    result: dict = {}
    for line in out.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
    result["wall_s"] = wall
    result["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9  # Linux reports KiB
    return result


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def prepare_photo(work: Path, size: tuple[int, int]) -> Path:
    """A real photo (skimage.data.coffee) resized to ``size`` (W, H), as a JPEG."""
    from PIL import Image
    from skimage import data

    path = work / f"photo_{size[0]}x{size[1]}.jpg"
    if not path.exists():
        Image.fromarray(data.coffee()).resize(size, Image.LANCZOS).save(path, quality=95)
    return path


def prepare_tensor(photo: Path, resolution: int, work: Path) -> Path:
    """The photo at ``resolution`` (longest side), resized once in fp32 (antialiased bilinear, as both do), as
    an .npy [1,3,H,W] in 0..1: both sides get exactly this tensor and process it at its native size."""
    import numpy as np
    import torch

    from marigold.core import image as img

    path = work / f"{photo.stem}_{resolution}.npy"
    if not path.exists():
        x = img.to_tensor(str(photo))  # [1,3,H,W]
        h, w = img.processing_size(tuple(x.shape[-2:]), resolution)
        x = img.resize(x, (h, w), "bilinear", antialias=True).clamp(0, 1)
        np.save(path, x.numpy())
    return path


# ---------------------------------------------------------------------------------------------------------------
# Comparing outputs

TOLERANCE = {"fp32": {"max": 1e-3}, "bf16": {"mean": 1 / 128}}


def compare(a_file: str, b_file: str, dtype: str) -> dict:
    import numpy as np

    a, b = np.load(a_file), np.load(b_file)
    key = "members" if "members" in a and "members" in b else "prediction"
    d = np.abs(a[key].astype(np.float64) - b[key].astype(np.float64))
    pd = np.abs(a["prediction"].astype(np.float64) - b["prediction"].astype(np.float64))
    tol = TOLERANCE[dtype]
    ok = bool(d.max() <= tol["max"]) if "max" in tol else bool(d.mean() <= tol["mean"])
    return {"compared": key, "max_abs": float(d.max()), "mean_abs": float(d.mean()), "ok": ok,
            "tolerance": tol, "prediction_max_abs": float(pd.max()), "prediction_mean_abs": float(pd.mean())}


# ---------------------------------------------------------------------------------------------------------------
# The benchmark


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def in_process_cases(args, ckpt: str, images: dict[int, Path], work: Path, log) -> list[dict]:
    rows = []
    for case in args.cases:
        dtype, res, steps, ens, rounds = case["dtype"], case["res"], case["steps"], case["ens"], case["rounds"]
        name = f"{dtype} {res}px {steps} step{'s' if steps > 1 else ''} × ens {ens}"
        got = {"ours": [], "diffusers": []}
        for r in range(rounds):
            order = ("ours", "diffusers") if r % 2 == 0 else ("diffusers", "ours")
            for side in order:
                spec = {"side": side, "checkpoint": ckpt, "dtype": dtype, "image": str(images[res]), "steps": steps,
                        "ensemble": ens, "batch_size": case.get(f"batch_{side}", 1), "seed": 0,
                        "save": str(work / f"{side}_{dtype}_{res}_{steps}_{ens}.npz") if r < 2 else None}
                res_ = run_child(["-m", "bench.worker", json.dumps(spec)], log)
                got[side].append(res_)
                log(f"  {name} [{side}] run {res_['runs_s'][0]:.2f}s load {res_['load_s']:.2f}s "
                    f"peak {res_['peak_rss_gb']:.2f} GB")
        o, d = got["ours"], got["diffusers"]
        row = {"case": name, "dtype": dtype, "resolution": res, "steps": steps, "ensemble": ens,
               "batch_size": {"ours": case.get("batch_ours", 1), "diffusers": case.get("batch_diffusers", 1)},
               "rounds": rounds,
               "ours": {"dtype": o[0]["dtype"], "time_s": median([x["runs_s"][0] for x in o]),
                        "peak_rss_gb": median([x["peak_rss_gb"] for x in o]),
                        "load_s": median([x["load_s"] for x in o]),
                        "load_warmup_s": median([x["load_s"] + x["warmup_s"] for x in o]),
                        "all_time_s": [x["runs_s"][0] for x in o]},
               "diffusers": {"dtype": d[0]["dtype"], "time_s": median([x["runs_s"][0] for x in d]),
                             "peak_rss_gb": median([x["peak_rss_gb"] for x in d]),
                             "load_s": median([x["load_s"] for x in d]),
                             "load_warmup_s": median([x["load_s"] + x["warmup_s"] for x in d]),
                             "all_time_s": [x["runs_s"][0] for x in d]}}
        for k in ("time_s", "peak_rss_gb", "load_s", "load_warmup_s"):
            row[f"ratio_{k}"] = row["ours"][k] / row["diffusers"][k]
        row["check"] = compare(o[0]["saved"], d[0]["saved"], dtype)
        rows.append(row)
        log(f"{name}: ours {row['ours']['time_s']:.2f}s / diffusers {row['diffusers']['time_s']:.2f}s "
            f"= {row['ratio_time_s']:.2f}; peak {row['ratio_peak_rss_gb']:.2f}; load {row['ratio_load_s']:.2f}; "
            f"output {'OK' if row['check']['ok'] else 'DIFFERS'} ({row['check']['compared']} max "
            f"{row['check']['max_abs']:.2g} mean {row['check']['mean_abs']:.2g})")
    return rows


def whole_process(args, ckpt: str, photo: Path, work: Path, log) -> dict:
    import numpy as np
    from PIL import Image

    res, steps = args.whole_res, 1
    got = {"ours": [], "diffusers": []}
    outs = {"ours": work / "whole_ours", "diffusers": work / "whole_diffusers"}
    for r in range(args.whole_rounds):
        order = ("ours", "diffusers") if r % 2 == 0 else ("diffusers", "ours")
        for side in order:
            if side == "ours":
                cmd = ["-m", "marigold", str(photo), "-o", str(outs[side]), "--checkpoint", ckpt,
                       "--processing-resolution", str(res), "--steps", str(steps), "--seed", "0",
                       "--dtype", args.whole_dtype]
            else:
                cmd = ["-m", "bench.diffusers_script", str(photo), str(outs[side]), ckpt, str(res), str(steps),
                       args.whole_dtype]
            x = run_child(cmd, log)
            got[side].append(x)
            log(f"  whole process [{side}] {x['wall_s']:.2f}s peak {x['peak_rss_gb']:.2f} GB")
    a = np.asarray(Image.open(next(outs["ours"].glob("*_depth_16bit.png")))).astype(np.float64) / 65535
    b_img = Image.open(next(outs["diffusers"].glob("*_depth_16bit.png")))
    b = np.asarray(b_img).astype(np.float64) / 65535
    a_small = np.asarray(Image.fromarray((a * 65535).astype(np.uint16)).resize(b_img.size, Image.BILINEAR),
                         dtype=np.float64) / 65535 if a.shape != b.shape else a
    out = {"photo": f"{photo.name}", "resolution": res, "steps": steps, "cpu_flags": cpu_flags(),
           "ours": {"time_s": median([x["wall_s"] for x in got["ours"]]),
                    "peak_rss_gb": median([x["peak_rss_gb"] for x in got["ours"]]),
                    "all_time_s": [x["wall_s"] for x in got["ours"]], "dtype": args.whole_dtype},
           "diffusers": {"time_s": median([x["wall_s"] for x in got["diffusers"]]),
                         "peak_rss_gb": median([x["peak_rss_gb"] for x in got["diffusers"]]),
                         "all_time_s": [x["wall_s"] for x in got["diffusers"]], "dtype": args.whole_dtype},
           "output_mean_abs_diff": float(np.abs(a_small - b).mean()),
           "output_shapes": {"ours": list(a.shape), "diffusers": list(b.shape)}}
    out["ratio_time_s"] = out["ours"]["time_s"] / out["diffusers"]["time_s"]
    out["ratio_peak_rss_gb"] = out["ours"]["peak_rss_gb"] / out["diffusers"]["peak_rss_gb"]
    log(f"whole process: ours {out['ours']['time_s']:.2f}s / diffusers {out['diffusers']['time_s']:.2f}s = "
        f"{out['ratio_time_s']:.2f}; peak {out['ratio_peak_rss_gb']:.2f}")
    return out


def ensembling(args, images: dict, log) -> list[dict]:
    rows = []
    for h, w in args.ens_sizes:
        spec = {"image": str(images["photo_npy"]), "size": [h, w], "ensemble": 10,
                "repeats_ours": 3, "repeats_diffusers": 1}
        x = run_child(["-m", "bench.ensembling", json.dumps(spec)], log)
        x["ours_time_s"] = median(x["ours_s"])
        x["diffusers_time_s"] = median(x["diffusers_s"])
        x["speedup"] = x["diffusers_time_s"] / x["ours_time_s"]
        rows.append(x)
        log(f"ensembling 10 × {w}×{h}: ours {x['ours_time_s']:.3f}s diffusers {x['diffusers_time_s']:.2f}s "
            f"= {x['speedup']:.1f}× faster; objective ours {x['ours_objective']:.6g} vs {x['diffusers_objective']:.6g}")
    return rows


def coalign(args, log) -> dict:
    """Co-alignment: our solver vs RollingDepth's 2000 Adam steps, one process (bench/coalign.py)."""
    x = run_child(["-m", "bench.coalign"] + (["--quick"] if args.quick else []), log)
    log(f"co-alignment {x['snippets']} snippets: ours {x['median_s']['ours']:.2f}s reference "
        f"{x['median_s']['reference']:.2f}s = {x['speedup']:.1f}× faster; objective ours {x['objective']['ours']:.6g}"
        f" vs {x['objective']['reference']:.6g}")
    return x


def scaling(args, ckpt: str, images: dict, work: Path, log) -> dict:
    """Ours alone, one process: time vs pixels (1 step, ens 1) and vs ensemble size (1 step, batch 1)."""
    import numpy as np

    extra = [{"image": str(images[r]), "steps": 1, "ensemble": 1, "kind": "pixels", "resolution": r}
             for r in args.scale_res]
    extra += [{"image": str(images[args.scale_ens_res]), "steps": 1, "ensemble": e, "kind": "ensemble"}
              for e in args.scale_ens]
    spec = {"side": "ours", "checkpoint": ckpt, "dtype": args.scale_dtype, "image": str(images[args.scale_res[0]]),
            "steps": 1, "ensemble": 1, "seed": 0, "repeats": 0, "extra": extra}
    x = run_child(["-m", "bench.worker", json.dumps(spec)], log)
    pts = x["extra"]
    px = [p for p in pts if p["kind"] == "pixels"]
    en = [p for p in pts if p["kind"] == "ensemble"]
    out = {"dtype": args.scale_dtype, "pixels": px, "ensemble": en}
    if len(px) >= 2:
        xs, ys = np.array([p["pixels"] for p in px], float), np.array([p["seconds"] for p in px])
        b, a = np.polyfit(xs, ys, 1)
        k = np.polyfit(np.log(xs), np.log(ys), 1)[0]
        out["pixels_fit"] = {"seconds_per_megapixel": b * 1e6, "intercept_s": a, "loglog_exponent": k}
        log(f"scaling with pixels: {b * 1e6:.2f} s/MP + {a:.2f}s; log-log exponent {k:.2f} (1 = linear)")
    if len(en) >= 2:
        xs, ys = np.array([p["ensemble"] for p in en], float), np.array([p["seconds"] for p in en])
        b, a = np.polyfit(xs, ys, 1)
        k = np.polyfit(np.log(xs), np.log(ys), 1)[0]
        out["ensemble_fit"] = {"seconds_per_member": b, "intercept_s": a, "loglog_exponent": k}
        log(f"scaling with ensemble size: {b:.2f} s/member + {a:.2f}s; log-log exponent {k:.2f}")
    return out


def levers(args, ckpt: str, images: dict, log) -> list[dict]:
    """Each lever alone, one process per run: ``args.levers_runs`` names the runs (dtype, and ``-avx2`` for oneDNN
    limited to AVX2 kernels); the bf16 run also times ensemble batching."""
    runs = []
    for run in args.levers_runs:
        dtype, _, isa = run.partition("-")
        res = args.levers_res if dtype == "bf16" else args.levers_res_fp32
        spec = {"checkpoint": ckpt, "dtype": dtype, "image": str(images[res]),
                "batches": args.lever_batches if dtype == "bf16" and not isa else [],
                "batch_ensemble": args.lever_batch_ensemble}
        x = run_child(["-m", "bench.levers", json.dumps(spec)], log, AVX2_ENV if isa == "avx2" else None)
        x.update(resolution=res, dtype=dtype, isa=isa or "native", cpu_flags=cpu_flags())
        for lv in x["levers"]:
            log(f"lever [{run}] {lv['config']}: {median(lv['time_s']):.2f}s (runs "
                f"{', '.join(f'{v:.2f}' for v in lv['time_s'])}), call peak +{max(lv['peak_delta_gb']):.2f} GB")
        for b in x["batches"]:
            log(f"batch {b['batch_size']} of ensemble {b['ensemble']}: {b['time_s']:.2f}s, call peak "
                f"+{b['peak_delta_gb']:.2f} GB")
        runs.append(x)
    return runs


# ---------------------------------------------------------------------------------------------------------------
# Report


def cpu_flags() -> str:
    """The CPU features that decide the best dtype and the kernels' speed (what each table row ran on)."""
    from marigold.core.devices import cpu_flags as read_flags

    flags = read_flags()
    if flags is None:
        return platform.machine()
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags) \
        or "no AVX2"


def machine() -> dict:
    import torch

    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import diffusers

    from marigold.core.devices import cpu_flags as read_flags

    flags = read_flags() or frozenset()

    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "python": platform.python_version(),
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags, "cpu_flags": cpu_flags(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gb']} GiB, torch {m['torch']}, diffusers "
             f"{m['diffusers']}, CUDA: {'yes' if m['cuda'] else 'no'}; checkpoint: {report['checkpoint_kind']}.", ""]
    if report.get("in_process"):
        lines += ["| case | ours dtype | diffusers dtype | ours s | diffusers s | time ratio | ours peak GB | "
                  "diffusers peak GB | peak ratio | ours load s | diffusers load s | load ratio | load + warm-up ratio | "
                  "output check |", "|" + "---|" * 14]
        for r in report["in_process"]:
            c = r["check"]
            lines.append(
                f"| {r['case']} (batch {r['batch_size']['ours']}/{r['batch_size']['diffusers']}, {r['rounds']} "
                f"rounds) | {r['ours']['dtype'].replace('torch.', '')} | "
                f"{r['diffusers']['dtype'].replace('torch.', '')} | {r['ours']['time_s']:.2f} | "
                f"{r['diffusers']['time_s']:.2f} | **{r['ratio_time_s']:.2f}** | {r['ours']['peak_rss_gb']:.2f} | "
                f"{r['diffusers']['peak_rss_gb']:.2f} | **{r['ratio_peak_rss_gb']:.2f}** | {r['ours']['load_s']:.2f} | "
                f"{r['diffusers']['load_s']:.2f} | **{r['ratio_load_s']:.2f}** | {r['ratio_load_warmup_s']:.2f} | "
                f"{'OK' if c['ok'] else 'DIFFERS'} ({c['compared']}: max {c['max_abs']:.1e}, mean {c['mean_abs']:.1e}) |")
        lines.append("")
    w = report.get("whole_process")
    if w:
        lines += ["| whole process | ours s | diffusers s | time ratio | ours peak GB | diffusers peak GB | peak ratio |",
                  "|---|---|---|---|---|---|---|",
                  f"| {w['photo']} at {w['resolution']} px, {w['steps']} step (both {w['ours']['dtype']}; CPU flags: "
                  f"{w.get('cpu_flags', '?')}) | {w['ours']['time_s']:.2f} | {w['diffusers']['time_s']:.2f} | "
                  f"**{w['ratio_time_s']:.2f}** | {w['ours']['peak_rss_gb']:.2f} | {w['diffusers']['peak_rss_gb']:.2f} "
                  f"| **{w['ratio_peak_rss_gb']:.2f}** |", ""]
    if report.get("ensembling"):
        lines += ["| ensembling (10 members) | ours s | diffusers s | speed-up | ours objective | diffusers objective |",
                  "|---|---|---|---|---|---|"]
        for e in report["ensembling"]:
            lines.append(f"| {e['size'][1]}×{e['size'][0]} | {e['ours_time_s']:.3f} | {e['diffusers_time_s']:.2f} | "
                         f"**{e['speedup']:.1f}×** | {e['ours_objective']:.6g} | {e['diffusers_objective']:.6g} |")
        lines.append("")
    c = report.get("coalign")
    if c:
        lines += ["| co-alignment | ours s | reference s (Adam) | speed-up | ours objective | reference objective |",
                  "|---|---|---|---|---|---|",
                  f"| {c['frames']} frames, {c['snippets']} snippets, {c['pixels']} px | {c['median_s']['ours']:.2f} | "
                  f"{c['median_s']['reference']:.2f} | **{c['speedup']:.1f}×** | {c['objective']['ours']:.6g} | "
                  f"{c['objective']['reference']:.6g} |", ""]
    s = report.get("scaling")
    if s:
        if "pixels_fit" in s:
            f = s["pixels_fit"]
            pts = ", ".join(f"{p['pixels'] / 1e6:.2f} MP: {p['seconds']:.2f}s" for p in s["pixels"])
            lines.append(f"Scaling with pixels (ours, {s['dtype']}, 1 step): {pts}; fit {f['seconds_per_megapixel']:.2f} "
                         f"s/MP + {f['intercept_s']:.2f} s, log-log exponent {f['loglog_exponent']:.2f}.")
        if "ensemble_fit" in s:
            f = s["ensemble_fit"]
            pts = ", ".join(f"E={p['ensemble']}: {p['seconds']:.2f}s" for p in s["ensemble"])
            lines.append(f"Scaling with ensemble size (ours, {s['dtype']}, 1 step): {pts}; fit "
                         f"{f['seconds_per_member']:.2f} s/member + {f['intercept_s']:.2f} s, log-log exponent "
                         f"{f['loglog_exponent']:.2f}.")
        lines.append("")
    runs = report.get("levers") or []
    for lv in [runs] if isinstance(runs, dict) else runs:  # one dict in reports before the fp32 runs
        isa = "" if lv.get("isa", "native") == "native" else ", oneDNN limited to AVX2"
        lines += [f"| lever (ours, {lv.get('dtype', 'bf16')}{isa}, {lv['resolution']} px, 1 step, one process, "
                  f"order A B … B A; CPU flags: {lv.get('cpu_flags', '?')}) | time s (median) | runs | "
                  f"call peak RSS above baseline, GB |", "|---|---|---|---|"]
        for x in lv["levers"]:
            lines.append(f"| {x['config']} | {median(x['time_s']):.2f} | "
                         f"{', '.join(f'{v:.2f}' for v in x['time_s'])} | {max(x['peak_delta_gb']):.2f} |")
        for b in lv["batches"]:
            lines.append(f"| ensemble {b['ensemble']}, batch_size {b['batch_size']} (all levers) | {b['time_s']:.2f} | 1 "
                         f"| {b['peak_delta_gb']:.2f} |")
        lines.append("")
    if report.get("goals"):
        lines += ["| goal | target | got | met |", "|---|---|---|---|"]
        for g in report["goals"]:
            lines.append(f"| {g['goal']} | {g['target']} | {g['got']} | {'yes' if g['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def goals(report: dict) -> list[dict]:
    out = []
    w = report.get("whole_process")
    if w:  # issue #23: at the machine's best dtype on both sides, at most half diffusers' time
        out.append({"goal": f"whole process time ({w['ours']['dtype']}; {w.get('cpu_flags', '?')})",
                    "target": "≤ 0.5×", "got": f"{w['ratio_time_s']:.2f}×", "met": w["ratio_time_s"] <= 0.5})
        out.append({"goal": "whole process peak RSS", "target": "≤ 0.75×", "got": f"{w['ratio_peak_rss_gb']:.2f}×",
                    "met": w["ratio_peak_rss_gb"] <= 0.75})
    for r in report.get("in_process", []):
        sp = 1 / r["ratio_time_s"]
        out.append({"goal": f"in-process faster, {r['case']}", "target": "≥ 1.5×", "got": f"{sp:.2f}×",
                    "met": sp >= 1.5})
        out.append({"goal": f"peak RSS, {r['case']}", "target": "≤ 0.75×", "got": f"{r['ratio_peak_rss_gb']:.2f}×",
                    "met": r["ratio_peak_rss_gb"] <= 0.75})
        out.append({"goal": f"load time, {r['case']}", "target": "≤ 0.5×", "got": f"{r['ratio_load_s']:.2f}×",
                    "met": r["ratio_load_s"] <= 0.5})
    for e in report.get("ensembling", []):
        out.append({"goal": f"ensembling {e['size'][1]}×{e['size'][0]}", "target": "≥ 20×, objective no worse",
                    "got": f"{e['speedup']:.1f}×, {e['ours_objective']:.6g} vs {e['diffusers_objective']:.6g}",
                    "met": e["speedup"] >= 20 and e["ours_objective"] <= e["diffusers_objective"] * (1 + 1e-9)})
    c = report.get("coalign")
    if c:
        out.append({"goal": f"co-alignment, {c['snippets']} snippets", "target": "≥ 20×, objective no worse",
                    "got": f"{c['speedup']:.1f}×, {c['objective']['ours']:.6g} vs {c['objective']['reference']:.6g}",
                    "met": c["speedup"] >= 20 and c["objective"]["ours"] <= c["objective"]["reference"]})
    return out


# ---------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny checkpoint, tiny images, one round")
    ap.add_argument("--out", default=str(ROOT / "bench" / "last_run"), help="folder for results.json / results.md")
    ap.add_argument("--only", default="levers,in_process,whole,ensembling,scaling",
                    help="comma-separated parts to run (levers, in_process, whole, ensembling, scaling; and "
                         "coalign, not in the default: about an hour of Adam on 2 cores)")
    ap.add_argument("--cases", default=None,
                    help="in-process cases as dtype:res:steps:ens:rounds[:batch_ours], comma-separated")
    ap.add_argument("--whole-rounds", type=int, default=3)
    ap.add_argument("--levers-runs", default="bf16,fp32,fp32-avx2",
                    help="lever runs, comma-separated: a dtype (bf16, fp32), -avx2 for oneDNN limited to AVX2 kernels "
                         "(how a CPU without AVX-512 runs, approximated on this one)")
    ap.add_argument("--whole-dtype", choices=("best", "fp32", "bf16"), default="best",
                    help="both sides of the whole-process row; best: bf16 where the CPU has native bf16 (AVX-512 "
                         "BF16 or AMX), else fp32 (the dtype each side runs fastest in on this machine)")
    a = ap.parse_args(argv)
    a.only = set(a.only.split(","))
    if a.quick:
        default_cases = "fp32:64:1:1:1,bf16:64:2:3:1:3"
        a.whole_res, a.whole_rounds = 64, 1
        a.ens_sizes = [(48, 64)]
        a.scale_res, a.scale_ens, a.scale_ens_res = [32, 64], [1, 2], 64
        a.photo_size = (128, 96)
        a.levers_res, a.lever_batches, a.lever_batch_ensemble = 64, [1, 2], 2
        a.levers_res_fp32 = 64
    else:
        default_cases = ("bf16:768:1:1:3,bf16:512:1:1:3,fp32:768:1:1:2,fp32:512:1:1:2,"
                         "bf16:768:4:5:2:5,bf16:512:4:5:2:5,fp32:512:4:5:1:5")
        a.whole_res = 768
        a.ens_sizes = [(576, 768), (1536, 2048)]
        a.scale_res, a.scale_ens, a.scale_ens_res = [256, 384, 512, 768], [1, 2, 4], 512
        a.photo_size = (1024, 768)
        a.levers_res, a.lever_batches, a.lever_batch_ensemble = 512, [1, 5], 5
        a.levers_res_fp32 = 768  # the resolution users run; fp32 levers are convolution-bound there
    if a.whole_dtype == "best":
        from marigold.core.devices import cpu_has_fast_bf16

        a.whole_dtype = "bf16" if cpu_has_fast_bf16() else "fp32"
    a.scale_dtype = "bf16"
    a.cases_str = a.cases or default_cases
    a.levers_runs = [r.strip() for r in a.levers_runs.split(",") if r.strip()]
    bad = [r for r in a.levers_runs if r not in ("bf16", "fp32", "bf16-avx2", "fp32-avx2")]
    if bad:
        ap.error(f"--levers-runs: unknown run {bad[0]!r}; use bf16, fp32, bf16-avx2 or fp32-avx2")
    return a


def main(argv=None) -> int:
    global QUICK
    a = parse_args(argv)
    QUICK = a.quick
    a.cases = []
    for item in a.cases_str.split(","):
        f = item.split(":")
        c = {"dtype": f[0], "res": int(f[1]), "steps": int(f[2]), "ens": int(f[3]), "rounds": int(f[4])}
        if len(f) > 5:
            c["batch_ours"] = int(f[5])
        a.cases.append(c)

    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    work.mkdir(exist_ok=True)
    log_file = open(out_dir / "log.txt", "a")

    def log(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    from . import ckpt as ck

    size = "tiny" if a.quick else "full"
    checkpoint = str(ck.ensure(size, log=log))
    photo = prepare_photo(work, a.photo_size)
    images: dict = {}
    for r in sorted({c["res"] for c in a.cases} | set(a.scale_res) | {a.scale_ens_res, a.levers_res, a.levers_res_fp32}):
        images[r] = prepare_tensor(photo, r, work)
    import numpy as np

    from marigold.core import image as img

    images["photo_npy"] = work / "photo_full.npy"
    np.save(images["photo_npy"], img.to_tensor(str(photo)).numpy())
    # first load of a checkpoint computes and caches the empty-text embedding (once per checkpoint): not timed
    subprocess.run([sys.executable, "-c", f"import marigold; marigold.load({checkpoint!r}, progress=False)"],
                   cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})

    report: dict = {"machine": machine(), "checkpoint": checkpoint,
                    "checkpoint_kind": "tiny (smoke test)" if a.quick else
                    "Marigold v1-1 architecture (866M-param UNet), random weights, fp32 + fp16 variant files",
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "notes": ["Both sides get the photo already resized to the processing resolution (fp32, "
                              "antialiased bilinear) and process it natively: diffusers' bf16 resize crashes on the CPU.",
                              "bf16 sides read the fp16 variant files (diffusers: variant='fp16', dtype=bfloat16).",
                              "Peak RSS: the kernel's ru_maxrss of each side's own process (load + warm-up + run).",
                              "Each side does an untimed warm-up call on a 64×48 image first (diffusers computes its "
                              "empty-text embedding there)."]}
    log(f"machine: {report['machine']}")
    if "levers" in a.only:
        report["levers"] = levers(a, checkpoint, images, log)
    if "in_process" in a.only:
        report["in_process"] = in_process_cases(a, checkpoint, images, work, log)
    if "whole" in a.only:
        photo_whole = photo
        report["whole_process"] = whole_process(a, checkpoint, photo_whole, work, log)
    if "ensembling" in a.only:
        report["ensembling"] = ensembling(a, images, log)
    if "scaling" in a.only:
        report["scaling"] = scaling(a, checkpoint, images, work, log)
    if "coalign" in a.only:
        report["coalign"] = coalign(a, log)
    report["goals"] = goals(report)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    (out_dir / "results.json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    (out_dir / "results.md").write_text(md)
    print(md)
    return 0
