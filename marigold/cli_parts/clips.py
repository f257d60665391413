"""The command line's videos: one clip in one process (depth video, 16-bit frames, optional stereo video), or one
clip's snippets split across several processes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .outputs import stereo_options


def split_clips(model, args: argparse.Namespace, w, any_clip: bool) -> bool:
    """Whether several processes split each clip (a RollingDepth checkpoint's snippets without refinement, or a
    Marigold checkpoint's frames); otherwise each clip runs whole on one process, and rank 0 says why in one line."""
    from ..video.pipeline import PRESETS

    if model.video_model:  # RollingDepth: refinement reads neighbouring frames at every step
        value = args.refine_steps if args.refine_steps is not None else PRESETS[args.preset].refine_steps
        option, why = "--refine-steps", "refinement ({option} {value:g}) reads neighbouring frames at every step"
    else:  # a Marigold checkpoint's video mode never refines, but its fusion runs in order
        from ..video.fusion import fusion_default

        value = fusion_default() if args.temporal_strength is None else args.temporal_strength
        option, why = "--temporal-strength", ("the temporal fusion ({option} {value:g}) carries each frame's result "
                                              "into the next")
    if not value:
        return True
    if any_clip and w.is_main:
        what = "snippets" if model.video_model else "frames"
        print(f"note: each clip runs whole on one of the {w.size} processes: {why.format(option=option, value=value)}; "
              f"{option} 0 splits a clip's {what} across the processes.", file=sys.stderr)
    return False


def fusion_note(model, args: argparse.Namespace, w, any_clip: bool) -> None:
    """Rank 0 says once, in one line, when video mode's default temporal fusion cannot run (no OpenCV) and the
    clips of a Marigold checkpoint run with the per-frame alignment only."""
    from ..video.fusion import MISSING_NOTE, VIDEO_MODE_STRENGTH, fusion_default

    if (any_clip and w.is_main and not model.video_model and args.temporal_strength is None
            and VIDEO_MODE_STRENGTH and not fusion_default()):
        print(f"note: {MISSING_NOTE}", file=sys.stderr)


def run_clip(model, path: Path, name: str, out_dir: Path, args: argparse.Namespace) -> None:
    """One video file or frame folder → ``<name>_depth.mp4`` and ``<name>_<space>_16bit/`` (one normalisation),
    and with --stereo ``<name>_stereo.mp4`` from that same normalisation, the photo frames read a second time
    alongside (one frame in memory, whatever the clip's length)."""
    from ..errors import MarigoldError
    from ..video.pipeline import iter_video_depth
    from ..video.io import open_video
    from ..video.output import export_clip, parse_dilations

    source = open_video(path, fps=args.fps)
    frames = iter_video_depth(model, source, preset=args.preset, dilations=parse_dilations(args.dilations),
                              snippet_length=args.snippet_length, refine_steps=args.refine_steps,
                              processing_resolution=args.processing_resolution, seed=args.seed or 0,
                              batch_size=args.batch_size, frame_count=source.frame_count,
                              temporal_strength=args.temporal_strength)
    stereo_video, refused = None, None
    if args.stereo:
        from ..geometry.stereo import StereoVideoWriter

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
    from ..video.distributed import Collective, run_split_clip
    from ..video.io import open_video
    from ..video.output import parse_dilations

    source = open_video(path, fps=args.fps)  # a bad file fails in every process alike, before any collective
    if args.stereo and w.is_main:
        print(f"note: {name}: --stereo is not written when a clip's snippets are split across processes; run "
              f"this clip in one process for <name>_stereo.mp4.", file=sys.stderr)
    run_split_clip(model, source, out_dir, name, Collective(w), preset=args.preset,
                   dilations=parse_dilations(args.dilations), snippet_length=args.snippet_length,
                   processing_resolution=args.processing_resolution, seed=args.seed or 0,
                   batch_size=args.batch_size, cmap=args.colormap, keep_raw=args.npy)
