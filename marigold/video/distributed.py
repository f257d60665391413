"""One video, several processes: a RollingDepth clip's snippets, or a Marigold depth checkpoint's frames, split
across ``accelerate launch`` / ``torchrun`` processes, co-aligned once, written once.

Rank 0 counts the frames first (a video file is decoded once for this: a container's count can be wrong). Every
process then runs the same plan (:func:`marigold.video.snippets.plan_snippets`, :func:`marigold.video.snippets.rolling_units`:
the snippets in the order a single process creates its units) and takes a contiguous block of it, balanced by
snippet count; it encodes only the frames its snippets read (a block boundary re-encodes at most
``(n-1)·g_max`` frames) and runs its snippets with the single process's :class:`~marigold.video.snippets.SnippetRunner`.
Then:

1. each snippet's decoded maps go to a hidden folder in ``OUT`` (shared by the processes: one machine, or
   ``OUT`` on a shared filesystem), and its low-resolution rows (:func:`marigold.video.streaming.lowres`, 1/100 of a map)
   are gathered on rank 0 with the minimum of its maps (the co-alignment's origin);
2. rank 0 solves ONCE over the whole clip's rows with :meth:`StreamingAligner.solve` (the same
   :func:`marigold.core.coalign.solve` call, options and row order as a single process) and broadcasts every unit's
   (scale, shift);
3. each process averages the aligned maps of its own contiguous block of frames (reading other processes'
   snippets from disk, summed in unit order as :meth:`StreamingAligner.flush` sums them) and parks the frames
   as float32, as :func:`marigold.video.output.export_clip` does;
4. the clip's (lo, hi) is reduced over the processes (min / max: exact), each process writes its block's 16-bit
   PNG frames, rank 0 writes the mp4 (one writer) from the parked frames.

A clip that fits a single process's window gets exactly a single process's global solve, so 1 and N processes
write the same files (tests/test_cli_video_distributed.py). A longer clip is solved globally here, not window by
window as a single process streams it: what grows is the rows on rank 0 (|D|·n rows of ~(H/10)·(W/10) floats
per frame: ~18 KB a row at 768×576, ~0.1 GB for 1000 frames of the fast preset) and the parked snippet maps on
disk (|D|·n maps per frame at processing resolution, in the decoder's dtype, deleted afterwards).

Refinement (``refine_steps > 0``) reads neighbouring frames' latents at every step; it is not split (the CLI
runs such a clip whole on one process and says so). The snippets' gather / solve / broadcast / assemble steps:
:class:`UnitRow`, :func:`solve_units`, :func:`aligned_mean`; shared with the frames' split below:
:class:`Collective`, :func:`clip_range`, :class:`SharedFrameStore`, :func:`write_split_clip`.

Marigold depth checkpoints (video mode, frames as units): each process predicts its contiguous block of frames
(:meth:`marigold.video.pipeline.VideoStream.predict_frame`, the same seed for every frame) and parks them in ``OUT``; rank 0
gathers every frame's low-resolution row, solves once over the whole clip (:func:`marigold.video.frame_align.solve_frames`:
every frame against the frames 1, 2, 4 and 8 before it) and broadcasts the per-frame (scale, shift); each process
aligns its own frames. A clip no longer than the single process's window (16 frames) gets exactly its solve. The
temporal fusion (:mod:`marigold.video.fusion`) carries each frame into the next, so it is not split: here frames
are aligned only (a single stream with ``temporal_strength=0``); the CLI runs a clip whole when the fusion is on.

All communication is a few Python objects over a gloo process group on the CPU (started on first use from the
launcher's ``MASTER_ADDR``/``MASTER_PORT``), whatever device the model runs on.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.distributed import World
from ..errors import InputError, MarigoldError
from .io import DepthFrameStore, DepthFrameWriter, VideoWriter

# the processes wait for each other at the gather (the slowest share) and while rank 0 writes the mp4
TIMEOUT = timedelta(hours=2)
_GLOO = None  # the process group the collectives use, made once per process


class Collective:
    """The few collectives a split clip needs, on Python objects over gloo; with one process, no process group.

    Every collective also carries an error string: a :class:`MarigoldError` raised in one process (a frame
    that stops decoding half way) is raised in every process at the next collective, instead of leaving the
    others waiting.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        if world.size > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
                    raise MarigoldError("WORLD_SIZE > 1 but MASTER_ADDR / MASTER_PORT are not set: start several "
                                        "processes with `accelerate launch` or `torchrun`.")
                dist.init_process_group("gloo", rank=world.rank, world_size=world.size, timeout=TIMEOUT)
            global _GLOO
            if _GLOO is None:  # a host that started NCCL itself: our objects still travel on the CPU, over gloo
                _GLOO = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo",
                                                                                               timeout=TIMEOUT)
            self._dist, self._group = dist, _GLOO

    @property
    def rank(self) -> int:
        return self.world.rank

    @property
    def size(self) -> int:
        return self.world.size

    def all_gather(self, obj: Any, error: str | None = None) -> list[Any]:
        """Every process's ``obj``, in rank order; raises (everywhere) the first process's ``error``."""
        if self.size == 1:
            got = [(error, obj)]
        else:
            got = [None] * self.size
            self._dist.all_gather_object(got, (error, obj), group=self._group)
        _raise_first(got)
        return [o for _, o in got]

    def gather(self, obj: Any, error: str | None = None) -> list[Any] | None:
        """Every process's ``obj`` on rank 0 (None elsewhere). An error travels on with the next :meth:`broadcast`
        from rank 0 (pass ``error=`` there), so rank 0 must broadcast after every gather."""
        if self.size == 1:
            return [(error, obj)]
        got = [None] * self.size if self.rank == 0 else None
        self._dist.gather_object((error, obj), got, dst=0, group=self._group)
        return got

    def broadcast(self, obj: Any = None, error: str | None = None) -> Any:
        """Rank 0's ``obj`` (and ``error``, raised everywhere)."""
        if self.size == 1:
            got = [(error, obj)]
        else:
            got = [(error, obj) if self.rank == 0 else None]
            self._dist.broadcast_object_list(got, src=0, group=self._group)
        _raise_first(got)
        return got[0][1]

    def barrier(self, error: str | None = None) -> None:
        self.all_gather(None, error)


def _raise_first(got: list) -> None:
    for err, _ in got:
        if err is not None:
            raise InputError(err)


def _guard(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """``fn()``, with a MarigoldError turned into its message (to hand to the next collective)."""
    try:
        return fn(), None
    except MarigoldError as e:
        return None, str(e)


@dataclass
class UnitRow:
    """One low-resolution observation ``obs [K]`` of unit ``unit`` in comparison group ``group`` (a frame);
    ``seq`` is its place in a single process's order of :meth:`StreamingAligner.observe` calls, so rank 0 feeds
    the solver the rows in that order."""

    seq: tuple[int, ...]
    unit: int
    group: int
    obs: torch.Tensor
    mask: torch.Tensor | None = None


def solve_units(comm: Collective, kinds: dict[int, int], rows: Sequence[UnitRow], origin: float,
                solve_opts: dict | None = None) -> tuple[list[float], list[float]]:
    """Gather every process's units (``kinds``: unit → penalty group, e.g. a snippet's dilation), rows and
    minimum map value on rank 0; solve once there (:meth:`StreamingAligner.solve`, all units free, scale 1 /
    shift 0 to start, origin = the minimum over all processes); return every unit's (scales, shifts) in every
    process. The units of all processes must number 0..U-1."""
    from .streaming import StreamingAligner

    got = comm.gather((dict(kinds), list(rows), float(origin)))
    result, error = None, None
    if comm.rank == 0:
        def work():
            errs = [e for e, _ in got if e is not None]
            if errs:
                raise InputError(errs[0])
            all_kinds: dict[int, int] = {}
            all_rows: list[UnitRow] = []
            for _, (k, r, _) in got:
                all_kinds.update(k)
                all_rows.extend(r)
            if sorted(all_kinds) != list(range(len(all_kinds))):
                raise InputError(f"units must be numbered 0..U-1 across the processes; got {sorted(all_kinds)[:8]}…")
            aligner = StreamingAligner(solve_opts)
            for u in range(len(all_kinds)):
                aligner.new_unit(all_kinds[u])
            for r in sorted(all_rows, key=lambda r: r.seq):
                aligner.observe(r.unit, r.group, r.obs, r.mask)
            aligner.origin = min(o for _, (_, _, o) in got)
            aligner.solve()
            return aligner.scales, aligner.shifts
        result, error = _guard(work)
    scales, shifts = comm.broadcast(result, error)
    return list(scales), list(shifts)


def aligned_mean(parts: Iterable[tuple[int, torch.Tensor]], scales: Sequence[float], shifts: Sequence[float]
                 ) -> torch.Tensor:
    """A frame's output: the mean of its units' aligned maps ``(unit, value [PH,PW])``, summed in the given
    order exactly as :meth:`StreamingAligner.flush` sums them (give the units in unit order)."""
    acc, count = None, 0
    for u, value in parts:
        aligned = value.float() * scales[u] + shifts[u]  # [PH,PW]
        acc = aligned if acc is None else acc.add_(aligned)
        count += 1
    if acc is None:
        raise InputError("a frame without any unit: nothing to average.")
    return acc.div_(count)


def clip_range(comm: Collective, lo: float, hi: float, error: str | None = None) -> tuple[float, float]:
    """The clip's (min, max) over every process's (lo, hi): exact, for the one normalisation."""
    got = comm.all_gather((lo, hi), error)
    return min(a for a, _ in got), max(b for _, b in got)


class SharedFrameStore(DepthFrameStore):
    """A :class:`DepthFrameStore` whose folder rank 0 made and every process writes its frames into; ``lo``,
    ``hi`` and ``count`` are the clip's once :meth:`share_range` has run."""

    def __init__(self, folder: str | os.PathLike, count: int) -> None:
        self.folder = Path(folder)
        self.count = count
        self.lo, self.hi = math.inf, -math.inf

    def add(self, index: int, value: torch.Tensor | np.ndarray) -> None:
        count = self.count
        super().add(index, value)
        self.count = count  # the clip's, not the frames added here

    def share_range(self, comm: Collective, error: str | None = None) -> None:
        self.lo, self.hi = clip_range(comm, self.lo, self.hi, error)


def split_range(n: int, world: World) -> range:
    """This process's contiguous share of ``range(n)`` (sizes differ by at most one)."""
    return range(n * world.rank // world.size, n * (world.rank + 1) // world.size)


def write_split_clip(comm: Collective, store: SharedFrameStore, mine: Iterable[int], video_path: Path,
                     frames_dir: Path, fps: float | Fraction, space: str, cmap: str, progress: bool = True) -> None:
    """Pass two of :func:`marigold.video.output.export_clip` split: every process writes the 16-bit PNG frames
    of ``mine``, rank 0 the whole mp4; every frame is normalised with the clip's one range (``store``)."""
    from tqdm.auto import tqdm

    from .output import colorize_frames

    def work():
        mine_list = list(mine)
        writer = DepthFrameWriter(frames_dir)
        for i, d in store.normalized(mine_list):
            writer.write(i, d)
        if comm.rank == 0:
            with VideoWriter(video_path, fps) as video:
                for _, d in tqdm(store.normalized(), total=store.count, desc=f"{video_path.stem}: writing",
                                 unit="frame", disable=not progress):
                    video.write(colorize_frames(d[None], space, cmap)[0])  # [3,H,W]
    _, error = _guard(work)
    comm.barrier(error)


# ---------------------------------------------------------------------------------------------------------------
# RollingDepth: the snippets of one clip, split


def _count_frames(source) -> int:
    """The exact number of frames (a container's header may be wrong or missing): decoded once for a file."""
    from .io import FrameFolder

    if isinstance(source, FrameFolder):
        return source.frame_count
    return sum(1 for _ in source)


def run_split_clip(model, source, out_dir: str | os.PathLike, name: str, comm: Collective, *, preset: str = "fast",
                   dilations: list[int] | None = None, snippet_length: int | None = None,
                   processing_resolution: int | None = None, seed: int = 0, batch_size: int = 1,
                   cmap: str = "Spectral", keep_raw: bool = False, coalign_options: dict | None = None,
                   progress: bool = True):
    """One clip (a :class:`~marigold.video.io.VideoSource`) split across ``comm``'s processes: a RollingDepth
    checkpoint's snippets (:func:`_split_snippets`), or a Marigold depth checkpoint's frames in its video mode
    (:func:`_split_frames`); writes what :func:`marigold.video.output.export_clip` writes and returns its
    :class:`~marigold.video.output.ClipFiles` (the same in every process). Every process must call it."""
    from .pipeline import VideoStream
    from .output import ClipFiles, clip_paths

    stream = VideoStream(model, source, preset=preset, dilations=dilations, snippet_length=snippet_length,
                         refine_steps=0, processing_resolution=processing_resolution, seed=seed,
                         batch_size=batch_size, frame_count=source.frame_count, coalign_options=coalign_options)
    out_dir = Path(out_dir)
    video_path, frames_dir, raw_dir = clip_paths(out_dir, name, stream.space)

    def setup():
        n_frames = _count_frames(source)
        if n_frames == 0:
            raise InputError(f"{source.path}: the video has no frames.")
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in frames_dir.glob("[0-9][0-9][0-9][0-9][0-9][0-9].png") if frames_dir.is_dir() else ():
            old.unlink()  # a longer earlier run must not leave frames past this clip's end
        frames = tempfile.mkdtemp(prefix=".marigold-frames-", dir=out_dir)
        units = tempfile.mkdtemp(prefix=".marigold-units-", dir=out_dir)
        return n_frames, frames, units

    setup_result, error = _guard(setup) if comm.rank == 0 else (None, None)
    n_frames, frames_folder, units_folder = comm.broadcast(setup_result, error)
    store = SharedFrameStore(frames_folder, n_frames)
    units_dir = Path(units_folder)
    try:
        split = _split_snippets if model.video_model else _split_frames
        error = split(stream, source, comm, n_frames, units_dir, store, name, progress)
        store.share_range(comm, error)
        write_split_clip(comm, store, split_range(n_frames, comm.world), video_path, frames_dir, source.fps,
                         stream.space, cmap, progress)
        raw = None
        if comm.rank == 0 and keep_raw:
            raw = store.keep(raw_dir)
        raw = comm.broadcast(raw)
        return ClipFiles(video_path, frames_dir, raw, n_frames, (store.lo, store.hi), stream.space)
    finally:
        if comm.rank == 0:
            shutil.rmtree(units_dir, ignore_errors=True)
            store.cleanup()


def _split_snippets(stream, source, comm: Collective, n_frames: int, units_dir: Path, store: SharedFrameStore,
                    name: str, progress: bool) -> str | None:
    """RollingDepth: this process's block of snippets run, parked in ``units_dir`` and rowed; one solve on rank
    0; this process's block of frames averaged into ``store``. Returns the assembly's error (None if fine)."""
    from tqdm.auto import tqdm

    from .frames import iter_frames
    from .snippets import SnippetRunner, plan_snippets, rolling_units, snippet_kind
    from .streaming import lowres

    model = stream.model
    n, plan_dilations, notes = plan_snippets(n_frames, stream.dilations, stream.snippet_length,
                                             stream.preset.cap_dilation)
    for note in notes:
        stream._note(note)
    units = rolling_units(n_frames, n, plan_dilations)  # [U] snippets, unit order
    mine = list(split_range(len(units), comm.world))
    kinds = {u: snippet_kind(units[u]) for u in mine}
    rows: list[UnitRow] = []
    local_min = math.inf
    size = (source.size[1], source.size[0])  # (H, W)

    def compute():
        nonlocal local_min
        if not mine:
            return
        first, last = min(units[u][0] for u in mine), max(units[u][-1] for u in mine)
        span = (n - 1) * max(plan_dilations)
        by_last: dict[int, list[int]] = {}
        for u in mine:
            by_last.setdefault(units[u][-1], []).append(u)
        runner = SnippetRunner(model, size, stream.processing_resolution, stream.seed, stream.num_inference_steps)
        latents: dict[int, torch.Tensor] = {}
        pending: list[int] = []
        bar = tqdm(total=len(mine), desc=f"{name}: snippets [{comm.rank + 1}/{comm.size}]", unit="snippet",
                   disable=not progress)

        def run(batch: list[int]) -> None:
            nonlocal local_min
            for u, values in zip(batch, runner.run(latents, [units[u] for u in batch])):
                torch.save(torch.stack(values), units_dir / f"{u:07d}.pt")  # [n,PH,PW]
                for j, (f, value) in enumerate(zip(units[u], values)):
                    rows.append(UnitRow((u, j), u, f, lowres(value)))
                    local_min = min(local_min, float(value.min()))
            bar.update(len(batch))

        with torch.inference_mode():
            for t, frame in enumerate(iter_frames(source)):
                if t > last:
                    break
                if t < first:
                    continue
                latents[t] = runner.encode(frame)  # [1,4,h,w]
                pending.extend(by_last.get(t, []))
                while len(pending) >= stream.batch_size:
                    run(pending[:stream.batch_size])
                    del pending[:stream.batch_size]
                need = min([units[u][0] for u in pending] + [t + 1 - span])
                for f in [f for f in latents if f < need]:  # no snippet still to come reads them
                    del latents[f]
            if pending:
                run(pending)
        bar.close()
        if len(rows) != sum(len(units[u]) for u in mine):
            raise InputError(f"{source.path}: fewer frames than the {n_frames} counted; the file may be truncated.")

    _, error = _guard(compute)
    comm.barrier(error)  # an error anywhere stops every process before the solve
    scales, shifts = solve_units(comm, kinds, rows, local_min, stream.coalign_options)
    rows.clear()

    def assemble():
        contrib: dict[int, list[tuple[int, int]]] = {}  # frame → [(unit, position)], unit order
        own = split_range(n_frames, comm.world)
        for u, s in enumerate(units):
            for j, f in enumerate(s):
                if f in own:
                    contrib.setdefault(f, []).append((u, j))
        cache: dict[int, torch.Tensor] = {}
        for f in own:
            for u in [u for u in cache if units[u][-1] < f]:  # no later frame of this block reads it
                del cache[u]
            parts = []
            for u, j in contrib[f]:
                if u not in cache:
                    cache[u] = torch.load(units_dir / f"{u:07d}.pt")  # [n,PH,PW]
                parts.append((u, cache[u][j]))
            store.add(f, stream._finish(f, aligned_mean(parts, scales, shifts), size).value)

    return _guard(assemble)[1]


def _split_frames(stream, source, comm: Collective, n_frames: int, units_dir: Path, store: SharedFrameStore,
                  name: str, progress: bool) -> str | None:
    """Marigold's video mode: this process predicts its contiguous block of frames (parked in ``units_dir``),
    rank 0 gathers every frame's low-resolution row and solves once (:func:`marigold.video.frame_align.solve_frames`,
    what a single process's stream solves when the clip fits its window), every process applies the broadcast
    (scale, shift) to its own frames. Returns the assembly's error (None if fine)."""
    from tqdm.auto import tqdm

    from .frame_align import solve_frames
    from .frames import iter_frames
    from .streaming import lowres

    own = split_range(n_frames, comm.world)
    rows: dict[int, torch.Tensor] = {}
    size = (source.size[1], source.size[0])  # (H, W)

    def compute():
        bar = tqdm(total=len(own), desc=f"{name}: frames [{comm.rank + 1}/{comm.size}]", unit="frame",
                   disable=not progress)
        with torch.inference_mode():
            for t, frame in enumerate(iter_frames(source)):
                if t >= own.stop:
                    break
                if t < own.start:
                    continue
                value = stream.predict_frame(frame)  # [PH,PW]
                torch.save(value, units_dir / f"{t:07d}.pt")
                rows[t] = lowres(value)
                bar.update(1)
        bar.close()
        if len(rows) != len(own):
            raise InputError(f"{source.path}: fewer frames than the {n_frames} counted; the file may be truncated.")

    _, error = _guard(compute)
    comm.barrier(error)
    got = comm.gather(rows)
    result, error = None, None
    if comm.rank == 0:
        def work():
            everything: dict[int, torch.Tensor] = {}
            for _, part in got:
                everything.update(part)
            fit = solve_frames(everything, solve_opts=stream.coalign_options)
            if fit is None:  # one frame: nothing to compare
                return [1.0] * n_frames, [0.0] * n_frames
            return [float(v) for v in fit[0]], [float(v) for v in fit[1]]
        result, error = _guard(work)
    scales, shifts = comm.broadcast(result, error)
    rows.clear()

    def assemble():
        for f in own:
            value = torch.load(units_dir / f"{f:07d}.pt").float() * scales[f] + shifts[f]  # [PH,PW]
            store.add(f, stream._finish(f, value, size).value)

    return _guard(assemble)[1]
