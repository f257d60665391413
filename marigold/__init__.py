"""Marigold: dense prediction (depth, normals, intrinsics) with a repurposed Stable Diffusion UNet.

    import marigold
    model = marigold.load("prs-eth/marigold-depth-v1-1")        # or a checkpoint folder
    out = marigold.predict(model, "photo.jpg" or PIL/ndarray/tensor, ensemble_size=5, seed=0)
    out.prediction  # [N,1,H,W] float32 in 0..1

    seg = marigold.segment(marigold.load("pcuenq/marigold-coco-segmentation"), "photo.jpg", "car")
    seg.mask  # [N,1,H,W] 0/1, 1 = the car (docs/segmentation.md)
"""

from .bas_relief import relief
from .checkpoint import PUBLISHED, MarigoldModel, empty_text_embedding, inspect, load, resolve
from .colorize import colorize_depth, normals_to_rgb, uncertainty_to_gray
from .ensemble import ensemble_depth, ensemble_intrinsics, ensemble_normals
from .errors import Cancelled, CheckpointError, InputError, MarigoldError
from .geometry import depth_to_normals
from .io import load_image, save_depth_16bit, save_exr, save_npy, save_rgb
from .mesh import depth_to_mesh, depth_to_points, save_3d
from .predict import Members, Prediction, ensemble_members, finish, iter_members, predict, predict_depth, \
    predict_intrinsics, predict_normals
from .prompts import prompt_embedding, prompt_embeddings
from .segment import Segmentation, mask_from_painted, segment
from .snippet import enable_snippet_attention, snippet_frames
from .video import PRESETS, ClipNormalizer, VideoFrame, VideoPrediction, clip_normalizer, iter_video_depth, \
    predict_video

__version__ = "0.1.0"
__all__ = [
    "PUBLISHED", "MarigoldModel", "empty_text_embedding", "inspect", "load", "resolve",
    "colorize_depth", "normals_to_rgb", "uncertainty_to_gray",
    "ensemble_depth", "ensemble_intrinsics", "ensemble_normals",
    "Cancelled", "CheckpointError", "InputError", "MarigoldError",
    "depth_to_normals", "depth_to_mesh", "depth_to_points", "relief", "save_3d",
    "load_image", "save_depth_16bit", "save_exr", "save_npy", "save_rgb",
    "Members", "Prediction", "ensemble_members", "finish", "iter_members", "predict", "predict_depth",
    "predict_intrinsics", "predict_normals",
    "prompt_embedding", "prompt_embeddings", "Segmentation", "mask_from_painted", "segment",
    "enable_snippet_attention", "snippet_frames",
    "PRESETS", "ClipNormalizer", "VideoFrame", "VideoPrediction", "clip_normalizer", "iter_video_depth", "predict_video",
]
