"""The command line with a prompt model (text-grounded segmentation): every image × every --prompt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .inputs import is_clip, output_stems


def run_prompted(model, args: argparse.Namespace, items: list[Path], out_dir: Path, w) -> int:
    """A prompt model (text-grounded segmentation): every image × every --prompt through its entry's
    ``predict_prompt``, written by its writer (segmentation: ``<stem>_mask_<prompt>.png`` and
    ``<stem>_painted_<prompt>.png``); a bad prompt or image is one line and the others are still processed."""
    from tqdm.auto import tqdm

    from ..core.modality import write
    from ..core.prompts import prompt_embeddings, prompt_slug
    from ..errors import InputError, MarigoldError
    from ..io import colorize, images as io

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
    files = w.shard([(f, stem) for f, stem in zip(items, output_stems(items)) if not is_clip(f)])
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
