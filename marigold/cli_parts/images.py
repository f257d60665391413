"""The command line's run: loading the checkpoint, the up-front checks that need it, the per-image
loop (plain or tiled, then the modality's writer and the 3D / stereo extras), and the clips handed to clips.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import SEGMENTATION_CHECKPOINT
from .checks import check_options, check_tiling_options
from .inputs import collect_inputs, is_clip, output_stems
from .clips import fusion_note, run_clip, run_clip_split, split_clips
from .metric import check_metric_options, metric_depth, sparse_sources, wants_metric, write_metric
from .outputs import wants_geometry, write_geometry, write_stereo
from .prompted import run_prompted


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..io import colorize, images as io
    from ..core.checkpoint import load
    from ..core.distributed import world
    from ..errors import InputError, MarigoldError
    from ..core.modality import get as get_modality, write
    from ..core.predict import predict

    items = collect_inputs(args.inputs, video=args.video)
    check_options(args, items)  # every option the run would refuse, before the model loads
    w = world()  # under accelerate launch / torchrun: this process's share, named as in a single run
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load(args.checkpoint, device=w.device(args.device), dtype=args.dtype, cache_dir=args.cache_dir,
                 base=args.base)
    if args.prompt and not model.takes_prompt:
        raise InputError(f"--prompt was given, but {args.checkpoint} is a Marigold {model.task} checkpoint, which "
                         f"takes no prompt; use a segmentation checkpoint (--checkpoint {SEGMENTATION_CHECKPOINT}).")
    if model.takes_prompt:
        if args.stereo or wants_geometry(args):
            raise InputError(f"--stereo, --relief, --mesh and --points need a depth checkpoint; {args.checkpoint} "
                             f"is a {model.task} checkpoint.")
        return run_prompted(model, args, items, out_dir, w)
    pairs = list(zip(items, output_stems(items)))
    # several processes: a RollingDepth clip's snippets are split across all of them, clip after clip; other
    # inputs (images, and clips that cannot be split) are shared out whole, every N-th to each process
    modality = model.modality
    if modality.video:
        fusion_note(model, args, w, any(is_clip(f) for f in items))
    split = w.size > 1 and modality.video and split_clips(model, args, w, any(is_clip(f) for f in items))
    together = [(f, stem) for f, stem in pairs if split and is_clip(f)]
    named = w.shard([(f, stem) for f, stem in pairs if not (split and is_clip(f))])
    clips = [(f, stem) for f, stem in named if is_clip(f)]
    files = [(f, stem) for f, stem in named if not is_clip(f)]
    if clips and not modality.video:
        raise InputError(f"Videos need a depth checkpoint (RollingDepth or a Marigold depth model); "
                         f"{args.checkpoint} is a {model.task} checkpoint. Videos given: "
                         f"{', '.join(str(c) for c, _ in clips)}.")
    tile_kw = tile_options(args, model, bool(clips))
    if wants_geometry(args) and not modality.geometry:
        raise InputError(f"--relief, --mesh and --points need a depth checkpoint; {args.checkpoint} is a "
                         f"{model.task} checkpoint.")
    if args.stereo and not modality.geometry:
        raise InputError(f"--stereo needs a depth checkpoint; {args.checkpoint} is a {model.task} checkpoint.")
    known = check_metric_options(args, model, bool(clips), tile_kw is not None)
    sources = sparse_sources(args, files) if wants_metric(args) else {}
    failed = []
    desc = "Marigold" if w.size == 1 else f"Marigold [{w.rank + 1}/{w.size}]"
    for f, stem in tqdm(files, desc=desc, unit="image", disable=len(files) < 2):
        try:
            photo = io.load_image(f)
            if wants_metric(args):
                metric, note = metric_depth(model, photo, sources[f], known, args)  # [1,1,H,W] metres
                if note:
                    print(f"note: {f}: {note}", file=sys.stderr)
                out = None
            else:
                kw = dict(num_inference_steps=args.steps, ensemble_size=args.ensemble,
                          processing_resolution=args.processing_resolution, batch_size=args.batch_size,
                          seed=args.seed, output_uncertainty=args.uncertainty and args.ensemble > 2)
                if tile_kw is not None:
                    out = predict_tiled_cli(model, photo, f, kw, tile_kw)
                else:
                    out = predict(model, photo, **kw)
        except Exception as e:  # one bad file must not lose the others
            if not isinstance(e, MarigoldError):
                raise
            print(f"error: {e}", file=sys.stderr)
            failed.append(f)
            continue
        if out is None:  # metric depth: its own files, the affine depth files from it, 3D in metres
            write_metric(metric, out_dir, stem, args.colormap)
            lo, hi = metric.min(), metric.max()
            p = ((metric[0] - lo) / (hi - lo).clamp(min=1e-9))  # [1,H,W] 0..1, near = 0
            write(get_modality("depth"), p, out_dir, stem, {"colormap": args.colormap, "npy": args.npy,
                                                            "exr": args.exr})
            geo, space = metric[0], "metric"
        else:
            p = out.prediction[0]  # [C,H,W]
            # the modality's writer (marigold.modality): depth/disparity maps, normals, one PNG per target...
            write(modality, p, out_dir, stem, {"colormap": args.colormap, "npy": args.npy, "exr": args.exr})
            geo, space = p, modality.prediction_type
        if modality.geometry and wants_geometry(args):
            try:
                write_geometry(args, geo, photo, out_dir, stem, space)
            except MarigoldError as e:  # the depth files are written; say what the 3D step refused
                print(f"error: {f}: {e}", file=sys.stderr)
                failed.append(f)
        if modality.geometry and args.stereo:
            try:
                write_stereo(args, geo, photo, out_dir, stem, space)
            except MarigoldError as e:  # the depth files are written; say what the stereo step refused
                print(f"error: {f}: {e}", file=sys.stderr)
                if f not in failed:
                    failed.append(f)
        if out is not None and out.uncertainty is not None:
            io.save_rgb(colorize.uncertainty_to_gray(out.uncertainty)[0], out_dir / f"{stem}_uncertainty.png")
    for f, stem in clips:
        try:
            run_clip(model, f, stem, out_dir, args)
        except MarigoldError as e:  # a bad video is one line, and the others are still processed
            print(f"error: {e}", file=sys.stderr)
            failed.append(f)
    for f, stem in together:
        try:
            run_clip_split(model, f, stem, out_dir, args, w)
        except MarigoldError as e:  # every process fails alike (errors travel with the collectives): rank 0 says it
            if w.is_main:
                print(f"error: {e}", file=sys.stderr)
                failed.append(f)
    if failed:
        clips += together if w.is_main else []
        what = "inputs" if clips and files else "videos" if clips else "images"
        where = "" if w.size == 1 else f" in process {w.rank + 1} of {w.size}"
        total = len(named) + (len(together) if w.is_main else 0)
        print(f"{len(failed)} of {total} {what} failed{where}: {', '.join(map(str, failed))}",
              file=sys.stderr)
        return 1
    return 0


def tile_options(args: argparse.Namespace, model, any_clip: bool) -> dict | None:
    """--tile's options for :func:`marigold.tiling.predict_tiled`, checked once (a bad one is one line and
    nothing runs), or None without --tile."""
    res = args.processing_resolution if args.processing_resolution is not None else \
        (model.default_processing_resolution or 768)
    check_tiling_options(args, res)
    if not args.tile:
        return None
    if any_clip:
        print("note: --tile applies to images; videos run untiled.", file=sys.stderr)
    from ..core.tiling import MERGES

    return dict(tile_factor=args.tile_factor, tile_resolution=args.tile_resolution, tile_overlap=args.tile_overlap,
                merge=args.tile_merge or MERGES[0])


def predict_tiled_cli(model, photo, path: Path, kw: dict, tile_kw: dict):
    """One image tiled, with a bar per tile and the run's notes on stderr."""
    import warnings

    from tqdm.auto import tqdm

    from ..core.tiling import predict_tiled

    bar = None

    def on_tile(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=f"{path.name}: tiles", unit="tile", leave=False)
        bar.update(done - bar.n)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes come back on the result, said once below
        try:
            out = predict_tiled(model, photo, on_tile=on_tile, **tile_kw, **kw)
        finally:
            if bar is not None:
                bar.close()
    for note in out.notes:
        print(f"note: {path}: {note}", file=sys.stderr)
    return out
