"""A predicted clip into files and pictures (marigold.video.output), and Colorize's one range for a batch."""

from __future__ import annotations

from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
from PIL import Image

import marigold
from marigold.errors import InputError
from marigold.video.output import colorize_frames, export_clip, near_zero, parse_dilations


@pytest.mark.parametrize("text, want", [("1,25", [1, 25]), ("1 10 25", [1, 10, 25]), (" 1, 10,25 ", [1, 10, 25]),
                                        ("", None), (None, None), ([1, 25], [1, 25])])
def test_dilations_parse(text, want):
    assert parse_dilations(text) == want


@pytest.mark.parametrize("text", ["1;x", "0,25", "-1"])
def test_bad_dilations_are_refused(text):
    with pytest.raises(InputError, match="dilations"):
        parse_dilations(text)


def test_disparity_is_flipped_so_near_is_zero():
    d = torch.tensor([0.0, 0.25, 1.0]).view(3, 1, 1, 1)
    assert near_zero(d, "disparity").flatten().tolist() == [1.0, 0.75, 0.0]
    assert near_zero(d, "depth") is d
    with pytest.raises(InputError, match="space"):
        near_zero(d, "normals")


def test_near_has_the_same_colour_for_depth_and_disparity():
    near_depth, near_disp = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    torch.testing.assert_close(colorize_frames(near_depth, "depth"), colorize_frames(near_disp, "disparity"))


def _frames(values):
    return (SimpleNamespace(index=i, value=v) for i, v in enumerate(values))


def test_export_writes_one_range_for_the_clip(tmp_path):
    # a clip whose frames each span a different part of one range: frame 0 is near, frame 2 far
    values = [torch.linspace(a, a + 1, 6 * 8).view(1, 6, 8) for a in (0.0, 1.0, 3.0)]
    files = export_clip(_frames(values), tmp_path, "walk", 12, space="disparity", progress=False)
    assert files.value_range == (0.0, 4.0) and files.frame_count == 3
    assert files.frames == tmp_path / "walk_disparity_16bit" and files.video == tmp_path / "walk_depth.mp4"
    pngs = sorted(files.frames.iterdir())
    assert [p.name for p in pngs] == ["000000.png", "000001.png", "000002.png"]
    got = [np.asarray(Image.open(p)).astype(np.int64) for p in pngs]
    for v, g in zip(values, got):
        want = (v[0].numpy() / 4.0 * 65535).astype(np.int64)  # ONE normalisation: (v - 0) / (4 - 0)
        assert np.abs(g - want).max() <= 1
    assert got[0].max() < 65535 // 4 + 2 and got[2].min() > 65535 * 3 // 4 - 2
    with av.open(str(files.video)) as c:
        s = c.streams.video[0]
        assert s.average_rate == 12 and sum(1 for _ in c.decode(s)) == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # parked frames removed


def test_export_keeps_raw_frames_and_replaces_stale_ones(tmp_path):
    stale = tmp_path / "c_depth_16bit"
    stale.mkdir()
    Image.new("I;16", (8, 6)).save(stale / "000007.png")  # from an earlier, longer run
    files = export_clip(_frames([torch.rand(1, 6, 8) + 2, torch.rand(1, 6, 8)]), tmp_path, "c", 5, keep_raw=True,
                        progress=False)
    assert sorted(p.name for p in stale.iterdir()) == ["000000.png", "000001.png"]
    raw = np.load(files.raw / "000000.npy")
    assert raw.shape == (6, 8) and raw.min() >= 2  # aligned values, not normalised
    assert files.raw == tmp_path / "c_depth_npy"


def test_colorize_whole_batch_uses_one_range():
    depth = torch.stack([torch.full((1, 4, 4), 0.2), torch.full((1, 4, 4), 0.6)])  # [2,1,4,4]
    depth[0, 0, 0, 0], depth[1, 0, 0, 0] = 0.1, 0.9
    per = marigold.colorize_depth(depth, cmap="gray", percentile=(0, 100))
    whole = marigold.colorize_depth(depth, cmap="gray", percentile=(0, 100), per_image=False)
    assert per[0, 0, 1, 1] > 0.99 and per[1, 0, 1, 1] == 0.0  # each frame on its own: 0.2 white, 0.6 black
    assert whole[0, 0, 0, 0] == 0.0 and whole[1, 0, 0, 0] > 0.99  # one range 0.1..0.9 for both frames
    assert 0.1 < whole[0, 0, 1, 1] < 0.15 and 0.6 < whole[1, 0, 1, 1] < 0.65
