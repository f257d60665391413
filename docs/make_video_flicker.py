"""docs/pictures/video_flicker.png: what video mode's temporal fusion removes, on one held-out flicker clip.

    python -m docs.make_video_flicker .cache/quality/small-s0/final [--clip 0] [--start 12]

A held-out clip of bench.quality's video row, "+ a ball rolling across + all four" (train.video_eval: a moving
camera, a ball rolling across, per-frame exposure, white balance, sensor noise and JPEG), 5 consecutive frames.
Rows: the frames; the depth of each frame run alone with one seed (``marigold.predict``); video mode as it runs by
default (``marigold.predict_video``: per-frame alignment + the temporal fusion); under each depth row its
|difference to the previous frame|. Each clip's maps are aligned to the true depth by ONE scale and shift for the
whole clip (as the temporal error is scored), the depths coloured on the truth's range, the differences on one
scale for both rows. The title gives the clip's temporal error (TE) of both, from train.video_metrics.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KIND = "+ a ball rolling across + all four"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a small depth checkpoint (bench.quality's .cache/quality/small-s0/final)")
    ap.add_argument("--clip", type=int, default=0, help="which held-out clip (0..2 are the bench's)")
    ap.add_argument("--start", type=int, default=12, help="first frame shown (the one before it is differenced)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "pictures" / "video_flicker.png"))
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from PIL import Image

    import marigold
    from bench.quality import SIZE, VIDEO_CLIPS, _depth_of
    from train.video_eval import appearance_flicker, synthetic_videos
    from train.video_metrics import align_video, evaluate_video

    torch.set_num_threads(1)
    moving, kinds = VIDEO_CLIPS[KIND]
    clip = synthetic_videos(args.clip + 1, 32, *SIZE, split="heldout", path="random", texture="flat",
                            moving=moving)[args.clip]
    rgb = appearance_flicker(clip.rgb, kinds, seed=args.clip)  # [T,H,W,3], as bench.quality.video_row draws it
    model = marigold.load(args.model, device="cpu", dtype="fp32", progress=False)
    frames = np.stack([_depth_of(model, f) for f in rgb])  # [T,H,W] each frame alone, seed 0
    video = marigold.predict_video(model, torch.from_numpy(rgb).permute(0, 3, 1, 2), seed=0)  # the default
    video_depth = video.depth[:, 0].numpy()  # [T,H,W]
    mask = clip.valid & (clip.depth > 1e-3)
    te = {}
    rows = {}
    for name, p in (("frames, one seed", frames), ("video mode", video_depth)):
        m = evaluate_video(p, clip.depth, clip.valid, space="depth", intrinsics=clip.intrinsics, poses=clip.poses,
                           moving=clip.moving, motion=clip.motion)
        te[name] = m["temporal_error"]
        rows[name] = align_video(p, clip.depth, mask)  # [T,H,W] one scale and shift for the clip
    s = slice(args.start, args.start + 5)
    lo, hi = float(clip.depth[mask].min()), float(clip.depth[mask].max())
    diffs = {k: np.abs(np.diff(v[args.start - 1:args.start + 5], axis=0)) for k, v in rows.items()}  # [5,H,W]
    dmax = float(np.percentile(np.concatenate([d[mask[s]] for d in diffs.values()]), 99.5))

    fig, ax = plt.subplots(5, 6, figsize=(10, 8.4),
                           gridspec_kw=dict(wspace=0.03, hspace=0.06, width_ratios=[1] * 5 + [0.06]))
    labels = ["frames (flicker)", "frames, one seed:\ndepth", "|change from\nprevious frame|",
              "video mode:\ndepth", "|change from\nprevious frame|"]
    for j, t in enumerate(range(args.start, args.start + 5)):
        ax[0, j].imshow(rgb[t])
        ax[0, j].set_title(f"frame {t}", fontsize=9)
        for i, name in ((1, "frames, one seed"), (3, "video mode")):
            dep = ax[i, j].imshow(np.where(mask[t], rows[name][t], np.nan), cmap="Spectral", vmin=lo, vmax=hi)
            dif = ax[i + 1, j].imshow(np.where(mask[t], diffs[name][j], np.nan), cmap="magma", vmin=0, vmax=dmax)
    for i, label in enumerate(labels):
        ax[i, 0].set_ylabel(label, fontsize=9)
    for a in ax[:, :5].flat:
        a.set_xticks([])
        a.set_yticks([])
    ax[0, 5].axis("off")
    for i in (1, 3):  # a colour bar beside each row, in the narrow last column
        fig.colorbar(dep, cax=ax[i, 5]).set_label("depth", fontsize=8)
        fig.colorbar(dif, cax=ax[i + 1, 5]).set_label("|Δ depth|", fontsize=8)
    fig.suptitle(f"small model (seed 0), held-out clip {args.clip}, \"{KIND}\"; temporal error of the clip: "
                 f"{te['frames, one seed']:.4f} frame by frame, {te['video mode']:.4f} in video mode "
                 f"({te['video mode'] / te['frames, one seed']:.2f}×)", fontsize=9, y=0.93)
    out = Path(args.out)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90, bbox_inches="tight")
    # a palette of 256 colours keeps the picture small (< 200 KB) without visible banding at this size
    Image.open(tmp).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    tmp.unlink()
    print(out, f"{out.stat().st_size / 1024:.0f} KB", te)
    return 0


if __name__ == "__main__":
    sys.exit(main())
