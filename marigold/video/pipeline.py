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
scale/shift jumps (flicker) of independent predictions without letting the scale drift along the clip.

Optional refinement (``refine_steps > 0``; the "full" and "paper" presets run 10): the reference's ``refine``
(re-encode the co-aligned clip normalised to [-1, 1], noise it to mid-schedule with the same noise, denoise with
dilations shrinking to 1, averaging overlapping latents after every step), streamed as a wavefront
(:class:`_Refiner`); the output is then the decoded refinement, as in the reference.

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
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core import image as img
from ..core.checkpoint import MarigoldModel
from ..errors import InputError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]  # (done, total); total 0 while the frame count is unknown
CancelFn = Callable[[], None]


@dataclass(frozen=True)
class VideoPreset:
    """RollingDepth's inference presets (reference run_video.py, ``preset_args_dict`` and the shared defaults:
    snippet length 3, refinement snippets of 3 starting at dilation 6)."""

    processing_resolution: int
    dilations: tuple[int, ...]
    refine_steps: int
    cap_dilation: bool = True
    dtype: str = "fp16"  # what the reference runs the preset in; our model's dtype is chosen at load time
    snippet_length: int = 3
    refine_snippet_length: int = 3
    refine_start_dilation: int = 6


# What the presets' resolutions assume: the published Marigold and RollingDepth checkpoints work at 768 px. A
# checkpoint that declares another default (one fine-tuned at 128 px, say) runs at its own unless told otherwise.
PRESET_BASE_RESOLUTION = 768

PRESETS: dict[str, VideoPreset] = {
    "fast": VideoPreset(768, (1, 25), 0),
    "full": VideoPreset(1024, (1, 10, 25), 10),
    "paper": VideoPreset(768, (1, 10, 25), 10, cap_dilation=False, dtype="fp32"),
}

# The reference's co-alignment works on maps with a 2-pixel border cut off, every 10th pixel
# (depth_aligner.py, DepthAligner: ``border=2``, ``factor=10``).
ALIGN_BORDER = 2
ALIGN_FACTOR = 10


@dataclass
class VideoFrame:
    """One frame of video depth: ``value [1,H,W]`` float32 on the CPU, in one affine frame for the whole clip
    (comparable across frames) but not normalised; map it to 0..1 with a :class:`ClipNormalizer`."""

    index: int
    value: torch.Tensor


@dataclass
class VideoPrediction:
    """``depth [T,1,H,W]`` float32 in 0..1, normalised once for the clip. ``space``: "disparity" (RollingDepth:
    near = high) or "depth" (Marigold: near = 0). ``value_range``: the aligned values that map to 0 and 1."""

    depth: torch.Tensor
    space: str
    value_range: tuple[float, float]
    notes: list[str] = field(default_factory=list)


class ClipNormalizer:
    """Tracks the running (lo, hi) of a clip's aligned values and maps values to 0..1 with them.

    For one normalisation per clip, :meth:`update` with every frame first, then map. ``lo``/``hi`` may also be
    given (e.g. from a first pass) to map a stream as it comes.
    """

    def __init__(self, lo: float | None = None, hi: float | None = None) -> None:
        self.lo = math.inf if lo is None else float(lo)
        self.hi = -math.inf if hi is None else float(hi)

    def update(self, value: torch.Tensor) -> None:
        self.lo = min(self.lo, float(value.min()))
        self.hi = max(self.hi, float(value.max()))

    @property
    def value_range(self) -> tuple[float, float]:
        return self.lo, self.hi

    def __call__(self, value: torch.Tensor) -> torch.Tensor:
        if not math.isfinite(self.lo) or not math.isfinite(self.hi):
            raise ValueError("ClipNormalizer has seen no values; update() it with the clip's frames first.")
        span = self.hi - self.lo
        if span <= 0:
            return torch.zeros_like(value)
        return ((value - self.lo) / span).clamp_(0.0, 1.0)


def clip_normalizer(lo: float | None = None, hi: float | None = None) -> ClipNormalizer:
    return ClipNormalizer(lo, hi)


# ---------------------------------------------------------------------------------------------------------------
# The reference's snippet rules


def cap_dilation(n_frames: int, snippet_length: int, dilation: int) -> int:
    """The reference's cap for short clips (rollingdepth_pipeline.py, ``cap_max_dilation``): at most
    ``⌊N/n⌋ - 1``. The reference then fails for clips shorter than 2n frames (a cap below 1 trips the
    ``gap >= 0`` assertion in ``get_snippet_indice``); we floor it at 1 there."""
    max_allowed = int(n_frames / snippet_length) - 1
    return max(1, min(dilation, max_allowed))


def snippet_indices(n_frames: int, snippet_length: int, dilation: int) -> list[list[int]]:
    """Frames of each snippet for one dilation, stride 1: ``[i, i+g, …, i+(n-1)g]`` for every start i that fits
    (rollingdepth_pipeline.py, ``get_snippet_indice`` at ``i_step=0``, ``stride=1``; the same triplets as
    depth_aligner.py's ``create_triplet_indices``)."""
    span = (snippet_length - 1) * dilation
    return [list(range(i, i + span + 1, dilation)) for i in range(0, n_frames - span)]


def plan_snippets(n_frames: int, dilations: Iterable[int], snippet_length: int, cap: bool = True
                  ) -> tuple[int, list[int], list[str]]:
    """(snippet length, dilations to run, notes) for a clip of ``n_frames``, following the reference:
    dilations capped (``cap``), duplicates run once; a clip shorter than a snippet becomes one snippet of all
    its frames; without the cap, dilations with no snippet that fits are left out (the reference would fail)."""
    notes: list[str] = []
    n = snippet_length
    if n_frames < n:
        notes.append(f"{n_frames} frame{'s' if n_frames > 1 else ''}: shorter than a snippet of {n}; "
                     + ("predicted as a single image." if n_frames == 1 else f"one snippet of {n_frames} frames."))
        n = n_frames
    out: list[int] = []
    for g in dilations:
        d = cap_dilation(n_frames, n, g) if cap else g
        if d != g:
            notes.append(f"dilation {g} is too large for {n_frames} frames; capped to {d} (reference rule: at most "
                         f"⌊N/n⌋-1 = {int(n_frames / n) - 1}, at least 1).")
        if not cap and (n - 1) * d >= n_frames:
            notes.append(f"dilation {g} leaves no snippet of {n} frames in {n_frames} frames; left out.")
            continue
        if d not in out:
            out.append(d)
    return n, sorted(out), notes


def snippet_kind(snippet: list[int]) -> int:
    """A snippet's dilation (1 for a one-frame snippet): the group its (scale, shift) penalty is averaged in."""
    return snippet[1] - snippet[0] if len(snippet) > 1 else 1


def rolling_units(n_frames: int, snippet_length: int, dilations: Iterable[int]) -> list[list[int]]:
    """Every snippet of a clip in the order the stream creates its units: by last frame, then by dilation
    (the order in which :meth:`VideoStream._rolling` runs them; unit ``u`` is ``rolling_units(...)[u]``)."""
    span = {g: (snippet_length - 1) * g for g in dilations}
    return [list(range(t - span[g], t + 1, g)) for t in range(n_frames) for g in sorted(span) if t - span[g] >= 0]


class SnippetRunner:
    """RollingDepth's per-snippet work, shared by :class:`VideoStream` and by several processes
    (:mod:`marigold.video.distributed`): frame → latent, and a batch of snippets → each frame's decoded map.

    ONE noise tensor for every frame (reference: ``init_noise`` repeated over the sequence), from a CPU generator
    in the model's dtype as in marigold.predict, so one seed gives one video on any device and in any process.
    """

    def __init__(self, model: MarigoldModel, size: tuple[int, int], processing_resolution: int, seed: int,
                 num_inference_steps: int | None = None) -> None:
        self.model = model
        dev, dt = model.device, model.dtype
        self.sf = model.vae_scaling_factor
        self.processing_resolution = processing_resolution
        ph, pw = img.padded_size(img.processing_size(size, processing_resolution))
        h, w = ph // img.LATENT_FACTOR, pw // img.LATENT_FACTOR
        self.noise = torch.randn((1, 4, h, w), generator=torch.Generator("cpu").manual_seed(seed),
                                 dtype=dt).to(dev)  # [1,4,h,w]
        self.text = model.empty_text_embedding.to(device=dev, dtype=dt)  # [1,2,D]
        self.scheduler = model.make_scheduler()
        self.steps = num_inference_steps or model.default_denoising_steps or 1
        self.padding = (0, 0)

    def encode(self, frame: torch.Tensor) -> torch.Tensor:
        """``[1,3,H,W]`` 0..1 → its latent ``[1,4,h,w]`` (scaled), the image condition of every snippet."""
        model = self.model
        x, self.padding = img.preprocess(frame, self.processing_resolution, "bilinear")  # [1,3,PPH,PPW] -1..1
        return model.vae.encode(x.to(device=model.device, dtype=model.dtype)).latent_dist.mode() * self.sf

    def run(self, latents: dict[int, torch.Tensor], batch: list[list[int]]) -> list[list[torch.Tensor]]:
        """Snippets of equal length (frame indices into ``latents``) → per snippet, per frame, the decoded map
        ``[PH,PW]`` on the CPU in the decoder's dtype: ``(x + 1) / 2`` of the channel mean, unclipped."""
        from ..core.snippet import snippet_frames

        model, dev, sf = self.model, self.model.device, self.sf
        cond = torch.cat([latents[f] for s in batch for f in s])  # [S·n,4,h,w]
        x = self.noise.expand(cond.shape[0], -1, -1, -1)  # [S·n,4,h,w]
        self.scheduler.set_timesteps(self.steps, device=dev)  # reset per call, as the reference does per snippet
        with snippet_frames(model.unet, len(batch[0])):
            for ts in self.scheduler.timesteps:
                out = model.unet(torch.cat([cond, x], dim=1), ts, encoder_hidden_states=self.text.expand(
                    cond.shape[0], -1, -1), return_dict=False)[0]  # [S·n,4,h,w]
                x = self.scheduler.step(out, ts, x).prev_sample  # [S·n,4,h,w]
        maps, k = [], 0
        for s in batch:
            values = []
            for _ in s:
                dec = model.vae.decode(x[k:k + 1] / sf, return_dict=False)[0]  # [1,3,PPH,PPW]
                # the reference's decode_depth: channel mean, unclipped; read as (x+1)/2 (module docstring)
                values.append(img.unpad((dec.mean(dim=1)[0] + 1.0) / 2.0, self.padding).cpu())  # [PH,PW]
                k += 1
            maps.append(values)
        return maps


# ---------------------------------------------------------------------------------------------------------------
# Streaming co-alignment


def _lowres(value: torch.Tensor) -> torch.Tensor:
    """``[PH,PW]`` map → the solver's observation ``[K]`` float32 (border cut, every 10th pixel)."""
    v = value
    b = ALIGN_BORDER
    if v.shape[0] > 2 * b + 1 and v.shape[1] > 2 * b + 1:
        v = v[b:-b, b:-b]
    return v[::ALIGN_FACTOR, ::ALIGN_FACTOR].float().reshape(-1)  # [K]


class StreamingAligner:
    """RollingDepth's co-alignment, streamed: units (snippets) contribute maps to frames and observations to
    comparison groups; :meth:`flush` fits one (scale, shift) per unit over everything still held, with units
    already used for emitted frames fixed, emits the frames asked for, and forgets what is no longer needed.

    Rows are compared by :func:`marigold.core.coalign.solve`; a group stays held until it is complete (no unit will
    add to it) and all its units are fixed.
    """

    def __init__(self, solve_opts: dict | None = None) -> None:
        self.solve_opts = dict(solve_opts or {})
        self.scales: list[float] = []  # per unit, for the whole clip: the state that grows
        self.shifts: list[float] = []
        self._fixed: list[bool] = []
        self._contrib: dict[int, list[tuple[int, torch.Tensor]]] = {}  # frame → [(unit, map [PH,PW])]
        self._rows: dict[int, list[tuple[int, torch.Tensor, torch.Tensor | None]]] = {}  # group → [(unit, obs, mask)]
        self._complete: set[int] = set()
        self._kind: list[int] = []
        self.origin: float | None = None
        self.solves = 0

    def new_unit(self, kind: int = 0) -> int:
        """A new unit; ``kind`` (the snippet's dilation) groups units for the penalty weights."""
        self._kind.append(kind)
        self.scales.append(1.0)
        self.shifts.append(0.0)
        self._fixed.append(False)
        return len(self.scales) - 1

    def contribute(self, unit: int, frame: int, value: torch.Tensor) -> None:
        """``value [PH,PW]``: the unit's map of ``frame``, averaged into the frame's output once aligned."""
        self._contrib.setdefault(frame, []).append((unit, value))

    def observe(self, unit: int, group: int, obs: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """``obs [K]``: the unit's low-resolution map in comparison group ``group`` (pixel by pixel)."""
        self._rows.setdefault(group, []).append((unit, obs, mask))

    def complete(self, group: int) -> None:
        """No more rows will join ``group``."""
        self._complete.add(group)

    @property
    def held_maps(self) -> int:
        return sum(len(v) for v in self._contrib.values())

    def solve(self) -> None:
        """Fit (scale, shift) of the units not yet fixed over every row held (what :meth:`flush` does first);
        several processes call it once, on rank 0, over the whole clip's rows (:mod:`marigold.video.distributed`)."""
        self._solve()

    def _solve(self) -> None:
        from ..core import coalign

        groups = sorted(self._rows)
        units = sorted({u for g in groups for u, _, _ in self._rows[g]})
        free = [u for u in units if not self._fixed[u]]
        if not free:
            return
        shared = [g for g in groups if len({u for u, _, _ in self._rows[g]}) > 1]
        if not shared:  # nothing to compare (one frame, one snippet): the units keep scale 1, shift 0
            return
        local = {u: k for k, u in enumerate(units)}
        maps, unit, group, masks = [], [], [], []
        for gi, g in enumerate(groups):
            for u, obs, mask in self._rows[g]:
                maps.append(obs)
                unit.append(local[u])
                group.append(gi)
                masks.append(mask)
        mask = None if all(m is None for m in masks) else torch.stack(
            [torch.ones_like(o, dtype=torch.bool) if m is None else m for o, m in zip(maps, masks)])  # [M,K]
        if self.origin is None:
            # the reference subtracts the minimum of all (full-resolution) snippets before fitting
            # (depth_aligner.py, DepthAligner.run: ``mn``); streaming keeps the first solve's minimum for the
            # rest of the clip, so every later window fits the same objective (a short clip: exactly ``mn``)
            self.origin = min(float(v.min()) for parts in self._contrib.values() for _, v in parts)
        # the reference's penalties are a mean over each dilation's snippets, summed over dilations
        # (depth_aligner.py, optimize: ``sum(... .mean() for s, t in zip(scales, translations))``)
        kinds = [self._kind[u] for u in units]
        weight = torch.tensor([1.0 / kinds.count(k) for k in kinds], dtype=torch.float64)  # [U]
        fixed = torch.tensor([self._fixed[u] for u in units])  # [U]
        init = (torch.tensor([self.scales[u] for u in units], dtype=torch.float32),  # [U]
                torch.tensor([self.shifts[u] for u in units], dtype=torch.float32))
        opts = {"origin": self.origin, "penalty_weight": weight, **self.solve_opts}
        scale, shift = coalign.solve(torch.stack(maps), torch.tensor(unit), torch.tensor(group), len(units),
                                     mask=mask, fixed=fixed, init=init, **opts)  # [U], [U]
        self.solves += 1
        for u in free:
            self.scales[u], self.shifts[u] = float(scale[local[u]]), float(shift[local[u]])

    def flush(self, frames: Iterable[int]) -> list[tuple[int, torch.Tensor]]:
        """Solve, then return ``(frame, aligned [PH,PW] float32)`` for ``frames`` (each the mean of its units'
        aligned maps), fix the units used, and drop what is no longer needed."""
        frames = list(frames)
        if not frames:
            return []
        self._solve()
        out = []
        for f in frames:
            parts = self._contrib.pop(f)
            acc = None
            for u, value in parts:
                aligned = value.float() * self.scales[u] + self.shifts[u]  # [PH,PW]
                acc = aligned if acc is None else acc.add_(aligned)
                self._fixed[u] = True
            out.append((f, acc.div_(len(parts))))
        for g in [g for g in self._rows if g in self._complete and all(self._fixed[u] for u, _, _ in self._rows[g])]:
            del self._rows[g]
            self._complete.discard(g)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Inputs


def _frame_source(frames) -> tuple[Iterator[torch.Tensor], int | None]:
    """Any frames input → (iterator of ``[1,3,H,W]`` 0..1 tensors, frame count or None)."""
    if isinstance(frames, (str, bytes)) or hasattr(frames, "__fspath__"):
        raise InputError("`frames` is a path; pass frames (images, arrays, tensors). Read a video file or a folder "
                         "of frames with marigold.video.io first.")
    if isinstance(frames, torch.Tensor):
        if frames.ndim == 4:
            return (frames[i:i + 1] for i in range(frames.shape[0])), frames.shape[0]
        if frames.ndim in (2, 3):
            return iter([frames]), 1
        raise InputError(f"`frames` tensor must be [T,3,H,W] (or one frame [3,H,W]); got {tuple(frames.shape)}.")
    if isinstance(frames, np.ndarray):
        if frames.ndim == 4:
            return (frames[i] for i in range(frames.shape[0])), frames.shape[0]
        return iter([frames]), 1
    from PIL import Image

    if isinstance(frames, Image.Image):
        return iter([frames]), 1
    try:
        it = iter(frames)
    except TypeError:
        raise InputError(f"`frames` must be an iterable of images or a [T,3,H,W] tensor; got "
                         f"{type(frames).__name__}.") from None
    count = len(frames) if hasattr(frames, "__len__") else None
    return it, count


def _frames(frames) -> Iterator[torch.Tensor]:
    """Checked ``[1,3,H,W]`` float32 frames, all of one size."""
    it, _ = _frame_source(frames)
    size = None
    for i, frame in enumerate(it):
        try:
            t = img.to_tensor(frame)
        except InputError as e:
            raise InputError(f"Frame {i}: {e}") from None
        if t.shape[0] != 1:
            raise InputError(f"Frame {i} holds {t.shape[0]} images; give one image per frame.")
        if size is None:
            size = tuple(t.shape[-2:])
        elif tuple(t.shape[-2:]) != size:
            raise InputError(f"Frame {i} is {t.shape[-1]}×{t.shape[-2]}, but frame 0 is {size[1]}×{size[0]}; all "
                             f"frames of a video must have one size.")
        yield t
    if size is None:
        raise InputError("`frames` is empty: a video needs at least one frame.")


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"`{name}` must be an integer ≥ {low}; got {value!r}.")
    return value


def snippet_options(preset: str = "fast", dilations=None, snippet_length=None,
                    refine_steps=None) -> tuple[VideoPreset, list[int], int, int]:
    """The preset and its snippet settings, each None taking the preset's, checked (one line naming the bad one):
    ``(preset, dilations, snippet_length, refine_steps)``. The CLI runs it before any model is loaded."""
    if preset not in PRESETS:
        raise InputError(f"`preset` must be one of {', '.join(PRESETS)}; got {preset!r}.")
    p = PRESETS[preset]
    gaps = list(p.dilations if dilations is None else dilations)
    if not gaps or any(isinstance(g, bool) or not isinstance(g, int) or g < 1 for g in gaps):
        raise InputError(f"`dilations` must be positive integers; got {dilations!r}.")
    if 1 not in gaps:  # rollingdepth_pipeline.py, forward: ``assert 1 in dilations``
        raise InputError(f"`dilations` must include 1 (every frame with its neighbours); got {gaps}.")
    length = _check_int("snippet_length", p.snippet_length if snippet_length is None else snippet_length)
    refine = _check_int("refine_steps", p.refine_steps if refine_steps is None else refine_steps, 0)
    return p, gaps, length, refine


def _seed(seed) -> int:
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (1,), generator=seed).item())
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"`seed` must be an integer; got {seed!r}.")
    return seed


# ---------------------------------------------------------------------------------------------------------------
# The stream


class VideoStream:
    """The frames of :func:`iter_video_depth`, with what the run found out on the way (``notes``, the clip's
    ``snippet_scales``/``snippet_shifts``, the largest number of decoded maps held at once)."""

    def __init__(self, model: MarigoldModel, frames, *, preset: str = "fast", dilations=None, snippet_length=None,
                 refine_steps=None, processing_resolution=None, match_input_resolution: bool = True, seed=0,
                 batch_size: int = 1, frame_count: int | None = None, progress: ProgressFn | None = None,
                 check_cancel: CancelFn | None = None, window: int | None = None,
                 num_inference_steps: int | None = None, coalign_options: dict | None = None) -> None:
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
        self.seed = _seed(seed)
        self.batch_size = _check_int("batch_size", batch_size)
        if window is not None:
            _check_int("window", window)
        self.window = window
        self.num_inference_steps = (None if num_inference_steps is None
                                    else _check_int("num_inference_steps", num_inference_steps))
        self.frames = frames
        _, count = _frame_source(frames) if frame_count is None else (None, frame_count)
        self.frame_count = count
        self.progress, self.check_cancel = progress, check_cancel
        self.space = "disparity" if model.prediction_type == "disparity" else "depth"
        self.notes: list[str] = []
        self.coalign_options = dict(coalign_options or {})
        if model.video_model:  # RollingDepth: per-snippet (scale, shift), the reference's objective
            self.aligner = StreamingAligner(self.coalign_options)
        else:  # Marigold: per-frame (scale, shift) against the frames before (marigold.video.frame_align)
            from .frame_align import WINDOW, FrameAligner

            self.aligner = FrameAligner(_lowres, window=self.window or WINDOW, solve_opts=self.coalign_options)
        self.max_held_maps = 0
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
        source = _frames(self.frames)
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
                    aligner.observe(unit, f, _lowres(value))
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
                refiner = _Refiner(self, n_r, start, noise, text, rgb, sf, lambda: runner.padding)
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
        aligner = self.aligner
        total = self.frame_count or 0
        size = None
        t = -1
        for t, frame in enumerate(_frames(self.frames)):
            size = tuple(frame.shape[-2:])
            out = aligner.add(t, self.predict_frame(frame))
            self._track()
            if self.progress is not None:
                self.progress(t + 1, total)
            for f, v in out:
                yield self._finish(f, v, size)
        if t == 0:
            self._note("1 frame: predicted as a single image.")
        for f, v in aligner.finish():
            yield self._finish(f, v, size)


class _Refiner:
    """RollingDepth's refinement (rollingdepth_pipeline.py, ``refine``), streamed as a wavefront.

    The reference normalises the co-aligned clip to [-1, 1], encodes it, noises it to mid-schedule with the
    shared noise (``skip_t_ratio=0.5``: ``int(K/0.5)`` scheduler steps, the second half run), then for each step k
    runs every snippet of dilation ``int((1 - k/K)·(start-1)) + 1`` on the previous step's latents and averages
    the frames' new latents over the snippets covering them; finally decodes (channel mean, not renormalised).
    Step k of frame f needs step k-1 of frames up to f + (n-1)·g_k only, so each step runs as soon as its
    inputs exist, and only those latents are held. The [-1, 1] normalisation takes the range of the first
    frames emitted by the co-alignment (the whole clip when it fits the window, as in the reference).
    """

    def __init__(self, stream: "VideoStream", n: int, start: int, noise, text, rgb, sf, padding) -> None:
        self.s, self.n, self.noise, self.text, self.rgb, self.sf, self.padding = stream, n, noise, text, rgb, sf, padding
        model = stream.model
        self.model = model
        k_steps = stream.refine_steps
        self.scheduler = model.make_scheduler()
        total = int(k_steps / 0.5)
        if total > int(self.scheduler.config.get("num_train_timesteps", 1000)):
            raise InputError(f"`refine_steps` {k_steps} is too many for this scheduler.")
        self.scheduler.set_timesteps(total, device=model.device)
        self.timesteps = self.scheduler.timesteps[int(total * 0.5):]  # [K]
        self.K = len(self.timesteps)
        gap_start = start - 1
        self.dilations = [int((1 - k / self.K) * gap_start) + 1 for k in range(self.K)]  # get_snippet_indice
        self.lat = [dict() for _ in range(self.K + 1)]  # step → frame → latent [1,4,h,w]
        self.acc: list[dict] = [dict() for _ in range(self.K + 1)]  # step → frame → [sum, count]
        self.final = [0] * (self.K + 1)  # frames below this are final at that step
        self.last = [-1] * self.K  # last frame whose snippets ran at that step
        self.lo = self.hi = None

    def push(self, frames: list[tuple[int, torch.Tensor]]) -> Iterator[tuple[int, torch.Tensor]]:
        if not frames:
            return
        model, dev, dt = self.model, self.model.device, self.model.dtype
        if self.lo is None:
            self.lo = min(float(v.min()) for _, v in frames)
            self.hi = max(float(v.max()) for _, v in frames)
        span = max(self.hi - self.lo, 1e-12)
        for f, value in frames:
            x = ((value - self.lo) / span * 2.0 - 1.0)[None, None].expand(1, 3, -1, -1)  # [1,3,PH,PW]
            ph, pw = self.padding()
            if ph or pw:
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")  # [1,3,PPH,PPW]
            z = model.vae.encode(x.to(device=dev, dtype=dt)).latent_dist.mode() * self.sf  # [1,4,h,w]
            self.lat[0][f] = self.scheduler.add_noise(z, self.noise, self.timesteps[:1])  # [1,4,h,w]
            yield from self._arrived(0, f)

    def _arrived(self, k: int, m: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Frame m's latent at step k exists: run the step-k snippet ending at m, pass on what is final."""
        model = self.model
        if k == self.K:
            dec = model.vae.decode(self.lat[k].pop(m) / self.sf, return_dict=False)[0]  # [1,3,PPH,PPW]
            yield m, img.unpad(dec.mean(dim=1)[0], self.padding()).float().cpu()  # [PH,PW]
            return
        g, n = self.dilations[k], self.n
        first = m - (n - 1) * g
        if first >= 0:
            idx = list(range(first, m + 1, g))
            if self.s.check_cancel is not None:
                self.s.check_cancel()
            from ..core.snippet import snippet_frames

            cond = torch.cat([self.rgb[f] for f in idx])  # [n,4,h,w]
            x = torch.cat([self.lat[k][f] for f in idx])  # [n,4,h,w]
            t = self.timesteps[k]
            with snippet_frames(model.unet, n):
                out = model.unet(torch.cat([cond, x], dim=1), t, encoder_hidden_states=self.text.expand(n, -1, -1),
                                 return_dict=False)[0]  # [n,4,h,w]
            new = self.scheduler.step(out, t, x).prev_sample  # [n,4,h,w]
            for j, f in enumerate(idx):
                a = self.acc[k + 1].setdefault(f, [0.0, 0])
                a[0] = new[j:j + 1] + a[0]
                a[1] += 1
            self.s._done += 1
            if self.s.progress is not None:
                self.s.progress(self.s._done, self.s._total)
        self.last[k] = m
        yield from self._finalize(k, first + 1)

    def _finalize(self, k: int, upto: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Frames below ``upto`` have all their step-k snippets run: their step k+1 latents are final."""
        for f in range(self.final[k + 1], upto):
            total, count = self.acc[k + 1].pop(f)
            assert count > 0  # every frame is covered (the reference asserts the same)
            self.lat[k + 1][f] = total / count
            self.final[k + 1] = f + 1
            self.lat[k].pop(f, None)
            yield from self._arrived(k + 1, f)
        low = min(self.last[j] + 1 - (self.n - 1) * self.dilations[j] for j in range(self.K))
        for f in [f for f in self.rgb if f < low]:
            del self.rgb[f]

    def finish(self, n_frames: int) -> Iterator[tuple[int, torch.Tensor]]:
        for k in range(self.K):
            yield from self._finalize(k, n_frames)


def iter_video_depth(model: MarigoldModel, frames, *, preset: str = "fast", dilations: list[int] | None = None,
                     snippet_length: int | None = None, refine_steps: int | None = None,
                     processing_resolution: int | None = None, match_input_resolution: bool = True,
                     seed: int | torch.Generator | None = 0, batch_size: int = 1, frame_count: int | None = None,
                     progress: ProgressFn | None = None, check_cancel: CancelFn | None = None,
                     window: int | None = None, num_inference_steps: int | None = None,
                     coalign_options: dict | None = None) -> VideoStream:
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

    Returns an iterable of :class:`VideoFrame` in frame order (a :class:`VideoStream`, whose ``notes`` say
    what was adapted, e.g. capped dilations or a one-frame clip).
    """
    return VideoStream(model, frames, preset=preset, dilations=dilations, snippet_length=snippet_length,
                       refine_steps=refine_steps, processing_resolution=processing_resolution,
                       match_input_resolution=match_input_resolution, seed=seed, batch_size=batch_size,
                       frame_count=frame_count, progress=progress, check_cancel=check_cancel, window=window,
                       num_inference_steps=num_inference_steps, coalign_options=coalign_options)


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
