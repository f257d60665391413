"""Scoring models on videos: image models frame by frame, Marigold's video mode and snippet models.

Every path ends in :func:`train.video_metrics.evaluate_video`: one least-squares alignment per clip in the
model's space, AbsRel / δ1 pooled over the clip's frames, and the temporal error where poses are known.

- ``frames``: :func:`marigold.predict` on each frame, each normalised on its own (what flickers).
- ``video``: :func:`marigold.video.pipeline.predict_video` (Marigold's video mode, or a RollingDepth/snippet checkpoint
  through the whole rolling pipeline) on the full clip.
- :func:`evaluate_snippets`: the snippet step alone on a live UNet (validation during training, and the
  snippet-vs-single-frame comparison): each evaluated clip is one snippet of n frames at dilation g, predicted
  jointly (n frames) or frame by frame (n = 1), never normalised per frame.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .data.synthetic import SyntheticVideoDataset, VideoClip
from .video_metrics import evaluate_video


def synthetic_videos(n: int = 4, frames: int = 48, height: int = 48, width: int = 64,
                     split: str = "heldout", path: str = "random", texture: str = "photo",
                     moving: bool = False) -> list[VideoClip]:
    ds = SyntheticVideoDataset(n, frames, height, width, split, path=path, texture=texture, moving=moving)
    return [ds.clip(i) for i in range(n)]


# What real footage does to a clip from frame to frame, each switchable (:func:`appearance_flicker`). Strengths
# are what a phone or webcam shows in auto mode: auto-exposure steps of up to ±20 %, auto white balance moving the
# red and blue gains by up to ±12 %, shot + read noise (σ² = 0.002·x + 0.01², about 2.6 % at mid-grey, new every
# frame), and JPEG at a quality drawn per frame in 25..60 (8×8 blocks that move with the content).
FLICKER_KINDS = ("exposure", "white balance", "noise", "jpeg")


def _jpeg(frame: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(frame, 0, 1) * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(buf).convert("RGB"), np.float32) / 255.0


def appearance_flicker(rgb: np.ndarray, kinds: Iterable[str], seed: int = 0) -> np.ndarray:
    """``[T,H,W,3]`` 0..1 → the same clip with each frame's own exposure, white balance, sensor noise and/or JPEG
    compression (``kinds`` ⊆ :data:`FLICKER_KINDS`, applied in that order, as a camera does), clipped to 0..1.
    Each kind draws from its own stream of ``seed``, so switching one on leaves the others' draws as they were."""
    kinds = set(kinds)
    if kinds - set(FLICKER_KINDS):
        raise ValueError(f"flicker kinds must be among {', '.join(FLICKER_KINDS)}; got {sorted(kinds)}.")
    t = rgb.shape[0]
    out = rgb.astype(np.float32)
    if "exposure" in kinds:  # the ±20 % of bench.quality's first flicker row, same draws
        out = out * np.random.default_rng(seed).uniform(0.8, 1.2, (t, 1, 1, 1)).astype(np.float32)
    if "white balance" in kinds:
        g = np.exp(np.random.default_rng([seed, 1]).uniform(-0.12, 0.12, (t, 2)))  # red, blue gains
        out = out * np.stack([g[:, 0], np.ones(t), g[:, 1]], 1)[:, None, None, :].astype(np.float32)
    out = np.clip(out, 0, 1)
    if "noise" in kinds:
        rng = np.random.default_rng([seed, 2])
        out = np.clip(out + np.sqrt(0.002 * out + 0.01**2) * rng.standard_normal(out.shape).astype(np.float32), 0, 1)
    if "jpeg" in kinds:
        q = np.random.default_rng([seed, 3]).integers(25, 61, t)
        out = np.stack([_jpeg(f, qi) for f, qi in zip(out, q)])
    return out.astype(np.float32)


def _mean(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k != "name"]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def evaluate_snippets(unet, vae, text: torch.Tensor, scheduler_config: dict, clips: Iterable[VideoClip], *,
                      frames: int = 3, joint: bool = True, dilation: int = 4, per_video: int = 4,
                      space: str = "disparity", steps: int = 1, seed: int = 0) -> dict:
    """Snippets of ``frames`` frames at ``dilation`` from each clip, predicted jointly (``joint``) or frame by
    frame; one alignment per snippet; means over all snippets."""
    from .snippet_infer import predict_snippets, snippet_clips

    rows = []
    for c in clips:
        for idx in snippet_clips(c.rgb.shape[0], frames, dilation, per_video):
            rgb = torch.from_numpy(c.rgb[idx]).permute(0, 3, 1, 2)[None]  # [1,n,3,H,W]
            if joint:
                pred = predict_snippets(unet, vae, text, scheduler_config, rgb, steps=steps, seed=seed)[0]
            else:  # each frame alone, with the same noise a snippet would get
                pred = predict_snippets(unet, vae, text, scheduler_config, rgb.transpose(0, 1), steps=steps,
                                        seed=seed)[:, 0]
            m = evaluate_video(pred.numpy(), c.depth[idx], c.valid[idx], space=space, intrinsics=c.intrinsics,
                               poses=c.poses[idx])
            rows.append({"name": f"{c.name}:{idx[0]}", **m})
    return {"n": len(rows), "metrics": _mean(rows), "rows": rows}


def predict_clip(model, rgb: np.ndarray, mode: str = "frames", **kw) -> tuple[np.ndarray, str]:
    """``rgb`` ``[T,H,W,3]`` → (prediction ``[T,H,W]``, its space) by ``mode``: "frames" or "video"."""
    import marigold

    if mode == "frames":
        space = "disparity" if getattr(model, "prediction_type", "depth") == "disparity" else "depth"
        pred = np.stack([marigold.predict(model, f, **kw).prediction[0, 0].numpy() for f in rgb])
        return pred, space
    if mode == "video":
        try:
            from marigold.video.pipeline import predict_video
        except ImportError as e:  # the video pipeline arrives with branch `video`
            raise SystemExit(f"--video-mode video needs marigold.video.pipeline ({e}).") from e
        out = predict_video(model, torch.from_numpy(rgb).permute(0, 3, 1, 2), **kw)
        return out.depth[:, 0].numpy(), out.space
    raise ValueError(f"video mode must be 'frames' or 'video'; got {mode!r}")


def evaluate_clips(model, clips: Iterable, mode: str = "frames", min_depth: float = 1e-3,
                   max_depth: float = np.inf, **kw) -> dict:
    """Whole clips (``VideoClip``-like: rgb, depth, valid, intrinsics, poses, name) through ``mode``."""
    rows = []
    for c in clips:
        pred, space = predict_clip(model, c.rgb, mode, **kw)
        m = evaluate_video(pred, c.depth, c.valid, space=space, intrinsics=c.intrinsics, poses=c.poses,
                           min_depth=min_depth, max_depth=max_depth)
        rows.append({"name": c.name, **m})
    return {"n": len(rows), "metrics": _mean(rows), "rows": rows}


def clips_of(ds, limit: int | None = None, max_frames: int | None = None) -> Iterable[VideoClip]:
    """The sequences of a video set as whole clips (read frame by frame)."""
    for i in range(min(len(ds), limit or len(ds))):
        t = min(ds.num_frames(i), max_frames or ds.num_frames(i))
        fr = [ds.frame(i, k) for k in range(t)]
        poses = ds.poses(i) if hasattr(ds, "poses") else None
        yield VideoClip(rgb=np.stack([f.rgb for f in fr]), depth=np.stack([f.depth for f in fr]),
                        valid=np.stack([f.valid for f in fr]),
                        intrinsics=ds.intrinsics(i) if hasattr(ds, "intrinsics") else None,
                        poses=None if poses is None else poses[:t], name=ds.name(i) if hasattr(ds, "name") else str(i))
