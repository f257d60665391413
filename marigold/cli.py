# The command line's entry: its options (parse_args; the docstring below is --help's text), main and the `marigold`
# script's entry. The work per image, prompt, clip and 3D / stereo file is in marigold/cli_parts/ (its __init__ lists it).
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
Metric depth (docs/metric.md): ``--sparse FILE_OR_FOLDER`` (16-bit PNG in mm, .npy / .exr in metres) or
``--known X,Y,METRES ...`` writes ``<stem>_metric.npy`` / ``.exr``, ``<stem>_metric_16bit.png`` (mm) and
``<stem>_metric.png`` (colour, with a metre scale) by depth completion (Marigold-DC), or by one scale and shift
with ``--metric fit``; the 3D and stereo outputs then use those distances.
Under ``accelerate launch`` / ``torchrun`` each process takes every N-th image, and all processes split each
RollingDepth clip's snippets (README, "Several processes or GPUs").
"""

from __future__ import annotations

import argparse
import os
import sys

from .cli_parts import DEFAULT_CHECKPOINT, SEGMENTATION_CHECKPOINT
from .cli_parts.outputs import RELIEF, STEREO_LAYOUTS
# the names cli.py held before its work moved to cli_parts/ (tests and scripts import them from here)
from .cli_parts.clips import run_clip, run_clip_split, split_clips  # noqa: F401
from .cli_parts.images import predict_tiled_cli, run, tile_options  # noqa: F401
from .cli_parts.inputs import collect_inputs, is_clip  # noqa: F401
from .cli_parts.outputs import stereo_options, wants_geometry, write_geometry, write_stereo  # noqa: F401
from .cli_parts.prompted import run_prompted  # noqa: F401


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
    v.add_argument("--temporal-strength", type=float, default=None, metavar="S",
                   help="Marigold checkpoints: temporal fusion after the per-frame alignment (the previous "
                        "output carried by the camera's motion), 0..1; 0 = off, the alignment alone (default 1 "
                        "where OpenCV is installed, the flow extra; else 0, said once)")
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
    m = ap.add_argument_group("metric depth (see docs/metric.md)",
                              "depth in metres from sparse measurements (a LiDAR sweep, a phone's depth sensor, SfM "
                              "points, or a few distances you know); --mesh, --points and --stereo then use it")
    m.add_argument("--sparse", default=None, metavar="FILE_OR_FOLDER",
                   help="measured depth: a 16-bit PNG in millimetres, or .npy / .exr in metres, 0 = unmeasured "
                        "(a folder: one per image, named by its stem); writes <stem>_metric.npy, .exr, "
                        "_metric_16bit.png (mm) and _metric.png (colour with a metre scale)")
    m.add_argument("--known", nargs="+", action="extend", default=None, metavar="X,Y,METRES",
                   help="known distances at pixels, e.g. --known 320,240,2.5 100,400,1.2 (for every image)")
    m.add_argument("--metric", default="complete", choices=("complete", "fit"),
                   help="complete: Marigold-DC depth completion, guided by the points (default); fit: one "
                        "least-squares scale and shift of the plain prediction (seconds)")
    m.add_argument("--complete-steps", type=int, default=None, metavar="N",
                   help="completion steps (default 50 on a GPU, 10 on the CPU, at 768 / 512 px)")
    m.add_argument("--snap", action=argparse.BooleanOptionalAction, default=None,
                   help="make the metric map pass through the measurements, their residuals spread along surfaces "
                        "(default: on for complete, off for fit; --no-snap gives Marigold-DC's own map)")
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
