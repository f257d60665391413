"""``python -m marigold IMAGE_OR_FOLDER... -o OUT_DIR``: depth (or normals, intrinsics) for files and folders.

Per input ``<stem>``, a depth checkpoint writes ``<stem>_depth.png`` (colour) and ``<stem>_depth_16bit.png``
(uint16, depth × 65535); ``--npy`` adds ``<stem>_depth.npy``, ``--exr`` ``<stem>_depth.exr`` (float32), ``--uncertainty`` ``<stem>_uncertainty.png``.
A normals checkpoint writes ``<stem>_normals.png``; an intrinsics one ``<stem>_<target>.png`` per target.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CHECKPOINT = "prs-eth/marigold-depth-v1-1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m marigold", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    ap.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the results")
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, metavar="ID_OR_PATH",
                    help=f"Hugging Face repo id or checkpoint folder (default {DEFAULT_CHECKPOINT})")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    ap.add_argument("--ensemble", type=int, default=1, help="ensemble size (default 1)")
    ap.add_argument("--seed", type=int, default=None, help="seed for the initial noise (diffusers' convention)")
    ap.add_argument("--processing-resolution", type=int, default=None, metavar="R",
                    help="longest side the model sees, multiple of 8; 0 = native (default: the checkpoint's)")
    ap.add_argument("--batch-size", type=int, default=1, help="ensemble members denoised together")
    ap.add_argument("--dtype", default="auto", choices=("auto", "fp32", "fp16", "bf16"))
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: CUDA if present)")
    ap.add_argument("--colormap", default="Spectral", help="matplotlib colormap for the colour depth PNG")
    ap.add_argument("--npy", action="store_true", help="also write the float depth as .npy")
    ap.add_argument("--exr", action="store_true", help="also write the float depth as an OpenEXR file (channel Z)")
    ap.add_argument("--uncertainty", action="store_true", help="also write the ensemble's uncertainty map")
    ap.add_argument("--cache-dir", default=None, help="where a repo id is downloaded to")
    return ap.parse_args(argv)


def collect_inputs(inputs: list[str]) -> list[Path]:
    from .errors import InputError
    from .io import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{p}: no image files in this folder ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder.")
    return files


def _stems(files: list[Path]) -> list[str]:
    """Output stems; a stem seen twice (same name in two folders) gets a suffix so nothing is overwritten."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        out.append(f.stem if n == 0 else f"{f.stem}_{n}")
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from . import colorize, io
    from .checkpoint import load
    from .predict import predict

    files = collect_inputs(args.inputs)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load(args.checkpoint, device=args.device, dtype=args.dtype, cache_dir=args.cache_dir)
    failed = []
    for f, stem in zip(tqdm(files, desc="Marigold", unit="image", disable=len(files) < 2), _stems(files)):
        try:
            out = predict(model, io.load_image(f), num_inference_steps=args.steps, ensemble_size=args.ensemble,
                          processing_resolution=args.processing_resolution, batch_size=args.batch_size,
                          seed=args.seed, output_uncertainty=args.uncertainty and args.ensemble > 2)
        except Exception as e:  # one bad file must not lose the others
            from .errors import MarigoldError

            if not isinstance(e, MarigoldError):
                raise
            print(f"error: {e}", file=sys.stderr)
            failed.append(f)
            continue
        p = out.prediction[0]  # [C,H,W]
        if model.task == "depth":
            io.save_rgb(colorize.colorize_depth(p[None], cmap=args.colormap)[0], out_dir / f"{stem}_depth.png")
            io.save_depth_16bit(p, out_dir / f"{stem}_depth_16bit.png")
            if args.npy:
                io.save_npy(p, out_dir / f"{stem}_depth.npy")
            if args.exr:
                io.save_exr(p, out_dir / f"{stem}_depth.exr")
        elif model.task == "normals":
            io.save_rgb(colorize.normals_to_rgb(p[None])[0], out_dir / f"{stem}_normals.png")
            if args.npy:
                io.save_npy(p, out_dir / f"{stem}_normals.npy")
        else:
            for k, name in enumerate(out.target_names):
                io.save_rgb(p[3 * k:3 * k + 3], out_dir / f"{stem}_{name}.png")
        if out.uncertainty is not None:
            io.save_rgb(colorize.uncertainty_to_gray(out.uncertainty)[0], out_dir / f"{stem}_uncertainty.png")
    if failed:
        print(f"{len(failed)} of {len(files)} images failed: {', '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


def entry() -> None:
    """``python -m marigold`` / the ``marigold`` script: run, then leave without tearing the interpreter down.

    Every output is written and closed by then (atomically); what is left is freeing a 2 GB model tensor by
    tensor and unloading torch, about 1 s of a 16 s run (measured), which a command-line run does not need.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    from .errors import MarigoldError

    args = parse_args(argv)
    try:
        return run(args)
    except MarigoldError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
