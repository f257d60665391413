"""``python -m marigold IMAGE_VIDEO_OR_FOLDER... -o OUT_DIR``: depth (or normals, intrinsics) for images, and
depth for videos.

Per image ``<stem>``, a depth checkpoint writes ``<stem>_depth.png`` (colour) and ``<stem>_depth_16bit.png``
(uint16, depth × 65535); ``--npy`` adds ``<stem>_depth.npy``, ``--exr`` ``<stem>_depth.exr`` (float32), ``--uncertainty`` ``<stem>_uncertainty.png``.
A normals checkpoint writes ``<stem>_normals.png``; an intrinsics one ``<stem>_<target>.png`` per target.

Per video (a video file, or with --video a folder of frames) ``<name>``: ``<name>_depth.mp4`` (colour, the
input's frame rate) and ``<name>_depth_16bit/000000.png …`` with ONE normalisation for the whole clip
(``<name>_disparity_16bit/`` for inverse-depth models such as RollingDepth); ``--npy`` keeps the aligned,
not normalised frames in ``<name>_<depth|disparity>_npy/``. Video files given among images are processed as
videos; --video only changes what a folder of images means (one clip instead of separate images).
From depth, 3D files too: ``--relief stl|glb|obj`` a 3D-printable bas-relief ``<stem>_relief.<ext>`` (the
Marigold demo's defaults: 10 cm, 512 px, 20 % embossing, 5 mm frame), ``--mesh glb|obj|ply`` the scene as the
camera saw it ``<stem>_mesh.<ext>``, ``--points`` a coloured point cloud ``<stem>_points.ply``.
Stereo 3D (docs/stereo.md): ``--stereo sbs|hsbs|tb|anaglyph|cross`` writes ``<stem>_stereo.png`` per image and
``<name>_stereo.mp4`` per video (from the clip's one normalisation: the 3D strength does not pump), with
``--divergence`` and ``--convergence``.
Under ``accelerate launch`` / ``torchrun`` each process takes every N-th image, and all processes split each
RollingDepth clip's snippets (README, "Several processes or GPUs").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_CHECKPOINT = "prs-eth/marigold-depth-v1-1"
SEGMENTATION_CHECKPOINT = "pcuenq/marigold-coco-segmentation"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m marigold", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", metavar="IMAGE_VIDEO_OR_FOLDER")
    ap.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for the results")
    ap.add_argument("--checkpoint", default=None, metavar="ID_OR_PATH",
                    help=f"Hugging Face repo id or checkpoint folder (default {DEFAULT_CHECKPOINT}, or "
                         f"{SEGMENTATION_CHECKPOINT} with --prompt)")
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
    t = ap.add_argument_group("high resolution (see docs/tiling.md)",
                              "a global pass for the structure, then overlapping tiles at a higher working "
                              "resolution for the detail, merged and blended (images, --relief, --mesh)")
    t.add_argument("--tile", action="store_true",
                   help="tiled inference at the working resolution (default 2x the processing resolution)")
    t.add_argument("--tile-factor", type=float, default=None, metavar="F",
                   help="working resolution = F x the processing resolution (F >= 1; default 2)")
    t.add_argument("--tile-resolution", type=int, default=None, metavar="PX",
                   help="working resolution's longest side in pixels (instead of --tile-factor)")
    t.add_argument("--tile-overlap", type=int, default=None, metavar="PX",
                   help="least overlap of neighbouring tiles, in working pixels (default a quarter tile)")
    t.add_argument("--tile-merge", default=None, metavar="MERGE",
                   help="detail (default: the global pass's structure, the tiles' detail) or coalign (whole tiles, "
                        "one scale and shift each)")
    t = ap.add_argument_group("text-grounded segmentation (docs/segmentation.md)")
    t.add_argument("--prompt", action="append", default=None, metavar="WORD",
                   help="what to mask (repeatable); writes <stem>_mask_<prompt>.png (255 = the object) and "
                        f"<stem>_painted_<prompt>.png; the checkpoint defaults to {SEGMENTATION_CHECKPOINT}")
    t.add_argument("--threshold", type=float, default=0.93,
                   help="whiteness of the painted image from which a pixel is the object (default 0.93)")
    t.add_argument("--no-clean", action="store_true", help="skip the 3x3 erosion + dilation of the mask")
    t.add_argument("--keep-white", action="store_true",
                   help="do not tone down near-white input pixels before inference")
    t.add_argument("--base", default=None, metavar="ID_OR_PATH",
                   help="for a UNet-only checkpoint: the Stable Diffusion 2 checkpoint lending the other parts")
    v = ap.add_argument_group("video", "video files are always videos; --video makes each folder of images one clip")
    v.add_argument("--video", action="store_true", help="a folder of images is one clip (frames in name order)")
    v.add_argument("--preset", default="fast", choices=("fast", "full", "paper"),
                   help="RollingDepth's settings (dilations, refinement, resolution); default fast")
    v.add_argument("--dilations", default=None, metavar="1,25",
                   help="frame spacings of the snippets, e.g. 1,10,25 (default: the preset's)")
    v.add_argument("--snippet-length", type=int, default=None, metavar="N",
                   help="frames per snippet (default: the preset's)")
    v.add_argument("--refine-steps", type=int, default=None, metavar="N",
                   help="refinement steps after co-alignment; 0 = none (default: the preset's)")
    v.add_argument("--fps", type=float, default=None,
                   help="frame rate of a folder of frames (default 30); video files keep their own")
    g = ap.add_argument_group("3D from depth (see README, '3D: relief, mesh, points')")
    g.add_argument("--relief", choices=("stl", "glb", "obj"), default=None,
                   help="write a watertight, 3D-printable bas-relief <stem>_relief.<ext> (millimetres)")
    g.add_argument("--mesh", choices=("glb", "obj", "ply"), default=None,
                   help="write the scene as the camera saw it, <stem>_mesh.<ext>, with the photo's colours")
    g.add_argument("--points", action="store_true", help="write a coloured point cloud <stem>_points.ply")
    r = RELIEF
    g.add_argument("--relief-size-mm", type=float, default=r["size_mm"], metavar="MM",
                   help=f"longest side of the relief, frame included (default {r['size_mm']:g})")
    g.add_argument("--relief-resolution", type=int, default=r["resolution_px"], metavar="PX",
                   help=f"vertices along the longest side; 0 = the depth map's own size (default "
                        f"{r['resolution_px']})")
    g.add_argument("--embossing", type=float, default=r["embossing"], metavar="PERCENT",
                   help=f"relief height, percent of the longest side (default {r['embossing']:g})")
    g.add_argument("--plane-near", type=float, default=r["plane_near"], metavar="F",
                   help="fraction of the depth range flattened to the top (default 0)")
    g.add_argument("--plane-far", type=float, default=r["plane_far"], metavar="F",
                   help="depth beyond this fraction is flattened to the back (default 1)")
    g.add_argument("--median-size", type=int, choices=(1, 3, 5), default=r["median_size"],
                   help=f"median filter on the depth before extruding (default {r['median_size']})")
    g.add_argument("--frame-mm", type=float, default=r["frame_mm"], metavar="MM",
                   help=f"frame width around the relief; 0 = none (default {r['frame_mm']:g})")
    g.add_argument("--frame-near-mm", type=float, default=r["frame_near_mm"], metavar="MM",
                   help=f"frame top above the relief's nearest level; negative = below (default "
                        f"{r['frame_near_mm']:g})")
    g.add_argument("--back-mm", type=float, default=r["back_mm"], metavar="MM",
                   help=f"back plate under the relief's farthest level (default {r['back_mm']:g})")
    g.add_argument("--fov", type=float, default=60.0, metavar="DEG",
                   help="horizontal field of view of the camera, for --mesh and --points (default 60)")
    g.add_argument("--far-over-near", type=float, default=3.0, metavar="R",
                   help="how many times farther depth 1 is than depth 0, for --mesh and --points (default 3)")
    g.add_argument("--edge-threshold", type=float, default=0.04, metavar="F",
                   help="--mesh drops triangles whose depth span exceeds this fraction of their depth; 0 = "
                        "keep all (default 0.04)")
    g.add_argument("--mesh-resolution", type=int, default=1024, metavar="PX",
                   help="vertices along the longest side for --mesh and --points; 0 = the depth map's own "
                        "size (default 1024)")
    s = ap.add_argument_group("stereo 3D (see docs/stereo.md)")
    s.add_argument("--stereo", choices=STEREO_LAYOUTS, default=None,
                   help="write <stem>_stereo.png per image and <name>_stereo.mp4 per video: sbs (full side by "
                        "side), hsbs (half side by side), tb (top-bottom), anaglyph (red-cyan, Dubois), cross "
                        "(cross-eyed)")
    s.add_argument("--divergence", type=float, default=2.0, metavar="PERCENT",
                   help="3D strength: the shift between the eyes from the nearest to the farthest depth, percent "
                        "of the width, 0-10 (default 2)")
    s.add_argument("--convergence", type=float, default=0.5, metavar="F",
                   help="which depth sits on the screen plane: 0 = nearest (all behind the screen), 1 = farthest "
                        "(all in front of it) (default 0.5)")
    s.add_argument("--stereo-far-over-near", type=float, default=3.0, metavar="R",
                   help="how many times farther depth 1 is than depth 0, for --stereo with depth models; "
                        "disparity models (RollingDepth) do not need it (default 3)")
    args = ap.parse_args(argv)
    if args.checkpoint is None:
        args.checkpoint = SEGMENTATION_CHECKPOINT if args.prompt else DEFAULT_CHECKPOINT
    return args


STEREO_LAYOUTS = ("sbs", "hsbs", "tb", "anaglyph", "cross")  # marigold.stereo.LAYOUTS, without importing torch


def stereo_options(args: argparse.Namespace) -> dict:
    return dict(divergence=args.divergence, convergence=args.convergence, far_over_near=args.stereo_far_over_near)


def write_stereo(args: argparse.Namespace, depth, photo, out_dir: Path, stem: str, space: str) -> None:
    """``<stem>_stereo.png`` from one depth map ``[1,H,W]`` and its photo."""
    from .io import images as io
    from .geometry.stereo import stereo

    pair = stereo(photo, depth[None], space=space, **stereo_options(args))
    for note in pair.notes:
        print(f"note: {stem}: {note}", file=sys.stderr)
    io.save_rgb(pair.compose(args.stereo)[0], out_dir / f"{stem}_stereo.png")


# the relief's defaults, as the library states them (kept here so --help works without importing torch)
RELIEF = dict(size_mm=100.0, resolution_px=512, embossing=20.0, plane_near=0.0, plane_far=1.0, median_size=3,
              frame_mm=5.0, frame_near_mm=1.0, back_mm=1.0)


def wants_geometry(args: argparse.Namespace) -> bool:
    return bool(args.relief or args.mesh or args.points)


def write_geometry(args: argparse.Namespace, depth, image, out_dir: Path, stem: str, space: str = "depth") -> None:
    """The 3D files asked for, from one depth map ``[1,H,W]`` (``space``: "depth", near = 0, or "disparity",
    near = high) and the photo it was predicted from."""
    from .geometry import mesh
    from .geometry.relief import relief

    if args.relief:
        solid = relief(depth, image, size_mm=args.relief_size_mm, resolution_px=args.relief_resolution,
                       embossing=args.embossing, plane_near=args.plane_near, plane_far=args.plane_far,
                       median_size=args.median_size, frame_mm=args.frame_mm, frame_near_mm=args.frame_near_mm,
                       back_mm=args.back_mm, space=space)
        mesh.save_3d(solid, out_dir / f"{stem}_relief.{args.relief}")
    cam = dict(fov_degrees=args.fov, far_over_near=args.far_over_near, resolution_px=args.mesh_resolution,
               space=space)
    if args.mesh:
        surface = mesh.depth_to_mesh(depth, image, edge_threshold=args.edge_threshold, **cam)
        mesh.save_3d(surface, out_dir / f"{stem}_mesh.{args.mesh}")
    if args.points:
        mesh.save_3d(mesh.depth_to_points(depth, image, **cam), out_dir / f"{stem}_points.ply")


def collect_inputs(inputs: list[str], video: bool = False) -> list[Path]:
    """Files and folders → image files, video files and (with ``video``) frame folders, in the given order.

    A folder gives its image files and its video files; with ``video`` a folder of images is itself one clip
    (returned as the folder), and a folder with only video files still gives those files.
    """
    from .errors import InputError
    from .io.images import IMAGE_SUFFIXES
    from .video.io import VIDEO_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            images = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            videos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not images and not videos:
                raise InputError(f"{p}: no image or video files in this folder "
                                 f"({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}).")
            files.extend(([p] if images else []) if video else images)
            files.extend(videos)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder.")
    return files


def is_clip(path: Path) -> bool:
    """A video file, or a folder (only collected as a clip under --video)."""
    from .video.io import is_video_file

    return path.is_dir() or is_video_file(path)


def _stems(files: list[Path]) -> list[str]:
    """Output stems; a stem seen twice (same name in two folders) gets a suffix so nothing is overwritten."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        stem = f.name if f.is_dir() else f.stem
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}_{n}")
    return out


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .io import colorize, images as io
    from .core.checkpoint import load
    from .core.distributed import world
    from .errors import InputError, MarigoldError
    from .core.modality import write
    from .core.predict import predict

    items = collect_inputs(args.inputs, video=args.video)
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
    pairs = list(zip(items, _stems(items)))
    # several processes: a RollingDepth clip's snippets are split across all of them, clip after clip; other
    # inputs (images, and clips that cannot be split) are shared out whole, every N-th to each process
    modality = model.modality
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
    failed = []
    desc = "Marigold" if w.size == 1 else f"Marigold [{w.rank + 1}/{w.size}]"
    for f, stem in tqdm(files, desc=desc, unit="image", disable=len(files) < 2):
        try:
            photo = io.load_image(f)
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
        p = out.prediction[0]  # [C,H,W]
        # the modality's writer (marigold.modality): depth/disparity maps, normals, one PNG per target...
        write(modality, p, out_dir, stem, {"colormap": args.colormap, "npy": args.npy, "exr": args.exr})
        if modality.geometry and wants_geometry(args):
            try:
                write_geometry(args, p, photo, out_dir, stem, modality.prediction_type)
            except MarigoldError as e:  # the depth files are written; say what the 3D step refused
                print(f"error: {f}: {e}", file=sys.stderr)
                failed.append(f)
        if modality.geometry and args.stereo:
            try:
                write_stereo(args, p, photo, out_dir, stem, modality.prediction_type)
            except MarigoldError as e:  # the depth files are written; say what the stereo step refused
                print(f"error: {f}: {e}", file=sys.stderr)
                if f not in failed:
                    failed.append(f)
        if out.uncertainty is not None:
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
    from .errors import InputError
    from .core.tiling import check_tiling

    from .core.tiling import MERGES

    given = [o for o, v in (("--tile-factor", args.tile_factor), ("--tile-resolution", args.tile_resolution),
                            ("--tile-overlap", args.tile_overlap), ("--tile-merge", args.tile_merge))
             if v is not None]
    if not args.tile:
        if given:
            raise InputError(f"{', '.join(given)} set the tiling; add --tile to tile.")
        return None
    res = args.processing_resolution if args.processing_resolution is not None else \
        (model.default_processing_resolution or 768)
    if res <= 0:
        raise InputError("--tile needs a positive --processing-resolution (it is the tile size); got 0 (native).")
    names = {"tile_factor": "--tile-factor", "tile_resolution": "--tile-resolution", "tile_overlap": "--tile-overlap"}
    try:
        check_tiling(res, args.tile_overlap, args.tile_factor, args.tile_resolution)
    except InputError as e:  # the library names its arguments; here the user typed options
        msg = str(e)
        for k, v in names.items():
            msg = msg.replace(f"`{k}`", v)
        raise InputError(msg) from None
    if args.tile_merge is not None and args.tile_merge not in MERGES:
        raise InputError(f"--tile-merge must be one of {', '.join(MERGES)}; got {args.tile_merge!r}.")
    if any_clip:
        print("note: --tile applies to images; videos run untiled.", file=sys.stderr)
    return dict(tile_factor=args.tile_factor, tile_resolution=args.tile_resolution, tile_overlap=args.tile_overlap,
                merge=args.tile_merge or MERGES[0])


def predict_tiled_cli(model, photo, path: Path, kw: dict, tile_kw: dict):
    """One image tiled, with a bar per tile and the run's notes on stderr."""
    import warnings

    from tqdm.auto import tqdm

    from .core.tiling import predict_tiled

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


def run_prompted(model, args: argparse.Namespace, items: list[Path], out_dir: Path, w) -> int:
    """A prompt model (text-grounded segmentation): every image × every --prompt through its entry's
    ``predict_prompt``, written by its writer (segmentation: ``<stem>_mask_<prompt>.png`` and
    ``<stem>_painted_<prompt>.png``); a bad prompt or image is one line and the others are still processed."""
    from tqdm.auto import tqdm

    from .core.modality import write
    from .core.prompts import prompt_embeddings, prompt_slug
    from .errors import InputError, MarigoldError
    from .io import colorize, images as io

    modality = model.modality
    if not args.prompt:
        raise InputError(f"{args.checkpoint} is a {model.task} checkpoint: name what to mask with --prompt "
                         f"(e.g. --prompt car; repeatable).")
    if modality.predict_prompt is None:
        raise InputError(f"{args.checkpoint} is a {modality.name} checkpoint, whose modality entry names no "
                         f"predict_prompt for the command line.")
    failed: list[str] = []
    prompts = []
    for p, got in prompt_embeddings(model, args.prompt).items():  # all prompts encoded with one text-encoder load
        if isinstance(got, MarigoldError):
            print(f"error: --prompt {p!r}: {got}", file=sys.stderr)
            failed.append(f"--prompt {p!r}")
        else:
            prompts.append(p)
    clips = [f for f in items if is_clip(f)]
    for c in clips:
        print(f"error: {c}: {model.task} takes images, not videos.", file=sys.stderr)
        failed.append(str(c))
    files = w.shard([(f, stem) for f, stem in zip(items, _stems(items)) if not is_clip(f)])
    # the entry's own options (segmentation: --threshold, --no-clean, --keep-white), for its sampler and writer
    options = {"threshold": args.threshold, "clean": not args.no_clean, "tone_down": not args.keep_white}
    for f, stem in tqdm(files, desc="Marigold", unit="image", disable=len(files) < 2):
        try:
            photo = io.load_image(f)
        except MarigoldError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(str(f))
            continue
        for p in prompts:
            try:
                pred, unc = modality.predict_prompt(
                    model, photo, p, options, num_inference_steps=args.steps, ensemble_size=args.ensemble,
                    processing_resolution=args.processing_resolution, batch_size=args.batch_size, seed=args.seed,
                    output_uncertainty=args.uncertainty and args.ensemble > 1)
            except MarigoldError as e:
                print(f"error: {f}: {e}", file=sys.stderr)
                failed.append(f"{f} ({p})")
                continue
            write(modality, pred[0], out_dir, stem, {"prompt": p, **options})
            if unc is not None:
                io.save_rgb(colorize.uncertainty_to_gray(unc)[0], out_dir / f"{stem}_uncertainty_{prompt_slug(p)}.png")
    if failed:
        print(f"{len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def split_clips(model, args: argparse.Namespace, w, any_clip: bool) -> bool:
    """Whether several processes split each clip (a RollingDepth checkpoint's snippets without refinement, or a
    Marigold checkpoint's frames); otherwise each clip runs whole on one process, and rank 0 says why in one line."""
    from .video.pipeline import PRESETS

    refine = args.refine_steps if args.refine_steps is not None else PRESETS[args.preset].refine_steps
    if not model.video_model or not refine:  # a Marigold checkpoint's video mode never refines
        return True
    if any_clip and w.is_main:
        print(f"note: each clip runs whole on one of the {w.size} processes: refinement (--refine-steps {refine}) "
              f"reads neighbouring frames at every step; --refine-steps 0 splits a clip's snippets across the "
              f"processes.", file=sys.stderr)
    return False


def run_clip(model, path: Path, name: str, out_dir: Path, args: argparse.Namespace) -> None:
    """One video file or frame folder → ``<name>_depth.mp4`` and ``<name>_<space>_16bit/`` (one normalisation),
    and with --stereo ``<name>_stereo.mp4`` from that same normalisation, the photo frames read a second time
    alongside (one frame in memory, whatever the clip's length)."""
    from .errors import MarigoldError
    from .video.pipeline import iter_video_depth
    from .video.io import open_video
    from .video.output import export_clip, parse_dilations

    source = open_video(path, fps=args.fps)
    frames = iter_video_depth(model, source, preset=args.preset, dilations=parse_dilations(args.dilations),
                              snippet_length=args.snippet_length, refine_steps=args.refine_steps,
                              processing_resolution=args.processing_resolution, seed=args.seed or 0,
                              batch_size=args.batch_size, frame_count=source.frame_count)
    stereo_video, refused = None, None
    if args.stereo:
        from .geometry.stereo import StereoVideoWriter

        try:  # bad stereo options must not cost the depth files: they are refused after those are written
            stereo_video = StereoVideoWriter(out_dir / f"{name}_stereo.mp4", source.fps, args.stereo,
                                             space=frames.space, **stereo_options(args))
        except MarigoldError as e:
            refused = e
    if stereo_video is None:
        export_clip(frames, out_dir, name, source.fps, space=frames.space, cmap=args.colormap, keep_raw=args.npy,
                    total=source.frame_count)
        if refused is not None:
            raise refused
        return
    photos = iter(source)
    with stereo_video:
        export_clip(frames, out_dir, name, source.fps, space=frames.space, cmap=args.colormap, keep_raw=args.npy,
                    total=source.frame_count, on_frame=lambda i, d: stereo_video.write(next(photos), d))


def run_clip_split(model, path: Path, name: str, out_dir: Path, args: argparse.Namespace, w) -> None:
    """One clip's snippets split across every process (each must call this), the files as :func:`run_clip`'s."""
    from .video.distributed import Collective, run_split_clip
    from .video.io import open_video
    from .video.output import parse_dilations

    source = open_video(path, fps=args.fps)  # a bad file fails in every process alike, before any collective
    if args.stereo and w.is_main:
        print(f"note: {name}: --stereo is not written when a clip's snippets are split across processes; run "
              f"this clip in one process for <name>_stereo.mp4.", file=sys.stderr)
    run_split_clip(model, source, out_dir, name, Collective(w), preset=args.preset,
                   dilations=parse_dilations(args.dilations), snippet_length=args.snippet_length,
                   processing_resolution=args.processing_resolution, seed=args.seed or 0,
                   batch_size=args.batch_size, cmap=args.colormap, keep_raw=args.npy)


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
