"""Marigold's video mode: one scale and shift per frame, so that a clip of independent per-frame predictions
lies in one affine frame, streamed in windows.

A Marigold depth checkpoint predicts each frame in its own 0..1 range; between frames that range jumps (the
flicker). Each frame ``t`` is compared pixel by pixel with the frames ``t - g`` for ``g`` in :data:`OFFSETS`
(one comparison group per pair, on the co-alignment's low-resolution rows) and :func:`marigold.core.coalign.solve`
fits the scales and shifts with only its L1 term in the maps' own space (``depth_weight=0``) and the gauge held
by hard constraints (mean scale 1, mean shift 0: ``scale_penalty=0``, ``shift_penalty=0``).

Why not RollingDepth's objective: its reciprocal term (L1 in ``1/a``) is made for inverse-depth snippets; on
Marigold's depth (near = 0) it is dominated by the nearest pixels and let the fitted scales collapse (1e-6 on the
synthetic oracle below). Why pairs reaching 8 frames back, not only consecutive frames: each pair's affine fit
has an error, and a chain of consecutive pairs random-walks in scale; the longer pairs tie the chain down.
Measured on an oracle (exact depth of synthetic videos, each frame normalised to 0..1 after a random per-frame
power ``x ** exp(γ·N(0,1))``; ``python -m train.video_benchmark --marigold-video --oracle γ``): see train/README.md.

Streaming: frames are solved ``window`` at a time, together with the last ``max(OFFSETS)`` frames already
emitted. The solve is free (hard gauge, no fixed units: fixing the emitted frames instead lets the free ones
lower the L1 term by shrinking, a bias that compounds window after window), then ONE affine map, fitted by least
squares on the emitted frames' rows, carries the window's answer into the emitted frames' values. A clip no
longer than the window is one global solve. Held: the full maps of the at most ``window`` frames not yet
emitted, and the rows of ``max(OFFSETS)`` more; what grows is two floats per frame (:attr:`scales`,
:attr:`shifts`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

OFFSETS: tuple[int, ...] = (1, 2, 4, 8)
WINDOW = 16

# the solver's options for frame pairs (see the module docstring)
SOLVE_OPTIONS = {"depth_weight": 0.0, "scale_penalty": 0.0, "shift_penalty": 0.0, "origin": 0.0}


class FrameAligner:
    """Add frames in order with :meth:`add`; it returns ``(frame, aligned [PH,PW] float32)`` for the frames that
    left the window; :meth:`finish` returns the rest. ``lowres`` maps a ``[PH,PW]`` map to its row ``[K]``."""

    def __init__(self, lowres, offsets: Iterable[int] = OFFSETS, window: int = WINDOW,
                 solve_opts: dict | None = None) -> None:
        self.lowres = lowres
        self.offsets = tuple(sorted(set(int(g) for g in offsets)))
        self.window = max(1, int(window))
        self.keep = self.window // 2  # frames held back after a solve, so that later frames still pull on them
        self.solve_opts = dict(solve_opts or {})  # over SOLVE_OPTIONS, in solve_frames
        self.scales: list[float] = []  # per frame, for the whole clip: the state that grows
        self.shifts: list[float] = []
        self._maps: dict[int, torch.Tensor] = {}  # frames not yet emitted → [PH,PW]
        self._rows: dict[int, torch.Tensor] = {}  # those and the last max(offsets) emitted → [K]
        self.emitted = 0
        self.solves = 0

    @property
    def held_maps(self) -> int:
        return len(self._maps)

    def add(self, frame: int, value: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        if frame != len(self.scales):
            raise ValueError(f"frames must come in order: expected {len(self.scales)}, got {frame}")
        self.scales.append(1.0)
        self.shifts.append(0.0)
        self._maps[frame] = value
        self._rows[frame] = self.lowres(value)
        if len(self._maps) <= self.window:
            return []
        return self._emit(frame + 1 - self.keep)

    def finish(self) -> list[tuple[int, torch.Tensor]]:
        return self._emit(len(self.scales))

    def _emit(self, upto: int) -> list[tuple[int, torch.Tensor]]:
        self._solve()
        out = []
        for f in range(self.emitted, upto):
            out.append((f, self._maps.pop(f).float() * self.scales[f] + self.shifts[f]))  # [PH,PW]
        self.emitted = upto
        for f in [f for f in self._rows if f < self.emitted - max(self.offsets)]:
            del self._rows[f]
        return out

    def _solve(self) -> None:
        frames = sorted(self._rows)
        if len(frames) < 2 or all(f < self.emitted for f in frames):
            return
        fit = solve_frames(self._rows, self.offsets, self.solve_opts)
        if fit is None:
            return
        s, c = fit  # [F], [F] in the order of ``frames``
        local = {f: i for i, f in enumerate(frames)}
        anchors = [f for f in frames if f < self.emitted]
        a, b = 1.0, 0.0
        if anchors:  # one affine map from this window's free answer onto the emitted frames' fixed values
            # the small affine fit in float64, on the CPU (the low-resolution rows are [K]; MPS has no float64)
            rows = {f: self._rows[f].to("cpu").double() for f in anchors}
            free = torch.cat([rows[f] * s[local[f]] + c[local[f]] for f in anchors])  # [A·K]
            fixed = torch.cat([rows[f] * self.scales[f] + self.shifts[f] for f in anchors])
            x = torch.stack([free, torch.ones_like(free)], 1)  # [A·K,2]
            a, b = (float(v) for v in torch.linalg.lstsq(x, fixed[:, None]).solution[:, 0])
        for f in frames:
            if f >= self.emitted:
                self.scales[f] = a * float(s[local[f]])
                self.shifts[f] = a * float(c[local[f]]) + b
        self.solves += 1


def solve_frames(rows: dict[int, torch.Tensor], offsets: Iterable[int] = OFFSETS, solve_opts: dict | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The free solve: ``rows`` (frame → its low-resolution row ``[K]``) → (scales, shifts) ``[F]`` float64 for
    the frames in sorted order (on the CPU), or None when no pair of frames is ``offsets`` apart. Every frame is compared
    with the held frames ``g`` before it, for each ``g`` in ``offsets`` (one comparison group per pair)."""
    from ..core import coalign

    frames = sorted(rows)
    local = {f: i for i, f in enumerate(frames)}
    maps, unit, group = [], [], []
    for g in sorted(set(int(g) for g in offsets)):
        for f in frames:
            if f - g in local:
                maps += [rows[f], rows[f - g]]
                unit += [local[f], local[f - g]]
                group += [len(group) // 2] * 2
    if not maps:
        return None
    s, c = coalign.solve(torch.stack(maps), torch.tensor(unit), torch.tensor(group), len(frames),
                         **{**SOLVE_OPTIONS, **(solve_opts or {})})  # [F], [F]
    return s.to("cpu").double(), c.to("cpu").double()
