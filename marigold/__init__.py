"""Marigold: dense prediction (depth, normals, intrinsics) with a repurposed Stable Diffusion UNet.

    import marigold
    model = marigold.load("prs-eth/marigold-depth-v1-1")        # or a checkpoint folder
    out = marigold.predict(model, "photo.jpg" or PIL/ndarray/tensor, ensemble_size=5, seed=0)
    out.prediction  # [N,1,H,W] float32 in 0..1
    big = marigold.predict_tiled(model, "photo.jpg", tile_factor=2)  # high resolution: docs/tiling.md
    metres = marigold.complete(model, "photo.jpg", sparse)  # metric depth from sparse measurements: docs/metric.md

    seg = marigold.segment(marigold.load("pcuenq/marigold-coco-segmentation"), "photo.jpg", "car")
    seg.mask  # [N,1,H,W] 0/1, 1 = the car (docs/segmentation.md)
"""

from .compat import check_versions

check_versions()  # a too-old diffusers etc. is one clear line here, not an AttributeError deep in a call

from . import modalities  # noqa: E402  (registers the built-in entries, segmentation included)
from .core import modality  # marigold.modality: the description of a modality (register your own there)
from .core import prompts  # marigold.prompts: the text encoder and the per-model prompt-embedding cache
from .geometry.relief import relief
from .core.checkpoint import PUBLISHED, MarigoldModel, empty_text_embedding, inspect, load, resolve
from .io.colorize import colorize_depth, normals_to_rgb, uncertainty_to_gray
from .core.ensemble import ensemble_depth, ensemble_intrinsics, ensemble_normals
from .errors import Cancelled, CheckpointError, InputError, MarigoldError
from .geometry.normals import depth_to_normals
from .io.images import load_image, save_depth_16bit, save_exr, save_npy, save_rgb
from .geometry.mesh import depth_to_mesh, depth_to_points, save_3d
from .core.predict import Members, Prediction, ensemble_members, finish, iter_members, predict, predict_depth, \
    predict_intrinsics, predict_normals
from .core.prompts import prompt_embedding, prompt_embeddings
from .modalities.segmentation import Segmentation, mask_from_painted, segment
from .core.snippet import enable_snippet_attention, snippet_frames
from .core.tiling import TiledPrediction, predict_tiled
from .core.completion import Completion, complete
from .core.metric import MetricDepth, fit_metric, metric_errors, parse_points
from .core.snap import snap_to_points
from .geometry.stereo import StereoPair, stereo
from .video.pipeline import PRESETS, ClipNormalizer, VideoFrame, VideoPrediction, clip_normalizer, iter_video_depth, \
    predict_video

from .moved import install as _serve_old_paths  # noqa: E402

_serve_old_paths(__name__)  # marigold.ensemble, marigold.checkpoint, ...: the modules that moved, with a warning

__version__ = "0.1.0"
__all__ = [
    "modality", "PUBLISHED", "MarigoldModel", "empty_text_embedding", "inspect", "load", "resolve",
    "colorize_depth", "normals_to_rgb", "uncertainty_to_gray",
    "ensemble_depth", "ensemble_intrinsics", "ensemble_normals",
    "Cancelled", "CheckpointError", "InputError", "MarigoldError",
    "depth_to_normals", "depth_to_mesh", "depth_to_points", "relief", "save_3d",
    "load_image", "save_depth_16bit", "save_exr", "save_npy", "save_rgb",
    "Members", "Prediction", "ensemble_members", "finish", "iter_members", "predict", "predict_depth",
    "predict_intrinsics", "predict_normals",
    "prompt_embedding", "prompt_embeddings", "Segmentation", "mask_from_painted", "segment",
    "enable_snippet_attention", "snippet_frames", "StereoPair", "stereo",
    "TiledPrediction", "predict_tiled",
    "Completion", "complete", "MetricDepth", "fit_metric", "metric_errors", "parse_points", "snap_to_points",
    "PRESETS", "ClipNormalizer", "VideoFrame", "VideoPrediction", "clip_normalizer", "iter_video_depth", "predict_video",
]
