"""Video depth without flicker, in bounded memory: RollingDepth checkpoints, and any Marigold depth checkpoint.

**RollingDepth** (Ke et al., "Video Depth without Video Models", CVPR 2025, arXiv 2411.19189; the reference
is prs-eth/RollingDepth, ``rollingdepth/rollingdepth_pipeline.py``, ``RollingDepthPipeline.forward``): every frame is VAE-encoded
once; ONE noise tensor is shared by all frames; for each dilation g, snippets of n frames ``[i, i+g, …,
i+(n-1)g]`` (stride 1) run ONE denoising step from t = 999 with self-attention across the snippet's frames
(:mod:`marigold.core.snippet`); each snippet is decoded to affine-invariant inverse depth; one scale and shift per
snippet are fitted so that all snippets covering a frame agree (:func:`marigold.core.coalign.solve`); the aligned
snippets are averaged per frame, and the clip is normalised once.

**Marigold depth checkpoints** in video mode: the same noise for every frame, each frame predicted through the
image path (:func:`marigold.core.predict.iter_members`), then one scale and shift per *frame*, fitted so that each
frame agrees with the frames 1, 2, 4 and 8 before it (:mod:`marigold.video.frame_align`), which removes the per-frame
scale/shift jumps (flicker) of independent predictions without letting the scale drift along the clip. Then, by
default (``temporal_strength`` 1 where OpenCV is installed; 0 = the alignment alone), the temporal fusion of :mod:`marigold.video.fusion` in frame order: each aligned
frame blended with the previous output carried by the camera's motion (its depth values too), where the two maps
agree, which removes the flicker that is not one scale and shift (exposure, noise, compression;
docs/lab/2026-12-07-video-fusion.md). A frame waits for the aligner as a grey copy at processing resolution; the fusion keeps one frame.

Optional refinement (``refine_steps > 0``; the "full" and "paper" presets run 10): the reference's ``refine``
(re-encode the co-aligned clip normalised to [-1, 1], noise it to mid-schedule with the same noise, denoise with
dilations shrinking to 1, averaging overlapping latents after every step), streamed as a wavefront
(:class:`~marigold.video.refine.Refiner`); the output is then the decoded refinement, as in the reference.

**Memory model** (the reference encodes all frames and keeps all snippets; ours streams). Frames are read one
at a time and dropped once encoded. With snippet length n, largest dilation g and ``window`` W frames:

* frame latents: the last ``(n-1)·g + 1`` frames' (a 768×576 latent is 0.1 MB in fp32);
* decoded snippet frames at processing resolution: those of the at most W frames not yet emitted, n·|D| per
  frame (|D| dilations) in the decoder's dtype (bf16 on most CPUs: 0.9 MB per map at 768×576), plus each one's
  10× downsampled copy for the solver (1/100 of that);
* co-alignment: one solve at a time over the rows of those frames; snippets that covered an already emitted
  frame take part with their (scale, shift) fixed, as anchors, so the new ones join the same affine frame;
* refinement (if on): per refinement step the latents of the frames its next snippets read (at most
  ``(n-1)·g_k + 1`` per step, g_k ≤ 6), and the frames' image latents until the last step has read them.

What grows with the number of frames is only the per-snippet (scale, shift) list: |D| snippets per frame,
two Python floats each (~64 bytes per snippet), kept in :attr:`VideoStream.snippet_scales` for inspection.
A clip no longer than the window is held whole and solved once, which is exactly the reference's global solve.
Several processes (``accelerate launch`` / ``torchrun``) split a clip's snippets and solve once over the whole
clip: :mod:`marigold.video.distributed`.

Deviations from the reference, each for streaming: the co-alignment's origin (the reference subtracts the
minimum of all snippets before fitting, ``DepthAligner.run``) and the refinement's [-1, 1] normalisation use
the first emitted window's values, and are the reference's exactly when the clip fits the window. The decoder's
output ``x`` is read as ``(x + 1) / 2``, unclipped like the reference. Dilations that the cap makes equal are
run once (the reference runs them twice on identical inputs: identical snippets).

This module holds the stream (:class:`VideoStream`, :func:`iter_video_depth`, :func:`predict_video`); the rest
is split by job, and every name stays importable from here: presets.py (presets, option checks), frames.py
(frames in and out, :class:`ClipNormalizer`), snippets.py (the reference's snippet rules, :class:`SnippetRunner`),
streaming.py (:class:`StreamingAligner`), refine.py (the streamed refinement).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import torch

from ..core import image as img
from ..core.model import MarigoldModel
from ..errors import InputError
from .frames import ClipNormalizer, VideoFrame, VideoPrediction, clip_normalizer, frame_source, iter_frames
from .presets import ALIGN_BORDER, ALIGN_FACTOR, PRESET_BASE_RESOLUTION, PRESETS, CancelFn, ProgressFn, VideoPreset, \
    check_int, seed_value, snippet_options
from .refine import Refiner
from .snippets import SnippetRunner, cap_dilation, plan_snippets, rolling_units, snippet_indices, snippet_kind
from .streaming import StreamingAligner, lowres

log = logging.getLogger(__name__)

__all__ = ["ALIGN_BORDER", "ALIGN_FACTOR", "CancelFn", "ClipNormalizer", "PRESETS", "PRESET_BASE_RESOLUTION",
           "ProgressFn", "Refiner", "SnippetRunner", "StreamingAligner", "VideoFrame", "VideoPrediction", "VideoPreset",
           "VideoStream", "cap_dilation", "check_int", "clip_normalizer", "frame_source", "iter_frames",
           "iter_video_depth", "lowres", "plan_snippets", "predict_video", "rolling_units", "seed_value",
           "snippet_indices", "snippet_kind", "snippet_options"]


# ---------------------------------------------------------------------------------------------------------------
# The stream


class VideoStream:
    """The frames of :func:`iter_video_depth`, with what the run found out on the way (``notes``, the clip's
    ``snippet_scales``/``snippet_shifts``, the largest number of decoded maps held at once)."""

    def __init__(self, model: MarigoldModel, frames, *, preset: str = "fast", dilations=None, snippet_length=None,
                 refine_steps=None, processing_resolution=None, match_input_resolution: bool = True, seed=0,
                 batch_size: int = 1, frame_count: int | None = None, progress: ProgressFn | None = None,
                 check_cancel: CancelFn | None = None, window: int | None = None,
                 num_inference_steps: int | None = None, coalign_options: dict | None = None,
                 temporal_strength: float | None = None) -> None:
        if not model.modality.video:
            raise InputError(f"{model.path.name} is a Marigold {model.task} checkpoint; video prediction needs a "
                             f"depth checkpoint (prs-eth/rollingdepth-v1-0, or a Marigold depth checkpoint such as "
                             f"prs-eth/marigold-depth-v1-1).")
        p, self.dilations, self.snippet_length, self.refine_steps = snippet_options(preset, dilations, snippet_length,
                                                                                   refine_steps)
        self.model = model
        self.preset = p
        own = model.default_processing_resolution
        own_wins = processing_resolution is None and bool(own) and own != PRESET_BASE_RESOLUTION
        res = (own if own_wins else p.processing_resolution) if processing_resolution is None else processing_resolution
        if isinstance(res, bool) or not isinstance(res, int) or res < 0 or res % img.LATENT_FACTOR:
            raise InputError(f"`processing_resolution` must be 0 (native) or a positive multiple of "
                             f"{img.LATENT_FACTOR}; got {res!r}.")
        self.processing_resolution = res
        self.match_input_resolution = bool(match_input_resolution)
        self.seed = seed_value(seed)
        self.batch_size = check_int("batch_size", batch_size)
        if window is not None:
            check_int("window", window)
        self.window = window
        self.num_inference_steps = (None if num_inference_steps is None
                                    else check_int("num_inference_steps", num_inference_steps))
        self.frames = frames
        _, count = frame_source(frames) if frame_count is None else (None, frame_count)
        self.frame_count = count
        self.progress, self.check_cancel = progress, check_cancel
        self.space = "disparity" if model.prediction_type == "disparity" else "depth"
        self.notes: list[str] = []
        self.coalign_options = dict(coalign_options or {})
        if model.video_model:  # RollingDepth: per-snippet (scale, shift), the reference's objective
            self.aligner = StreamingAligner(self.coalign_options)
        else:  # Marigold: per-frame (scale, shift) against the frames before (marigold.video.frame_align)
            from .frame_align import WINDOW, FrameAligner

            self.aligner = FrameAligner(lowres, window=self.window or WINDOW, solve_opts=self.coalign_options)
        self.max_held_maps = 0
        self.temporal_strength = self._temporal(temporal_strength)
        if not model.video_model and (dilations is not None or snippet_length is not None or refine_steps):
            self._note("dilations, snippet length and refinement are RollingDepth's; a Marigold checkpoint predicts "
                       "every frame and co-aligns it with the frames 1, 2, 4 and 8 before it.")
        if own_wins:
            self._note(f"this checkpoint's own processing resolution ({own} px) is used, not the {preset!r} preset's "
                       f"{p.processing_resolution} (tuned for 768-px checkpoints); pass processing_resolution to "
                       f"choose.")
        if p.dtype == "fp32" and model.dtype != torch.float32:
            self._note(f"the {preset!r} preset runs in fp32 in the reference; this model runs in {model.dtype} "
                       f"(load it with dtype='fp32' to match).")

    def _temporal(self, strength: float | None) -> float:
        """The temporal fusion's strength (:mod:`marigold.video.fusion`): Marigold checkpoints only; the default
        runs it where OpenCV is installed and says so where not."""
        from .fusion import MISSING_NOTE, VIDEO_MODE_STRENGTH, check_strength, fusion_default

        if strength is not None:
            strength = check_strength(strength)
        if self.model.video_model:
            if strength:
                self._note("temporal fusion applies to Marigold checkpoints' video mode; a RollingDepth checkpoint "
                           "runs without it.")
            return 0.0
        if strength is None:
            strength = fusion_default()
            if not strength and VIDEO_MODE_STRENGTH:
                self._note(MISSING_NOTE)
        return strength

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.info(text)

    @property
    def snippet_scales(self) -> list[float]:
        return self.aligner.scales

    @property
    def snippet_shifts(self) -> list[float]:
        return self.aligner.shifts

    @torch.inference_mode()  # on a generator, torch enters the mode only while the generator runs
    def __iter__(self) -> Iterator[VideoFrame]:
        yield from (self._rolling() if self.model.video_model else self._marigold())

    # ---- shared steps ----

    def _finish(self, index: int, value: torch.Tensor, size: tuple[int, int]) -> VideoFrame:
        v = value[None, None]  # [1,1,PH,PW]
        if self.match_input_resolution:
            v = img.resize(v, size, "bilinear", antialias=False)  # as predict.finish: no antialiasing
        return VideoFrame(index=index, value=v[0].float().cpu())  # [1,H,W]

    def _track(self) -> None:
        self.max_held_maps = max(self.max_held_maps, self.aligner.held_maps)

    # ---- RollingDepth ----

    def _rolling(self) -> Iterator[VideoFrame]:
        model, n_want = self.model, self.snippet_length
        source = iter_frames(self.frames)
        first = next(source)
        size = tuple(first.shape[-2:])
        runner = SnippetRunner(model, size, self.processing_resolution, self.seed, self.num_inference_steps)
        noise, text, sf = runner.noise, runner.text, runner.sf

        latents: dict[int, torch.Tensor] = {}
        rgb: dict[int, torch.Tensor] = {}  # the frames' latents as the refinement still needs them
        aligner = self.aligner
        refine = self.refine_steps > 0
        refiner = None

        def run(batch: list[list[int]]) -> None:
            if self.check_cancel is not None:
                self.check_cancel()
            for s, values in zip(batch, runner.run(latents, batch)):
                unit = aligner.new_unit(snippet_kind(s))
                for f, value in zip(s, values):
                    aligner.contribute(unit, f, value)
                    aligner.observe(unit, f, lowres(value))
            self._done += len(batch)
            self._track()
            if self.progress is not None:
                self.progress(self._done, self._total)

        # The dilation cap needs the clip length (reference: ``cap_max_dilation(seq_len, …)``). It only bites
        # below n·(g_max+1) frames, so that many frames are encoded (latents are small) before any snippet runs.
        read_ahead = n_want * (max(self.dilations) + 1)
        if refine:
            read_ahead = max(read_ahead, self.preset.refine_snippet_length * (self.preset.refine_start_dilation + 1))
        plan = None  # (n, dilations, span, window)
        pending: list[list[int]] = []  # snippets ready to run
        emitted = 0  # frames before this one are emitted
        self._done, self._total = 0, 0

        def make_plan(n_frames: int, known: bool) -> tuple[int, list[int], int, int]:
            n, dilations, notes = plan_snippets(n_frames, self.dilations, n_want, self.preset.cap_dilation)
            for note in notes:
                self._note(note)
            span = (n - 1) * max(dilations)
            window = self.window if self.window is not None else 2 * (span + 1)
            if window < span + 1:
                raise InputError(f"`window` must hold the widest snippet: at least {span + 1} frames for snippets "
                                 f"of {n} at dilation {max(dilations)}; got {window}.")
            count = n_frames if known else self.frame_count
            if count:
                self._total = sum(max(0, count - (n - 1) * g) for g in dilations)
            if refine:
                nonlocal refiner
                n_r = min(self.preset.refine_snippet_length, n_frames)
                start = self.preset.refine_start_dilation
                # the reference caps refine_start_dilation with the same rule; without the cap (paper preset) a
                # start dilation that leaves frames uncovered would fail its coverage assertion, so cap it then too
                if self.preset.cap_dilation or (n_r - 1) * start >= n_frames:
                    start = cap_dilation(n_frames, n_r, start)
                refiner = Refiner(self, n_r, start, noise, text, rgb, sf, lambda: runner.padding)
                if count:
                    self._total += sum(max(0, count - (n_r - 1) * g) for g in refiner.dilations)
            return n, dilations, span, window

        def advance(t: int) -> Iterator[VideoFrame]:
            """Frame t is encoded and the plan known: run its snippets; emit what has left the window."""
            nonlocal emitted
            n, dilations, span, window = plan
            for g in dilations:  # every snippet whose last frame is t (reference order: by dilation, then start)
                if t - (n - 1) * g >= 0:
                    pending.append(list(range(t - (n - 1) * g, t + 1, g)))
            while len(pending) >= self.batch_size:
                run(pending[:self.batch_size])
                del pending[:self.batch_size]
            need = min([s[0] for s in pending] + [t + 1 - span])
            for f in [f for f in latents if f < need]:  # no snippet still to come reads them
                del latents[f]
            if t - emitted + 1 > window:  # the oldest held frame leaves the window: emit the complete ones
                yield from emit(t - span + 1)

        def emit(upto: int) -> Iterator[VideoFrame]:
            nonlocal emitted
            if pending:
                run(pending)
                pending.clear()
            for f in range(emitted, upto):
                aligner.complete(f)
            out = aligner.flush(range(emitted, upto))
            emitted = upto
            if refiner is not None:
                for f, value in refiner.push(out):
                    yield self._finish(f, value, size)
            else:
                for f, value in out:
                    yield self._finish(f, value, size)

        t = -1
        for t, frame in enumerate(itertools.chain([first], source)):
            latents[t] = runner.encode(frame)  # [1,4,h,w]
            if refine:
                rgb[t] = latents[t]
            del frame
            if plan is None and t + 1 >= read_ahead:
                plan = make_plan(read_ahead, known=False)  # at least this long: no cap bites
                for u in range(t + 1):
                    yield from advance(u)
            elif plan is not None:
                yield from advance(t)
        if plan is None:  # a clip shorter than the read-ahead: now its length is known
            plan = make_plan(t + 1, known=True)
            for u in range(t + 1):
                yield from advance(u)
        yield from emit(t + 1)
        if refiner is not None:
            for f, value in refiner.finish(t + 1):
                yield self._finish(f, value, size)

    # ---- Marigold depth checkpoints ----

    def predict_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """Marigold's video mode: one frame ``[1,3,H,W]`` → its prediction ``[PH,PW]`` (depth 0..1), with the
        same seed for every frame: :func:`marigold.core.predict.iter_members` draws the same noise each time."""
        from ..core.predict import iter_members

        members = next(iter_members(self.model, frame, num_inference_steps=self.num_inference_steps,
                                    processing_resolution=self.processing_resolution, batch_size=1, seed=self.seed,
                                    check_cancel=self.check_cancel))
        return members.values[0, 0]  # [PH,PW]

    def _marigold(self) -> Iterator[VideoFrame]:
        # frames compared pixel by pixel with the frames 1, 2, 4 and 8 before them (marigold.video.frame_align). Warping
        # along OpenCV DIS optical flow did not pay (bench/video_flow.py, synthetic moving scene, 24 frames
        # 320×240, per-frame affine jumps): the L1 fit ignores the moved pixels, so both recover the clip exactly
        # without noise, and with noise 0.01 the error left is 1.38 % vs 1.38 % of the range at 3 px/frame,
        # 1.44 % vs 1.31 % at 8 px/frame, for 30-40 ms of flow per frame pair
        # then the temporal fusion (marigold.video.fusion) of each aligned frame with the previous output warped along
        # the optical flow, in frame order as the aligner emits them; until then a frame waits as a small grey
        # copy at processing resolution (at most the aligner's window of them)
        from .fusion import TemporalFusion, grey_frame

        fusion = TemporalFusion(self.temporal_strength) if self.temporal_strength > 0 else None
        pending: dict[int, torch.Tensor] = {}
        aligner = self.aligner
        total = self.frame_count or 0
        size = None
        t = -1

        def emit(items):
            for f, v in items:
                if fusion is not None:
                    v = fusion.push(pending.pop(f), v)
                yield self._finish(f, v, size)

        for t, frame in enumerate(iter_frames(self.frames)):
            size = tuple(frame.shape[-2:])
            pred = self.predict_frame(frame)  # [PH,PW]
            if fusion is not None:
                pending[t] = grey_frame(frame[0] if frame.ndim == 4 else frame, tuple(pred.shape))  # [1,PH,PW]
            out = aligner.add(t, pred)
            self._track()
            if self.progress is not None:
                self.progress(t + 1, total)
            yield from emit(out)
        if t == 0:
            self._note("1 frame: predicted as a single image.")
        yield from emit(aligner.finish())


def iter_video_depth(model: MarigoldModel, frames, *, preset: str = "fast", dilations: list[int] | None = None,
                     snippet_length: int | None = None, refine_steps: int | None = None,
                     processing_resolution: int | None = None, match_input_resolution: bool = True,
                     seed: int | torch.Generator | None = 0, batch_size: int = 1, frame_count: int | None = None,
                     progress: ProgressFn | None = None, check_cancel: CancelFn | None = None,
                     window: int | None = None, num_inference_steps: int | None = None,
                     coalign_options: dict | None = None, temporal_strength: float | None = None) -> VideoStream:
    """Stream video depth frame by frame (see the module docstring for the method and the memory model).

    Args:
        frames: an iterable of images (PIL, HWC arrays, ``[3,H,W]``/``[1,3,H,W]`` tensors in 0..1) or a
            ``[T,3,H,W]`` tensor; read one at a time.
        preset: "fast", "full" or "paper" (:data:`PRESETS`); the arguments below override it. Its processing
            resolution is for 768-px checkpoints: one whose ``default_processing_resolution`` is another runs at
            its own (with a note) unless ``processing_resolution`` is given.
        dilations, snippet_length: RollingDepth's snippet layout (ignored for Marigold checkpoints).
        batch_size: snippets per UNet call.
        frame_count: the number of frames when ``frames`` cannot say (progress totals, the dilation cap).
        window: frames held before the oldest are aligned and emitted (default: twice the widest snippet for
            RollingDepth, 16 for Marigold); a clip no longer than this is aligned in one global solve.
        progress: ``progress(done, total)`` after every snippet (RollingDepth) or frame (Marigold).
        check_cancel: called before every snippet (or frame); raise from it to stop.
        temporal_strength: Marigold checkpoints: the temporal fusion after the per-frame alignment
            (:mod:`marigold.video.fusion`, needs OpenCV), 0..1; 0 = the per-frame alignment alone (the output before the fusion existed); None = the default
            (:data:`marigold.video.fusion.VIDEO_MODE_STRENGTH`, 1: on where OpenCV is installed, else 0 with a
            note).

    Returns an iterable of :class:`VideoFrame` in frame order (a :class:`VideoStream`, whose ``notes`` say
    what was adapted, e.g. capped dilations or a one-frame clip).
    """
    return VideoStream(model, frames, preset=preset, dilations=dilations, snippet_length=snippet_length,
                       refine_steps=refine_steps, processing_resolution=processing_resolution,
                       match_input_resolution=match_input_resolution, seed=seed, batch_size=batch_size,
                       frame_count=frame_count, progress=progress, check_cancel=check_cancel, window=window,
                       num_inference_steps=num_inference_steps, coalign_options=coalign_options,
                       temporal_strength=temporal_strength)


def predict_video(model: MarigoldModel, frames, **kwargs) -> VideoPrediction:
    """All frames of :func:`iter_video_depth`, normalised once for the clip to 0..1 (the output holds the
    whole clip; stream with :func:`iter_video_depth` and a :class:`ClipNormalizer` for long videos)."""
    stream = iter_video_depth(model, frames, **kwargs)
    values, norm = [], ClipNormalizer()
    for i, frame in enumerate(stream):
        assert frame.index == i  # frames come in order
        norm.update(frame.value)
        values.append(frame.value)
    depth = torch.stack([norm(v) for v in values])  # [T,1,H,W]
    return VideoPrediction(depth=depth, space=stream.space, value_range=norm.value_range, notes=list(stream.notes))
