"""The command line's per-image and per-clip extras from depth: the 3D files (--relief, --mesh, --points) and the
stereo view (--stereo), with the option defaults --help shows without importing torch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

STEREO_LAYOUTS = ("sbs", "hsbs", "tb", "anaglyph", "cross")  # marigold.stereo.LAYOUTS, without importing torch


def stereo_options(args: argparse.Namespace) -> dict:
    return dict(divergence=args.divergence, convergence=args.convergence, far_over_near=args.stereo_far_over_near)


def write_stereo(args: argparse.Namespace, depth, photo, out_dir: Path, stem: str, space: str) -> None:
    """``<stem>_stereo.png`` from one depth map ``[1,H,W]`` and its photo."""
    from ..io import images as io
    from ..geometry.stereo import stereo

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
    from ..geometry import mesh
    from ..geometry.relief import relief

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
