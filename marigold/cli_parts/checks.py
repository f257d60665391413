"""The command line's up-front option checks: every option the run would refuse is refused here, before the
checkpoint is loaded or any image predicted (a folder of 500 photos must not pay 500 depth runs to learn of a
typo in --divergence). Each check is the library's own, its parameter names turned into the options typed."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

from .inputs import is_clip


def as_options(check: Callable[[], object], names: dict[str, str], option: str | None = None):
    """Run ``check`` (a library check naming its parameters, e.g. `divergence`); an InputError comes back with
    the options typed instead (``names``: parameter → option), or, when it names none of them, led by
    ``option``."""
    from ..errors import InputError

    try:
        return check()
    except InputError as e:
        msg = str(e)
        for k, v in names.items():
            msg = msg.replace(f"`{k}`", v)
            if "_" in k:  # a bare snake_case name is the parameter too (not an English word)
                msg = re.sub(rf"\b{k}\b", v, msg)
        if option is not None and not any(v in msg for v in names.values()):
            msg = f"{option}: {msg}"
        raise InputError(msg) from None


SAMPLING = {"num_inference_steps": "--steps", "ensemble_size": "--ensemble", "batch_size": "--batch-size",
            "processing_resolution": "--processing-resolution"}
STEREO = {"divergence": "--divergence", "convergence": "--convergence", "far_over_near": "--stereo-far-over-near"}
RELIEF = {"size_mm": "--relief-size-mm", "embossing": "--embossing", "plane_near": "--plane-near",
          "plane_far": "--plane-far", "median_size": "--median-size", "frame_mm": "--frame-mm",
          "back_mm": "--back-mm", "resolution_px": "--relief-resolution"}
MESH = {"fov_degrees": "--fov", "far_over_near": "--far-over-near", "edge_threshold": "--edge-threshold",
        "resolution_px": "--mesh-resolution"}
TILE = {"tile_factor": "--tile-factor", "tile_resolution": "--tile-resolution", "tile_overlap": "--tile-overlap"}
VIDEO = {"dilations": "--dilations", "snippet_length": "--snippet-length", "refine_steps": "--refine-steps"}


def check_options(args: argparse.Namespace, items: list[Path]) -> None:
    """Refuse, in one line naming the option, every setting the run would refuse later: the sampling options
    when there are images, the video options when there are clips, and --colormap, --threshold, --stereo's,
    --relief's, --mesh's and --points' options when they are used. What depends on the checkpoint (its
    modality, its default resolution for --tile) is checked once it is loaded, still before the first image."""
    from ..core.predict import check_options as check_sampling
    from ..errors import InputError

    images = any(not is_clip(f) for f in items)
    clips = any(is_clip(f) for f in items)

    # the resolution and batch rules are the same for images and clips; steps and ensemble are the images' only
    as_options(lambda: check_sampling(args.steps if images else None, args.ensemble if images else 1,
                                      args.processing_resolution, args.batch_size), SAMPLING)
    if clips:
        from ..video.output import parse_dilations
        from ..video.pipeline import snippet_options

        as_options(lambda: snippet_options(args.preset, parse_dilations(args.dilations), args.snippet_length,
                                           args.refine_steps), VIDEO, "--dilations")
        if args.temporal_strength is not None:
            from ..video.fusion import check_strength

            as_options(lambda: check_strength(args.temporal_strength), {}, "--temporal-strength")
        if args.fps is not None and not args.fps > 0:
            raise InputError(f"--fps must be positive (frames per second of a folder of frames); got {args.fps}.")
    if not args.prompt:  # the colour maps of depth (a prompt model writes masks)
        from ..io.colorize import check_colormap

        as_options(lambda: check_colormap(args.colormap), {}, "--colormap")
    else:
        from ..modalities.segmentation import check_threshold

        as_options(lambda: check_threshold(args.threshold), {"threshold": "--threshold"})
    if args.stereo:
        from ..geometry.stereo import check_options as check_stereo

        as_options(lambda: check_stereo(args.divergence, args.convergence, args.stereo_far_over_near), STEREO)
    from ..geometry.mesh import check_camera, check_edge_threshold, check_resolution

    if args.relief:
        from ..geometry.relief import check_options as check_relief

        as_options(lambda: check_relief(args.relief_size_mm, args.embossing, args.plane_near, args.plane_far,
                                        args.median_size, args.frame_mm, args.back_mm), RELIEF)
        as_options(lambda: check_resolution(args.relief_resolution), RELIEF)
    if args.mesh or args.points:
        as_options(lambda: check_camera(args.fov, args.far_over_near), MESH)
        as_options(lambda: check_resolution(args.mesh_resolution, 2 if args.mesh else 1), MESH)
        if args.mesh:
            as_options(lambda: check_edge_threshold(args.edge_threshold), MESH)
    check_tiling_options(args, args.processing_resolution)


def check_tiling_options(args: argparse.Namespace, res: int | None) -> None:
    """--tile's options against the tile size ``res`` (the processing resolution); None (the checkpoint's default,
    known once it is loaded) checks only that they come with --tile."""
    from ..core.tiling import MERGES, check_tiling
    from ..errors import InputError

    given = [o for o, v in (("--tile-factor", args.tile_factor), ("--tile-resolution", args.tile_resolution),
                            ("--tile-overlap", args.tile_overlap), ("--tile-merge", args.tile_merge))
             if v is not None]
    if not args.tile:
        if given:
            raise InputError(f"{', '.join(given)} set the tiling; add --tile to tile.")
        return
    if args.tile_merge is not None and args.tile_merge not in MERGES:
        raise InputError(f"--tile-merge must be one of {', '.join(MERGES)}; got {args.tile_merge!r}.")
    if res is None:
        return
    if res <= 0:
        raise InputError("--tile needs a positive --processing-resolution (it is the tile size); got 0 (native).")
    as_options(lambda: check_tiling(res, args.tile_overlap, args.tile_factor, args.tile_resolution), TILE)
