"""Streaming co-alignment: :class:`StreamingAligner` fits one scale and shift per snippet over the frames not yet
emitted (earlier snippets held fixed as anchors), so that a clip of any length is aligned in bounded memory;
:func:`lowres` is the reference's subsampled map the solver reads."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .presets import ALIGN_BORDER, ALIGN_FACTOR


def lowres(value: torch.Tensor) -> torch.Tensor:
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
