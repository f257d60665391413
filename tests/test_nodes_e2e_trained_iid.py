"""The MarigoldIntrinsics node on an IID checkpoint that OUR trainer wrote (issue 18: the folder ``train.finetune
--task iid-*`` writes "runs in the MarigoldIntrinsics node"), in a real ComfyUI (tests/nodes_comfyui.py): the
folder is copied as it is into ``models/marigold/`` and picked in LoadMarigold."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nodes_comfyui as comfy
from test_nodes_e2e import FAST, P, _run_ok, outputs
from test_train_iid import TINY, _finetune

NAME = "marigold/trained-iid-lighting"


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_checkpoint, tiny_sd2):
    out = tmp_path_factory.mktemp("iid") / "run"
    _finetune("--base", str(tiny_sd2), "--task", "iid-lighting", "--data", "synthetic:flat+materials",
              "--output", str(out), "--max-steps", "2", "--seed", "0", *TINY)
    py, comfy_dir = comfy.ensure()
    base = comfy.prepare_base(tmp_path_factory.mktemp("comfy_base"), make_checkpoint, py, comfy_dir, sd15=False)
    shutil.copytree(out / "final", base / "models" / NAME)  # as the trainer wrote it: no conversion
    s = comfy.Server(base, py, comfy_dir).start()
    s.object_info = s.get("/object_info")
    yield s
    s.stop()


def test_trained_iid_checkpoint_runs_in_the_intrinsics_node(server):
    ckpts = server.object_info[P + "LoadMarigold"]["input"]["required"]["checkpoint"][1]["options"]
    assert NAME in ckpts
    g = {"i": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
         "m": {"class_type": P + "LoadMarigold", "inputs": {"checkpoint": NAME, "dtype": "fp32"}},
         "x": {"class_type": P + "MarigoldIntrinsics", "inputs": {"model": ["m", 0], "image": ["i", 0], **FAST,
               "ensemble_size": 1, "match_input_resolution": True, "resample_method": "bilinear", "seed": 1,
               "batch_size": 1}}}
    for k in range(3):
        g[f"p{k}"] = {"class_type": "SaveImage", "inputs": {"images": ["x", k], "filename_prefix": f"t/iid{k}"}}
    entry = _run_ok(server, g)
    maps = [np.asarray(Image.open(outputs(server, entry, f"p{k}")[0])) for k in range(3)]
    w, h = comfy.PHOTO_SIZE
    assert all(m.shape == (h, w, 3) for m in maps)
    assert all(m.std() > 0 for m in maps)  # three real targets (albedo, shading, residual), none left black
