"""Tiled inference: detail from a working resolution above what the model sees, in bounded memory.

Marigold is trained around 768 px; at 2048 px it is out of distribution and its attention cost grows with the
square of the token count. So, per image (Boosting Monocular Depth, Miangoleh et al. 2021: a low-resolution
estimate for the structure, high-resolution patches for the detail):

1. a **global pass** at the processing resolution, as :func:`marigold.predict` runs it: the structure;
2. the image resized to the **working resolution** (``tile_resolution`` px on the longest side, or
   ``tile_factor`` × the processing resolution) and cut into overlapping **tiles** of the processing resolution,
   each predicted at its native size (ensembled per tile, as today);
3. the **merge**, ``merge="detail"`` (the default, :mod:`marigold.core.tile_detail`): the global pass's low
   frequencies and only the tiles' high frequencies, split at the pass's resolution, each tile's detail weighted
   by how well its coarse shape agrees with the pass (depth-like maps: each tile fitted to the pass by one
   scale and shift first), blended with feathered weights;
   ``merge="coalign"`` (the merge before it): depth and disparity tiles kept whole, with one scale and shift
   per tile solved so that every tile agrees with its neighbours and with the global pass where they overlap
   (:func:`marigold.coalign.solve`, the solver the video path uses, on a low-resolution canvas); normals and
   intrinsics blended as they are. Either way the feathered weights are ramps across each overlap that sum to
   one (linear; raised-cosine for the detail merge), so no tile border shows (huawei-bayerlab/marigold-v2
   ``evaluation/depth_completion/tiling.py`` blends its tiles with the same kind of ramp).

On our own small model trained on synthetic scenes, tiles predicted whole and co-aligned made depth edges worse
than one pass (bench/RESULTS.md, "Quality": a tile sees a narrow field of view and its shape drifts); docs/tiling.md
says what is measured of each merge.

Memory: the model's working set is one tile's (the tile size is the processing resolution), whatever the image
size. What grows with the image are output-sized float maps: the working image, the global pass upsampled, the
blend's sums, and the tiles' own predictions, kept until the merge (about 1.3-2× the output map each).

A tile is a crop of the resized photo given to the same sampler (:func:`marigold.predict.iter_members`) with
``processing_resolution=0``, so any checkpoint tiles. An image whose working size fits in one tile runs untiled,
exactly as :func:`marigold.predict.predict` (bit for bit), with a note.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from . import coalign
from . import image as img
from .checkpoint import MarigoldModel
from .modality import Modality
from ..errors import InputError
from .predict import CancelFn, Prediction, ProgressFn, ensemble_members, finish, iter_members, predict
from .tile_detail import DetailMerge

__all__ = ["TilePlan", "TiledPrediction", "plan_tiles", "working_size", "feather", "predict_tiled",
           "DEFAULT_OVERLAP_FRACTION", "MERGES"]

DEFAULT_OVERLAP_FRACTION = 4  # default overlap: a quarter of the tile (192 px for 768-px tiles)
MERGES = ("detail", "coalign")  # predict_tiled's `merge`: the first is the default
ALIGN_CELLS = 32  # a tile's shorter side on the alignment canvas: plenty of cells to fit 2 numbers per tile

# One tile (or the global pass) through the sampler and its ensembling: image [1,3,h,w] 0..1 and the
# processing resolution (0 = native) → (prediction [1,C,h',w'], uncertainty [1,C',h',w'] or None), where
# (h', w') is the processing size. Tests put an oracle here; the default runs the model.
TilePredictor = Callable[[torch.Tensor, int], "tuple[torch.Tensor, torch.Tensor | None]"]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles lie on the working canvas ``size`` (H, W): tile ``(i, j)`` covers rows
    ``ys[i] : ys[i] + tile[0]`` and columns ``xs[j] : xs[j] + tile[1]``."""

    size: tuple[int, int]
    tile: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def boxes(self) -> Iterator[tuple[int, int, int, int]]:
        """(y0, x0, y1, x1) of each tile, row by row."""
        for y in self.ys:
            for x in self.xs:
                yield y, x, y + self.tile[0], x + self.tile[1]


@dataclass
class TiledPrediction(Prediction):
    """:class:`marigold.predict.Prediction` plus what the tiled run did: ``plans`` (one per image; None where
    an image ran untiled), ``scales``/``shifts`` (depth: each tile's alignment, ``[n_tiles]`` per image),
    ``merge`` (which merge ran),
    ``replaced`` (depth: per image, the tiles replaced by the global pass: flat, or inverted) and ``notes``
    (what the user should know, e.g. an image that fit in one tile)."""

    plans: list[TilePlan | None] = field(default_factory=list)
    scales: list[torch.Tensor] = field(default_factory=list)
    shifts: list[torch.Tensor] = field(default_factory=list)
    replaced: list[list[int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    merge: str = MERGES[0]


def _axis_starts(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Starts of the fewest tiles of ``tile`` px that cover ``length`` px, each overlapping the next by at least
    ``overlap`` px, spread evenly (so the actual overlaps are equal, and at least the asked one)."""
    if length <= tile:
        return (0,)
    n = math.ceil((length - overlap) / (tile - overlap))
    return tuple(round(k * (length - tile) / (n - 1)) for k in range(n))


def check_tiling(tile: int, tile_overlap: int | None, tile_factor: float | None,
                 tile_resolution: int | None) -> int:
    """Validate the tiling options (naming the one at fault); returns the overlap in px."""
    if tile_factor is not None and tile_resolution is not None:
        raise InputError(f"Give `tile_factor` or `tile_resolution`, not both (got {tile_factor!r} and "
                         f"{tile_resolution!r}).")
    if tile_factor is not None and (isinstance(tile_factor, bool) or not isinstance(tile_factor, (int, float))
                                    or not math.isfinite(tile_factor) or tile_factor < 1):
        raise InputError(f"`tile_factor` must be a number >= 1 (the working resolution is this many times the "
                         f"processing resolution, {tile} px); got {tile_factor!r}.")
    if tile_resolution is not None and (isinstance(tile_resolution, bool) or not isinstance(tile_resolution, int)
                                        or tile_resolution < img.MIN_SIDE):
        raise InputError(f"`tile_resolution` must be an integer number of pixels >= {img.MIN_SIDE} (the working "
                         f"resolution's longest side); got {tile_resolution!r}.")
    overlap = tile // DEFAULT_OVERLAP_FRACTION if tile_overlap is None else tile_overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1 or overlap >= tile:
        raise InputError(f"`tile_overlap` must be an integer from 1 to {tile - 1} px (less than the tile, which is "
                         f"the processing resolution, {tile} px); got {tile_overlap!r}.")
    return overlap


def working_size(size: tuple[int, int], tile: int, *, tile_factor: float | None = None,
                 tile_resolution: int | None = None) -> tuple[int, int]:
    """(H, W) of the input → (H, W) of the working canvas: longest side ``tile_resolution``, or
    ``tile_factor`` × ``tile`` (default factor 2, the HR model's default upscale), same aspect ratio."""
    longest = tile_resolution if tile_resolution is not None else round((tile_factor or 2.0) * tile)
    h, w = size
    m = max(h, w)
    return max(1, round(h * longest / m)), max(1, round(w * longest / m))


def plan_tiles(size: tuple[int, int], tile: int, overlap: int) -> TilePlan:
    """The tiles over a working canvas ``size`` (H, W): squares of ``tile`` px (a side shorter than the tile
    is one tile of that side), neighbours overlapping by at least ``overlap`` px."""
    h, w = size
    th, tw = min(tile, h), min(tile, w)
    return TilePlan(size=(h, w), tile=(th, tw), ys=_axis_starts(h, th, overlap), xs=_axis_starts(w, tw, overlap))


def _ramp(n: int, start: int, end: int, prev_end: int | None, next_start: int | None) -> torch.Tensor:
    """Weights [n] along one axis of a tile covering ``start:end``: rising across the overlap with the previous
    tile (which ends at ``prev_end``), falling across the overlap with the next (which starts at ``next_start``),
    1 elsewhere. Both neighbours ramp over the same pixels in opposite directions, so the weights sum to 1."""
    r = torch.ones(n)
    i = torch.arange(n, dtype=torch.float32)
    if prev_end is not None and prev_end > start:
        o = prev_end - start
        r = torch.minimum(r, (i + 0.5) / o)
    if next_start is not None and next_start < end:
        o = end - next_start
        r = torch.minimum(r, (n - i - 0.5) / o)
    return r


def feather(plan: TilePlan, row: int, col: int, smooth: bool = False) -> torch.Tensor:
    """Blend weight ``[th,tw]`` of tile (row, col): a separable product of linear ramps across its overlaps
    (1 along the canvas border, where no other tile takes over). ``smooth``: raised-cosine ramps instead
    (``(1 − cos πr) / 2`` of the linear ramp ``r``: they still sum to one, and have no kink at the overlap's ends,
    which a high-pass of the blend would turn into a line along each tile border)."""
    th, tw = plan.tile
    ys, xs = plan.ys, plan.xs
    wy = _ramp(th, ys[row], ys[row] + th, ys[row - 1] + th if row > 0 else None,
               ys[row + 1] if row + 1 < len(ys) else None)  # [th]
    wx = _ramp(tw, xs[col], xs[col] + tw, xs[col - 1] + tw if col > 0 else None,
               xs[col + 1] if col + 1 < len(xs) else None)  # [tw]
    if smooth:
        wy, wx = (0.5 - 0.5 * torch.cos(math.pi * wy)), (0.5 - 0.5 * torch.cos(math.pi * wx))
    return wy[:, None] * wx[None, :]  # [th,tw]


class _AlignCanvas:
    """The low-resolution canvas the co-alignment compares on: one cell = ``cell`` × ``cell`` working pixels,
    each row (the global pass, then one per tile) the mean of its pixels in every cell it covers whole."""

    def __init__(self, size: tuple[int, int], tile: tuple[int, int]):
        self.cell = max(1, min(tile) // ALIGN_CELLS)
        self.h, self.w = size[0] // self.cell, size[1] // self.cell
        self.rows: list[torch.Tensor] = []  # [h·w] each, NaN where the row does not cover the cell

    def add_global(self, full: torch.Tensor) -> None:
        """The global prediction ``[1,1,PH,PW]`` resized onto the canvas."""
        c = self.cell
        x = img.resize(full, (self.h * c, self.w * c), "bilinear", antialias=False)  # [1,1,h·c,w·c]
        self.rows.append(F.avg_pool2d(x, c).reshape(-1))  # [h·w]

    def add_tile(self, pred: torch.Tensor, y0: int, x0: int) -> None:
        """A tile's prediction ``[1,1,th,tw]`` placed at (y0, x0): its mean over each cell it covers whole."""
        c = self.cell
        th, tw = pred.shape[-2:]
        i0, j0 = -(-y0 // c), -(-x0 // c)  # first whole cell
        i1, j1 = min((y0 + th) // c, self.h), min((x0 + tw) // c, self.w)  # one past the last whole cell
        row = torch.full((self.h, self.w), float("nan"))
        if i1 > i0 and j1 > j0:
            crop = pred[..., i0 * c - y0:i1 * c - y0, j0 * c - x0:j1 * c - x0]  # [1,1,(i1-i0)·c,(j1-j0)·c]
            row[i0:i1, j0:j1] = F.avg_pool2d(crop.float(), c)[0, 0]
        self.rows.append(row.reshape(-1))  # [h·w]

    def solve(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(scale [T], shift [T], rejected [T]) of the T tiles, the global pass held at (1, 0). A rejected tile
        (flat: a wall, the sky, so its scale is undetermined; or one that came out inverted, scale <= 0) is
        replaced by the global pass over its area."""
        rows = torch.stack(self.rows)  # [1+T,h·w], NaN where a row does not cover a cell
        seen = torch.isfinite(rows)  # [1+T,h·w]
        lo = torch.where(seen, rows, torch.full_like(rows, float("inf"))).amin(1)  # [1+T]
        hi = torch.where(seen, rows, torch.full_like(rows, -float("inf"))).amax(1)
        # a flat tile says nothing about its own scale: it takes no part in the fit
        flat = (hi - lo <= 1e-6 * torch.maximum(hi.abs(), lo.abs()).clamp(min=1.0)) | ~seen.any(1)  # [1+T]
        flat[0] = False
        keep = (~flat).nonzero().squeeze(1)  # the global pass (row 0) and the tiles with some relief
        m = int(keep.numel())
        fixed = torch.zeros(m, dtype=torch.bool)
        fixed[0] = True
        sub = rows[keep]  # [m,h·w]
        # One comparison group, the canvas: each cell's target is the mean of the aligned rows covering it.
        # (A group per cell, with per-cell normalisers, fits the same numbers here but assembles ~10× slower.)
        # The anchor fixes the gauge, so the reference's penalties (toward scale 1, shift 0) are off, and the
        # reciprocal term too (it weighs near depth over far, which tiles have no reason to do). The closed-form
        # warm start is already within 0.1 % of the optimum on the merge test, hence the loose tolerance.
        s_kept, t_kept = coalign.solve(torch.nan_to_num(sub, nan=0.0), torch.arange(m),
                                       torch.zeros(m, dtype=torch.long), m, mask=torch.isfinite(sub), fixed=fixed,
                                       init=(torch.ones(m), torch.zeros(m)), depth_weight=0.0, scale_penalty=0.0,
                                       shift_penalty=0.0, max_iter=20, tol=1e-4)
        scale, shift = torch.ones(rows.shape[0]), torch.zeros(rows.shape[0])
        scale[keep], shift[keep] = s_kept, t_kept
        rejected = flat | (scale <= 0)
        scale[rejected], shift[rejected] = 1.0, 0.0
        return scale[1:], shift[1:], rejected[1:]


def _model_predictor(model: MarigoldModel, kw: dict, ens_kw: dict, uncertainty: bool,
                     progress: Callable[[int, int], None] | None, check_cancel: CancelFn | None) -> TilePredictor:
    """The sampler and its ensembling for one crop (the same calls :func:`marigold.predict.predict` makes)."""
    def run(x: torch.Tensor, resolution: int):
        (m,) = iter_members(model, x, processing_resolution=resolution, progress=progress,
                            check_cancel=check_cancel, **kw)  # one image: one Members
        p, u = ensemble_members(m, output_uncertainty=uncertainty, **ens_kw)  # [1,C,h,w]
        return p.float().cpu(), (u.float().cpu() if u is not None else None)
    return run


def predict_tiled(model: MarigoldModel, image: img.ImageInput, *, tile_factor: float | None = None,
                  tile_resolution: int | None = None, tile_overlap: int | None = None,
                  num_inference_steps: int | None = None, ensemble_size: int = 1,
                  processing_resolution: int | None = None, match_input_resolution: bool = True,
                  resample_method_input: str = "bilinear", resample_method_output: str = "bilinear",
                  batch_size: int = 1, seed: int | torch.Generator | None = None, output_uncertainty: bool = False,
                  ensembling_kwargs: dict | None = None, progress: ProgressFn | None = None,
                  check_cancel: CancelFn | None = None, on_tile: Callable[[int, int], None] | None = None,
                  predictor: TilePredictor | None = None, merge: str = MERGES[0]) -> TiledPrediction:
    """:func:`marigold.predict.predict` with tiles (module docstring): same arguments, plus

    ``tile_factor`` (working resolution = factor × processing resolution; default 2) or ``tile_resolution``
    (its longest side in px), never above the image's own size, and ``tile_overlap`` (px at the working
    resolution; default a quarter tile).
    The tile is the processing resolution (default the checkpoint's, 768 for v1-1). ``match_input_resolution``
    resizes the result to the input's size; off, it stays at the working resolution. ``on_tile(done, total)``
    is called after each tile (``progress`` counts denoising steps over the whole run); ``check_cancel`` is
    asked between steps and tiles. ``predictor`` replaces the model (tests: an oracle). ``merge``: "detail"
    (structure from the global pass, detail from the tiles) or "coalign" (tiles kept whole, co-aligned).
    """
    if merge not in MERGES:
        raise InputError(f"`merge` must be one of {', '.join(repr(m) for m in MERGES)}; got {merge!r}.")
    res = model.default_processing_resolution if processing_resolution is None else processing_resolution
    res = 768 if res is None else res
    if not isinstance(res, int) or res <= 0:
        raise InputError(f"Tiling needs a positive `processing_resolution` (the tile size); got "
                         f"{processing_resolution!r}.")
    overlap = check_tiling(res, tile_overlap, tile_factor, tile_resolution)
    img.check_resample(resample_method_output, "resample_method_output")
    img.check_resample(resample_method_input, "resample_method_input")
    images = img.to_tensor(image)  # [N,3,H,W] 0..1
    size = tuple(images.shape[-2:])
    work = working_size(size, res, tile_factor=tile_factor, tile_resolution=tile_resolution)
    notes = []
    if max(work) > max(size):  # an upsampled photo has no detail for the tiles to find: stay at its own size
        notes.append(f"the working resolution {work[1]}×{work[0]} is above the image's own {size[1]}×{size[0]}; "
                     f"tiled at {size[1]}×{size[0]}.")
        work = size
    plan = plan_tiles(work, res, overlap)
    common = dict(num_inference_steps=num_inference_steps, ensemble_size=ensemble_size,
                  resample_method_input=resample_method_input, batch_size=batch_size, seed=seed,
                  output_uncertainty=output_uncertainty, ensembling_kwargs=ensembling_kwargs)
    finish_kw = dict(match_input_resolution=match_input_resolution, resample_method_output=resample_method_output)
    if plan.count == 1:  # nothing to tile: exactly the untiled run
        note = (f"the image ({size[1]}×{size[0]}) at the working resolution {work[1]}×{work[0]} fits in one "
                f"{res}-px tile: ran untiled.")
        notes.append(note)
        warnings.warn(note, stacklevel=2)
        if predictor is None:
            out = predict(model, images, processing_resolution=res, progress=progress, check_cancel=check_cancel,
                          **common, **finish_kw)
        else:
            preds = [predictor(images[i:i + 1], res) for i in range(images.shape[0])]
            out = Prediction(torch.cat([finish(p, size, model.task, **finish_kw) for p, _ in preds]), None,
                             model.task, model.target_names)
        return TiledPrediction(out.prediction, out.uncertainty, out.task, out.target_names,
                               plans=[None] * images.shape[0], notes=notes, merge=merge)

    task = model.task
    affine = model.modality.ensemble == "affine"  # depth-like maps get one scale and shift per tile
    ens_kw = dict(ensembling_kwargs or {})
    if affine:
        ens_kw.update(scale_invariant=model.scale_invariant, shift_invariant=model.shift_invariant)
    n = images.shape[0]
    steps = model.default_denoising_steps if num_inference_steps is None else num_inference_steps
    per_pass = -(-ensemble_size // batch_size) * (steps or 1)
    total = n * (1 + plan.count) * per_pass
    offset = [0]

    def step(done: int, _total: int) -> None:
        if progress is not None:
            progress(offset[0] + done, total)

    if predictor is None:
        kw = dict(num_inference_steps=num_inference_steps, ensemble_size=ensemble_size,
                  resample_method_input=resample_method_input, batch_size=batch_size,
                  seed=_one_generator(seed))
        predictor = _model_predictor(model, kw, ens_kw, output_uncertainty, step, check_cancel)
    result = TiledPrediction(torch.empty(0), None, task, model.target_names, notes=notes, merge=merge)
    preds, uncs = [], []
    for i in range(n):
        p, u, scale, shift, rejected = _tile_one(images[i:i + 1], plan, res, model.modality, predictor,
                                                 output_uncertainty, check_cancel, offset, per_pass, on_tile, merge)
        preds.append(finish(p, size, model.modality, **finish_kw))
        if u is not None:
            uncs.append(finish(u, size, "uncertainty", **finish_kw))
        result.plans.append(plan)
        result.scales.append(scale)
        result.replaced.append(rejected.nonzero().squeeze(1).tolist())
        result.shifts.append(shift)
    result.prediction = torch.cat(preds)
    result.uncertainty = torch.cat(uncs) if uncs else None
    return result


def _one_generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    """One generator for the whole run: the global pass and every tile draw their noise from it in turn."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"`seed` must be an integer; got {seed!r}.")
    return torch.Generator("cpu").manual_seed(seed)


def _tile_one(image: torch.Tensor, plan: TilePlan, res: int, modality: Modality, predictor: TilePredictor,
              uncertainty: bool, check_cancel: CancelFn | None, offset: list[int], per_pass: int,
              on_tile: Callable[[int, int], None] | None, merge: str = MERGES[0]):
    """One image [1,3,H,W] → (prediction [1,C,WH,WW] at the working size, uncertainty or None, scale [T],
    shift [T], replaced [T])."""
    # 1. the global pass: the structure every tile is aligned to
    glob, _ = predictor(image, res)  # [1,C,PH,PW]
    offset[0] += per_pass
    # 2. the photo at the working resolution, antialiased when it shrinks (as the sampler's own resize)
    work = img.resize(image, plan.size, "bilinear", antialias=True).clamp_(0.0, 1.0)  # [1,3,WH,WW]
    if merge == "detail":
        cols = len(plan.xs)
        merger = DetailMerge(glob, plan, modality, uncertainty,
                             lambda k: feather(plan, k // cols, k % cols, smooth=True))
        for k, (y0, x0, y1, x1) in enumerate(plan.boxes()):
            if check_cancel is not None:
                check_cancel()
            merger.add(k, *predictor(work[..., y0:y1, x0:x1], 0))  # [1,C,th,tw]
            offset[0] += per_pass
            if on_tile is not None:
                on_tile(k + 1, plan.count)
        del work
        return merger.finish()
    depth = modality.ensemble == "affine"  # depth, disparity: align each tile; others: blend as they come
    canvas = _AlignCanvas(plan.size, plan.tile) if depth else None
    if depth:
        canvas.add_global(glob)
    c = None
    acc = wsum = uacc = None
    kept: list[tuple[torch.Tensor, torch.Tensor | None]] = []  # depth: tiles wait for the alignment
    cols = len(plan.xs)
    for k, (y0, x0, y1, x1) in enumerate(plan.boxes()):
        if check_cancel is not None:
            check_cancel()
        p, u = predictor(work[..., y0:y1, x0:x1], 0)  # [1,C,th,tw]
        offset[0] += per_pass
        if c is None:
            c = p.shape[1]
            acc = torch.zeros(1, c, *plan.size)  # [1,C,WH,WW]
            wsum = torch.zeros(1, 1, *plan.size)  # [1,1,WH,WW]
            if uncertainty and u is not None:
                uacc = torch.zeros(1, u.shape[1], *plan.size)  # [1,C',WH,WW]
        if depth:
            canvas.add_tile(p, y0, x0)
            kept.append((p, u))
        else:
            _blend(acc, wsum, uacc, p, u, feather(plan, k // cols, k % cols), y0, x0)
        if on_tile is not None:
            on_tile(k + 1, plan.count)
    del work
    scale = shift = torch.empty(0)
    rejected = torch.zeros(plan.count, dtype=torch.bool)
    if depth:
        # 3. one scale and shift per tile, so that the tiles agree with each other and with the global pass
        scale, shift, rejected = canvas.solve()
        glob_work = None
        for k, (y0, x0, y1, x1) in enumerate(plan.boxes()):
            p, u = kept[k]
            kept[k] = None  # freed as soon as it is blended
            if rejected[k]:  # the untiled prediction fills in where a tile has nothing to say
                if glob_work is None:
                    glob_work = img.resize(glob, plan.size, "bilinear", antialias=False)  # [1,1,WH,WW]
                p, u = glob_work[..., y0:y1, x0:x1], None
            p = p * scale[k] + shift[k]  # [1,1,th,tw]
            u = u * scale[k].abs() if u is not None else None
            _blend(acc, wsum, uacc, p, u, feather(plan, k // cols, k % cols), y0, x0)
    # 4. the blend: the weights sum to 1 inside, and are normalised anyway (rounding, the canvas corners)
    out = acc.div_(wsum)  # [1,C,WH,WW]
    unc = uacc.div_(wsum) if uacc is not None else None
    if depth:
        lo, hi = out.min(), out.max()
        if float(hi - lo) > 1e-6:  # back to Marigold's 0..1; a constant map stays what the global pass said
            out = (out - lo) / (hi - lo)
            unc = unc / (hi - lo) if unc is not None else None
    else:
        out = modality.renormalize(out)  # unit normals back to unit length; other targets as they are
    return out, unc, scale, shift, rejected


def _blend(acc, wsum, uacc, p, u, weight, y0, x0) -> None:
    th, tw = weight.shape
    acc[..., y0:y0 + th, x0:x0 + tw] += p * weight  # [1,C,th,tw]
    wsum[..., y0:y0 + th, x0:x0 + tw] += weight
    if uacc is not None and u is not None:
        uacc[..., y0:y0 + th, x0:x0 + tw] += u * weight
