"""The command line's metric depth (--sparse, --known): each image's sparse measurements found and checked before
the first image runs, then depth completion (Marigold-DC, :func:`marigold.complete`) or the one-second fit
(``--metric fit``, :func:`marigold.fit_metric`), and the files: ``<stem>_metric.npy`` / ``.exr`` (metres),
``<stem>_metric_16bit.png`` (millimetres) and ``<stem>_metric.png`` (colour, with a metre scale bar)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METRIC_MODES = ("complete", "fit")


def wants_metric(args: argparse.Namespace) -> bool:
    return bool(args.sparse or args.known)


def sparse_sources(args: argparse.Namespace, files: list[tuple[Path, str]]) -> dict[Path, Path | None]:
    """Each image → its sparse depth file (or None: --known alone), found before anything runs: a missing file
    is one line naming the images without one, never a failure after hours of work."""
    from ..errors import InputError
    from ..io.images import SPARSE_SUFFIXES

    if not args.sparse:
        return {f: None for f, _ in files}
    src = Path(args.sparse)
    if src.is_file():
        if len(files) > 1:
            raise InputError(f"--sparse {src} is one file for {len(files)} images: give a folder with one file per "
                             f"image (named by the image's stem: photo.jpg → photo.png, photo.npy or photo.exr).")
        return {f: src for f, _ in files}
    if not src.is_dir():
        raise InputError(f"--sparse {src}: no such file or folder.")
    found, missing = {}, []
    for f, _ in files:
        hits = [src / f"{Path(f).stem}{tail}{s}" for tail in ("", "_sparse") for s in SPARSE_SUFFIXES
                if (src / f"{Path(f).stem}{tail}{s}").is_file()]
        if hits:
            found[f] = hits[0]
        elif not args.known:
            missing.append(Path(f).name)
    if missing:
        raise InputError(f"--sparse {src}: no sparse depth for {len(missing)} image(s) ({', '.join(missing[:5])}"
                         f"{', …' if len(missing) > 5 else ''}); name each <stem>.png (16-bit, mm), .npy or .exr "
                         f"(metres).")
    return {f: found.get(f) for f, _ in files}


def check_metric_options(args: argparse.Namespace, model, any_clip: bool, tiled: bool) -> list | None:
    """--sparse / --known / --metric checked once, before the first image: → the known points or None."""
    from ..core.completion import check_model
    from ..core.metric import parse_points
    from ..errors import InputError

    if not wants_metric(args):
        if args.complete_steps is not None or args.metric != "complete" or args.snap is not None:
            raise InputError("--complete-steps, --metric and --snap need --sparse or --known (the measured depth).")
        return None
    if args.metric not in METRIC_MODES:
        raise InputError(f"--metric must be one of {', '.join(METRIC_MODES)}; got {args.metric!r}.")
    if args.complete_steps is not None and args.complete_steps < 1:
        raise InputError(f"--complete-steps must be a positive integer; got {args.complete_steps}.")
    if tiled:
        raise InputError("--sparse / --known do not combine with --tile yet: metric depth runs one pass per image.")
    if args.prompt:
        raise InputError("--sparse / --known need a depth checkpoint, not a prompt model.")
    if model.task != "depth":
        raise InputError(f"--sparse / --known need a depth checkpoint; {args.checkpoint} is a {model.task} checkpoint.")
    if args.metric == "complete":
        check_model(model)  # an inverse-depth model can still be fitted (--metric fit)
    if any_clip:
        print("note: --sparse / --known apply to images; videos get affine depth.", file=sys.stderr)
    return parse_points(args.known) if args.known else None


def metric_depth(model, photo, source: Path | None, known: list | None, args: argparse.Namespace):
    """One image's metric depth ``[1,1,H,W]`` (metres), the map of its measurements merged with the known points,
    and what the run says (the fit's notes)."""
    from ..core.completion import complete
    from ..core.metric import fit_metric, merge_points
    from ..core.predict import predict
    from ..errors import InputError
    from ..io.images import load_sparse_depth

    w, h = photo.size
    try:
        sparse = merge_points(load_sparse_depth(source) if source is not None else None, known, (h, w))  # [H,W]
    except InputError as e:
        raise InputError(f"{source or '--known'}: {e}") from None
    if args.metric == "fit":
        p = predict(model, photo, num_inference_steps=args.steps, ensemble_size=args.ensemble,
                    processing_resolution=args.processing_resolution, seed=args.seed).prediction
        fit = fit_metric(p, sparse, space=model.prediction_type, snap=bool(args.snap),
                         image=_photo_tensor(photo) if args.snap else None)
        return fit.depth, fit.note
    import warnings

    from tqdm.auto import tqdm

    bar = tqdm(desc="metric depth", unit="step", leave=False, disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note comes back on the result, said once by the caller
        try:
            out = complete(model, photo, sparse, num_inference_steps=args.complete_steps,
                           ensemble_size=args.ensemble, processing_resolution=args.processing_resolution,
                           seed=args.seed, progress=progress, snap=args.snap is not False)
        finally:
            bar.close()
    return out.depth, out.note


def _photo_tensor(photo):
    """PIL photo → ``[1,3,H,W]`` 0..1 (the snap's colour guide)."""
    from ..core.image import to_tensor

    return to_tensor(photo)


def write_metric(depth, out_dir: Path, stem: str, colormap: str) -> dict:
    """``<stem>_metric.npy`` / ``.exr`` (metres), ``_metric_16bit.png`` (millimetres), ``_metric.png`` (colour with
    a metre scale bar)."""
    from ..io import colorize, images as io

    d = depth[0, 0]  # [H,W] metres
    out = {"metric": out_dir / f"{stem}_metric.npy", "metric_exr": out_dir / f"{stem}_metric.exr",
           "metric_16bit": out_dir / f"{stem}_metric_16bit.png", "metric_png": out_dir / f"{stem}_metric.png"}
    io.save_npy(d, out["metric"])
    io.save_exr(d, out["metric_exr"])
    io.save_depth_mm(d, out["metric_16bit"])
    io.save_rgb(colorize.colorize_metric(d, colormap), out["metric_png"])
    return out
