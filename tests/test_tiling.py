"""Tiled inference (marigold.tiling): the merge with an oracle in place of the model, the tile plan, the options'
messages, and the real sampler on a tiny checkpoint (untiled equality, CLI)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import marigold
from marigold.core import tiling
from marigold.errors import InputError
from train.metrics import tile_seam_ratio

TILE = 64  # the processing resolution the oracle runs at (the tile size)


def fake_model(task: str = "depth") -> SimpleNamespace:
    """What predict_tiled reads of a model when an oracle predicts."""
    return SimpleNamespace(task=task, modality=marigold.modality.get(task), default_processing_resolution=TILE,
                           default_denoising_steps=1,
                           scale_invariant=True, shift_invariant=True,
                           target_names=["depth"] if task == "depth" else ["normals"])


def scene(h: int, w: int) -> torch.Tensor:
    """A smooth synthetic depth [H,W] in about 1..3: a slanted floor, bumps and a ridge."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return (1.5 + 0.8 * y + 0.3 * torch.sin(9 * x) * torch.cos(7 * y) + 0.4 * torch.exp(-((x - 0.6) ** 2) / 0.01)
            ).float()


def coord_image(h: int, w: int) -> torch.Tensor:
    """The photo the oracle reads: R = row, G = column (0..1), so a crop says where it lies; [1,3,H,W]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([y, x, torch.full_like(x, 0.5)])[None]


class Oracle:
    """The exact scene depth at the crop's pixels, then per call a random scale and shift (``distort``) and
    Gaussian noise; the noise of the k-th call is the same whether or not it is distorted."""

    def __init__(self, depth: torch.Tensor, distort: bool, sigma: float = 0.01, seed: int = 0):
        self.depth, self.distort, self.sigma = depth[None, None], distort, sigma
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def __call__(self, crop: torch.Tensor, resolution: int):
        if resolution:  # the global pass: the model sees the image at the processing resolution
            h, w = crop.shape[-2:]
            m = max(h, w)
            crop = F.interpolate(crop, size=(h * resolution // m, w * resolution // m), mode="bilinear",
                                 antialias=True)
        grid = torch.stack([crop[0, 1] * 2 - 1, crop[0, 0] * 2 - 1], dim=-1)[None]  # [1,h,w,2] (x, y)
        d = F.grid_sample(self.depth, grid, mode="bilinear", align_corners=True)  # [1,1,h,w]
        g = torch.Generator().manual_seed(1000 + self.calls)
        noise = torch.randn(d.shape, generator=g) * self.sigma * d.mean()
        s, t = self.rng.uniform(0.5, 2.0), self.rng.uniform(-1.0, 1.0)
        self.calls += 1
        if self.distort:
            return s * (d + noise) + t, None
        return d + noise, None


def abs_rel_after_fit(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """AbsRel after one least-squares scale and shift of the whole map."""
    a = torch.stack([pred.flatten().double(), torch.ones(pred.numel(), dtype=torch.float64)], 1)
    st = torch.linalg.lstsq(a, gt.flatten().double()[:, None]).solution
    fitted = (a @ st).reshape(gt.shape)
    return float(((fitted - gt).abs() / gt).mean())


def run_oracle(depth, image, distort, **kw):
    h, w = depth.shape
    out = tiling.predict_tiled(fake_model(), image, tile_resolution=max(h, w), tile_overlap=16,
                               predictor=Oracle(depth, distort), **kw)
    return out


H, W = 200, 280


@pytest.fixture(scope="module")
def floors():
    """The noise floor per merge: the same oracle noise, no per-tile scale or shift, through the same code."""
    return {m: run_oracle(scene(H, W), coord_image(H, W), distort=False, merge=m) for m in tiling.MERGES}


@pytest.mark.parametrize("merge", tiling.MERGES)
def test_merge_reaches_the_noise_floor_without_seams(floors, merge):
    h, w = H, W
    depth, image = scene(h, w), coord_image(h, w)
    floor = floors[merge]
    plan = floor.plans[0]
    assert plan.count == 4 * 6 and plan.size == (h, w)
    distorted = run_oracle(depth, image, distort=True, merge=merge)
    assert distorted.merge == merge
    e_floor = abs_rel_after_fit(floor.prediction[0, 0], depth)
    e = abs_rel_after_fit(distorted.prediction[0, 0], depth)
    assert e <= 1.1 * e_floor, (e, e_floor)
    assert tile_seam_ratio(distorted.prediction[0, 0], plan) <= 1.1
    # the alignment is what does it: the same tiles blended as they come are far off, with seams
    scales, shifts = distorted.scales[0], distorted.shifts[0]
    assert scales.shape == (plan.count,) and not torch.allclose(scales, torch.ones_like(scales), atol=0.05)


def test_merge_without_alignment_shows_seams(monkeypatch, floors):
    """The measures have teeth: tiles kept whole and blended without their scale and shift fail both bounds (the
    detail merge without its fit: tests/test_tile_detail.py)."""
    depth, image = scene(H, W), coord_image(H, W)
    monkeypatch.setattr(tiling._AlignCanvas, "solve",
                        lambda self: (torch.ones(len(self.rows) - 1), torch.zeros(len(self.rows) - 1),
                                      torch.zeros(len(self.rows) - 1, dtype=torch.bool)))
    bad = run_oracle(depth, image, distort=True, merge="coalign")
    floor = floors["coalign"]
    assert abs_rel_after_fit(bad.prediction[0, 0], depth) > 1.1 * abs_rel_after_fit(floor.prediction[0, 0], depth)
    assert tile_seam_ratio(bad.prediction[0, 0], bad.plans[0]) > 1.1


def test_constant_depth_tiles_to_a_constant_map():
    h, w = 150, 210
    depth, image = torch.full((h, w), 2.0), coord_image(h, w)
    out = tiling.predict_tiled(fake_model(), image, tile_resolution=w, tile_overlap=16,
                               predictor=Oracle(depth, distort=True, sigma=0.0))
    p = out.prediction[0, 0]
    assert out.plans[0].count > 1
    assert float(p.max() - p.min()) < 1e-4 * float(p.abs().mean())


def test_tile_plan_covers_and_overlaps():
    plan = tiling.plan_tiles((1536, 2048), 768, 192)
    assert plan.tile == (768, 768) and plan.xs[0] == 0 and plan.xs[-1] + 768 == 2048
    assert plan.ys[-1] + 768 == 1536
    assert all(b - a <= 768 - 192 for a, b in zip(plan.xs, plan.xs[1:]))  # each overlap at least 192 px
    assert plan.count == len(plan.xs) * len(plan.ys) == 4 * 3
    # the feathered weights are a partition of one over the canvas
    total = torch.zeros(plan.size)
    for k, (y0, x0, y1, x1) in enumerate(plan.boxes()):
        total[y0:y1, x0:x1] += tiling.feather(plan, k // len(plan.xs), k % len(plan.xs))
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
    # a side shorter than the tile is one tile of that side
    thin = tiling.plan_tiles((300, 2000), 768, 100)
    assert thin.tile == (300, 768) and thin.ys == (0,)
    assert tiling.working_size((1000, 1500), 768, tile_factor=2) == (1024, 1536)
    assert tiling.working_size((1000, 1500), 768, tile_resolution=3000) == (2000, 3000)


def test_normals_blend_to_unit_vectors():
    h, w = 120, 160
    image = coord_image(h, w)

    def oracle(crop, resolution):
        n = torch.stack([crop[0, 1] - 0.5, crop[0, 0] - 0.5, torch.ones_like(crop[0, 0])])[None]  # [1,3,h,w]
        return n / n.norm(dim=1, keepdim=True), None

    out = tiling.predict_tiled(fake_model("normals"), image, tile_resolution=w, tile_overlap=16, predictor=oracle)
    n = out.prediction
    assert n.shape == (1, 3, h, w) and out.plans[0].count > 1
    assert torch.allclose(n.norm(dim=1), torch.ones(1, h, w), atol=1e-4)
    assert float((n - oracle(image, 0)[0]).abs().max()) < 1e-3  # a smooth field blends to itself


@pytest.mark.parametrize("kw, name", [
    (dict(tile_overlap=0), "tile_overlap"), (dict(tile_overlap=64), "tile_overlap"),
    (dict(tile_overlap=200), "tile_overlap"), (dict(tile_factor=0.5), "tile_factor"),
    (dict(tile_factor=2, tile_resolution=512), "tile_resolution"), (dict(tile_resolution=4), "tile_resolution"),
])
def test_bad_options_name_the_option(kw, name):
    with pytest.raises(InputError, match=name):
        tiling.predict_tiled(fake_model(), coord_image(100, 120), predictor=Oracle(scene(100, 120), False), **kw)


def test_image_that_fits_one_tile_runs_untiled_with_a_note():
    image = coord_image(40, 60)
    with pytest.warns(UserWarning, match="untiled"):
        out = tiling.predict_tiled(fake_model(), image, predictor=Oracle(scene(40, 60), False))  # default ×2
    assert out.plans == [None] and "untiled" in out.notes[-1] and out.prediction.shape == (1, 1, 40, 60)
    assert "own 60×40" in out.notes[0]  # never upsampled past the photo: 60 px is less than a 64-px tile


@pytest.fixture(scope="module")
def tiny_depth(depth_checkpoint):
    return marigold.load(depth_checkpoint, device="cpu", dtype="fp32")


def test_small_image_equals_the_untiled_run_bit_for_bit(tiny_depth):
    model = tiny_depth
    photo = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    kw = dict(ensemble_size=2, seed=3, processing_resolution=64, num_inference_steps=2)
    ref = marigold.predict(model, photo, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiled = tiling.predict_tiled(model, photo, tile_factor=1, **kw)
    assert torch.equal(ref.prediction, tiled.prediction)


def test_model_tiles_with_progress_per_tile(tiny_depth):
    model = tiny_depth
    photo = torch.rand(1, 3, 60, 80, generator=torch.Generator().manual_seed(1))
    steps, tiles = [], []
    out = tiling.predict_tiled(model, photo, processing_resolution=32, tile_resolution=80, tile_overlap=8,
                               num_inference_steps=2, seed=0, progress=lambda d, t: steps.append((d, t)),
                               on_tile=lambda d, t: tiles.append((d, t)))
    n = out.plans[0].count
    assert n > 1 and tiles == [(k + 1, n) for k in range(n)]
    assert steps[-1] == ((n + 1) * 2, (n + 1) * 2)  # the global pass and each tile, 2 steps each
    p = out.prediction
    assert p.shape == (1, 1, 60, 80) and float(p.min()) >= 0.0 and float(p.max()) <= 1.0 and float(p.std()) > 0.05

    def cancel():
        if len(tiles) >= 2:
            raise marigold.Cancelled("stop")

    tiles.clear()
    with pytest.raises(marigold.Cancelled):
        tiling.predict_tiled(model, photo, processing_resolution=32, tile_resolution=80, tile_overlap=8,
                             num_inference_steps=2, seed=0, check_cancel=cancel,
                             on_tile=lambda d, t: tiles.append((d, t)))
    assert len(tiles) == 2


def test_cli_tiles_images_and_relief(depth_checkpoint, tmp_path, capsys):
    from PIL import Image

    from marigold import cli

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "in" / "big.png")
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "in" / "small.png")
    out = tmp_path / "out"
    base = [str(tmp_path / "in"), "-o", str(out), "--checkpoint", str(depth_checkpoint), "--dtype", "fp32",
            "--processing-resolution", "32", "--steps", "1"]
    assert cli.main(base + ["--tile", "--tile-factor", "3", "--tile-overlap", "8", "--relief", "stl",
                            "--relief-resolution", "40"]) == 0
    err = capsys.readouterr().err
    assert "small.png" in err and "untiled" in err  # 24 px wide: one 32-px tile even at its own size
    from PIL import Image as I
    for stem, size in (("big", (80, 60)), ("small", (24, 20))):
        assert I.open(out / f"{stem}_depth_16bit.png").size == size
        assert (out / f"{stem}_relief.stl").is_file()
    for bad, name in ((["--tile-overlap", "0"], "--tile-overlap"), (["--tile-overlap", "32"], "--tile-overlap"),
                      (["--tile-factor", "0.5"], "--tile-factor"), (["--tile-merge", "average"], "--tile-merge")):
        assert cli.main(base + ["--tile", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and name in err and "`" not in err and len(err.splitlines()) == 1
    assert cli.main(base + ["--tile-factor", "3"]) == 2
    assert "add --tile" in capsys.readouterr().err
    assert cli.main(base + ["--tile-merge", "coalign"]) == 2
    assert "add --tile" in capsys.readouterr().err
    (out / "big_depth_16bit.png").unlink()
    assert cli.main(base + ["--tile", "--tile-factor", "3", "--tile-overlap", "8", "--tile-merge", "coalign"]) == 0
    assert I.open(out / "big_depth_16bit.png").size == (80, 60)


def test_hr_checkpoint_is_refused_in_one_line_pointing_to_tiling(make_checkpoint, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(marigold.CheckpointError) as e:  # the repo id: refused before any download
        marigold.load("prs-eth/marigold-depth-hr-v1-1", cache_dir=tmp_path / "empty", progress=False)
    msg = str(e.value)
    assert "MarigoldDepthHRPipeline" in msg and "--tile" in msg and "\n" not in msg
    assert not (tmp_path / "empty").exists()
    folder = make_checkpoint("depth", copy_to=tmp_path / "hr")  # a downloaded copy: known by its pipeline class
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "MarigoldDepthHRPipeline"}))
    with pytest.raises(marigold.CheckpointError, match="--tile"):
        marigold.load(folder, device="cpu", dtype="fp32", progress=False)


def test_an_inverted_tile_is_replaced_by_the_global_pass():
    h, w = 150, 210
    depth, image = scene(h, w), coord_image(h, w)
    oracle = Oracle(depth, distort=False)
    plain = oracle.__call__

    def flipped(crop, resolution):  # the 4th call is tile 3 (after the global pass): upside down
        p, u = plain(crop, resolution)
        return (-p if oracle.calls == 4 else p), u

    out = tiling.predict_tiled(fake_model(), image, tile_resolution=w, tile_overlap=16, predictor=flipped)
    assert out.replaced == [[2]]
    assert abs_rel_after_fit(out.prediction[0, 0], depth) < 0.02
