"""``python -m marigold IMAGE_OR_FOLDER... -o OUT_DIR``: depth (or normals, intrinsics) for files and folders.

Per input ``<stem>``, a depth checkpoint writes ``<stem>_depth.png`` (colour) and ``<stem>_depth_16bit.png``
(uint16, depth × 65535); ``--npy`` adds ``<stem>_depth.npy``, ``--exr`` ``<stem>_depth.exr`` (float32), ``--uncertainty`` ``<stem>_uncertainty.png``.
A normals checkpoint writes ``<stem>_normals.png``; an intrinsics one ``<stem>_<target>.png`` per target.
From depth, 3D files too: ``--relief stl|glb|obj`` a 3D-printable bas-relief ``<stem>_relief.<ext>`` (the
Marigold demo's defaults: 10 cm, 512 px, 20 % embossing, 5 mm frame), ``--mesh glb|obj|ply`` the scene as the
camera saw it ``<stem>_mesh.<ext>``, ``--points`` a coloured point cloud ``<stem>_points.ply``.
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
    return ap.parse_args(argv)


# the relief's defaults, as the library states them (kept here so --help works without importing torch)
RELIEF = dict(size_mm=100.0, resolution_px=512, embossing=20.0, plane_near=0.0, plane_far=1.0, median_size=3,
              frame_mm=5.0, frame_near_mm=1.0, back_mm=1.0)


def wants_geometry(args: argparse.Namespace) -> bool:
    return bool(args.relief or args.mesh or args.points)


def write_geometry(args: argparse.Namespace, depth, image, out_dir: Path, stem: str) -> None:
    """The 3D files asked for, from one depth map ``[1,H,W]`` and the photo it was predicted from."""
    from . import mesh
    from .relief import relief

    if args.relief:
        solid = relief(depth, image, size_mm=args.relief_size_mm, resolution_px=args.relief_resolution,
                       embossing=args.embossing, plane_near=args.plane_near, plane_far=args.plane_far,
                       median_size=args.median_size, frame_mm=args.frame_mm, frame_near_mm=args.frame_near_mm,
                       back_mm=args.back_mm)
        mesh.save_3d(solid, out_dir / f"{stem}_relief.{args.relief}")
    cam = dict(fov_degrees=args.fov, far_over_near=args.far_over_near, resolution_px=args.mesh_resolution)
    if args.mesh:
        surface = mesh.depth_to_mesh(depth, image, edge_threshold=args.edge_threshold, **cam)
        mesh.save_3d(surface, out_dir / f"{stem}_mesh.{args.mesh}")
    if args.points:
        mesh.save_3d(mesh.depth_to_points(depth, image, **cam), out_dir / f"{stem}_points.ply")


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
    from .errors import MarigoldError
    from .predict import predict

    files = collect_inputs(args.inputs)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load(args.checkpoint, device=args.device, dtype=args.dtype, cache_dir=args.cache_dir)
    if wants_geometry(args) and model.task != "depth":
        from .errors import InputError

        raise InputError(f"--relief, --mesh and --points need a depth checkpoint; {args.checkpoint} is a "
                         f"{model.task} checkpoint.")
    failed = []
    for f, stem in zip(tqdm(files, desc="Marigold", unit="image", disable=len(files) < 2), _stems(files)):
        try:
            photo = io.load_image(f)
            out = predict(model, photo, num_inference_steps=args.steps, ensemble_size=args.ensemble,
                          processing_resolution=args.processing_resolution, batch_size=args.batch_size,
                          seed=args.seed, output_uncertainty=args.uncertainty and args.ensemble > 2)
        except Exception as e:  # one bad file must not lose the others
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
            if wants_geometry(args):
                try:
                    write_geometry(args, p, photo, out_dir, stem)
                except MarigoldError as e:  # the depth files are written; say what the 3D step refused
                    print(f"error: {f}: {e}", file=sys.stderr)
                    failed.append(f)
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
