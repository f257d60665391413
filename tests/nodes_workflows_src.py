"""The source of workflows/*.json (ComfyUI's UI format): ``python tests/nodes_workflows_src.py OBJECT_INFO.json``.

Each workflow is a short list of nodes (type, widget values by input name, links by (node, output slot)); the
UI JSON's ``widgets_values`` are laid out in the order the live ``/object_info`` gives, with the
``control_after_generate`` companion ("fixed") after seeds, as the front end saves them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

P = "MarigoldSuite_"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

SAMPLING = dict(denoising_steps=0, ensemble_size=1, processing_resolution=768, match_input_resolution=True,
                resample_method="bilinear", seed=0, batch_size=1)

VIDEO = dict(preset="fast", dilations="", snippet_length=-1, refine_steps=-1, processing_resolution=-1, seed=0,
             batch_size=1)

NOTE_MODELS = ("Model files: Marigold checkpoints are folders in the diffusers layout (model_index.json, unet/, "
               "vae/, scheduler/, text_encoder/, tokenizer/). Put your own under ComfyUI/models/marigold/ (or "
               "models/diffusers/); the prs-eth/... entries in LoadMarigold download into models/marigold/ on "
               "first use.")

# name → (note, nodes); a node: (id, type, widgets {name: value}, links {input: (src id, src slot)})
WORKFLOWS = {
    "marigold_depth": (
        NOTE_MODELS + " This graph: put a photo in ComfyUI/input/ and pick it in Load Image.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldDepth", dict(SAMPLING, ensemble_size=3), {"model": (2, 0), "image": (1, 0)}),
            (4, P + "EnsembleAlign", {"reduction": "median", "regularizer_strength": 0.02, "max_iter": 2,
                                      "tol": 0.001, "max_res": 1024}, {"members": (3, 0)}),
            (5, P + "Colorize", {"preset": "custom", "colormap": "Spectral", "invert": False,
                                 "percentile_low": 0.0, "percentile_high": 100.0, "range": "per image"},
             {"depth": (4, 0)}),
            (6, "SaveImage", {"filename_prefix": "marigold/depth_color"}, {"images": (5, 0)}),
            (7, P + "SaveDepth16", {"filename_prefix": "marigold/depth", "format": "png16"}, {"depth": (4, 0)}),
        ]),
    "marigold_depth_controlnet_sd15": (
        NOTE_MODELS + " This graph also needs a Stable Diffusion 1.5 checkpoint in ComfyUI/models/checkpoints/ "
        "(e.g. v1-5-pruned-emaonly.safetensors) and the SD1.5 depth ControlNet in ComfyUI/models/controlnet/ "
        "(e.g. control_v11f1p_sd15_depth.safetensors). Depth ControlNets expect near = white: the Colorize "
        "node uses the controlnet preset.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldDepth", SAMPLING, {"model": (2, 0), "image": (1, 0)}),
            (4, P + "Colorize", {"preset": "controlnet (gray, near = white)", "colormap": "gray", "invert": True,
                                 "percentile_low": 0.0, "percentile_high": 100.0, "range": "per image"},
             {"depth": (3, 1)}),
            (5, "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, {}),
            (6, "ControlNetLoader", {"control_net_name": "control_v11f1p_sd15_depth.safetensors"}, {}),
            (7, "CLIPTextEncode", {"text": "a cozy reading room, warm light, detailed, photo"}, {"clip": (5, 1)}),
            (8, "CLIPTextEncode", {"text": "blurry, low quality"}, {"clip": (5, 1)}),
            (9, "ControlNetApplyAdvanced", {"strength": 1.0, "start_percent": 0.0, "end_percent": 1.0},
             {"positive": (7, 0), "negative": (8, 0), "control_net": (6, 0), "image": (4, 0), "vae": (5, 2)}),
            (10, "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1}, {}),
            (11, "KSampler", {"seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                              "denoise": 1.0},
             {"model": (5, 0), "positive": (9, 0), "negative": (9, 1), "latent_image": (10, 0)}),
            (12, "VAEDecode", {}, {"samples": (11, 0), "vae": (5, 2)}),
            (13, "SaveImage", {"filename_prefix": "marigold/controlnet"}, {"images": (12, 0)}),
            (14, "PreviewImage", {}, {"images": (4, 0)}),
        ]),
    "marigold_normals_side_by_side": (
        NOTE_MODELS + " This graph uses a normals model (left) and geometric normals from a depth model "
        "(right), side by side.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-normals-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldNormals", dict(SAMPLING, reduction="closest"), {"model": (2, 0), "image": (1, 0)}),
            (4, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (5, P + "MarigoldDepth", SAMPLING, {"model": (4, 0), "image": (1, 0)}),
            (6, P + "DepthToNormal", {"fov_degrees": 60.0, "far_over_near": 3.0}, {"depth": (5, 1)}),
            (7, "ImageStitch", {"direction": "right", "match_image_size": True, "spacing_width": 0,
                                "spacing_color": "white"}, {"image1": (3, 0), "image2": (6, 0)}),
            (8, "SaveImage", {"filename_prefix": "marigold/normals_side_by_side"}, {"images": (7, 0)}),
        ]),
    "marigold_video_depth": (
        NOTE_MODELS + " This graph: put a video in ComfyUI/input/ and pick it in Load Video. RollingDepth looks at "
        "snippets of frames together, so the depth does not flicker, and the whole clip gets ONE normalisation "
        "(0 = its nearest point). The depth video is saved at the input's frame rate, the 16-bit depth frames "
        "beside it. Long clips: lower processing_resolution or trim the video first (Trim Video).",
        [
            (1, "LoadVideo", {"file": "example.mp4"}, {}),
            (2, "GetVideoComponents", {}, {"video": (1, 0)}),
            (3, P + "LoadMarigold", {"checkpoint": "prs-eth/rollingdepth-v1-0", "dtype": "auto"}, {}),
            (4, P + "MarigoldVideoDepth", VIDEO, {"model": (3, 0), "frames": (2, 0)}),
            (5, P + "Colorize", {"preset": "custom", "colormap": "Spectral", "invert": False,
                                 "percentile_low": 0.0, "percentile_high": 100.0, "range": "whole batch"},
             {"depth": (4, 0)}),
            (6, "CreateVideo", {"fps": 30.0, "bit_depth": 8}, {"images": (5, 0), "fps": (2, 2)}),
            (7, "SaveVideo", {"filename_prefix": "marigold/video_depth", "format": "auto", "codec": "auto"},
             {"video": (6, 0)}),
            (8, P + "SaveDepth16", {"filename_prefix": "marigold/video_depth", "format": "png16"},
             {"depth": (4, 0)}),
        ]),
    "marigold_video_depth_controlnet_frames": (
        NOTE_MODELS + " This graph turns a video into depth frames ready for a depth ControlNet (grey, near = "
        "white, one range for the whole clip, so the control does not flicker): they are saved as numbered PNGs "
        "and as a video at the input's frame rate. Wire the Colorize output into your video model's ControlNet "
        "(e.g. AnimateDiff or a depth-controlled video model) in place of the Save nodes.",
        [
            (1, "LoadVideo", {"file": "example.mp4"}, {}),
            (2, "GetVideoComponents", {}, {"video": (1, 0)}),
            (3, P + "LoadMarigold", {"checkpoint": "prs-eth/rollingdepth-v1-0", "dtype": "auto"}, {}),
            (4, P + "MarigoldVideoDepth", VIDEO, {"model": (3, 0), "frames": (2, 0)}),
            (5, P + "Colorize", {"preset": "controlnet (gray, near = white)", "colormap": "gray", "invert": True,
                                 "percentile_low": 0.0, "percentile_high": 100.0, "range": "whole batch"},
             {"depth": (4, 0)}),
            (6, "SaveImage", {"filename_prefix": "marigold/controlnet_frames"}, {"images": (5, 0)}),
            (7, "CreateVideo", {"fps": 30.0, "bit_depth": 8}, {"images": (5, 0), "fps": (2, 2)}),
            (8, "SaveVideo", {"filename_prefix": "marigold/controlnet_frames", "format": "auto", "codec": "auto"},
             {"video": (7, 0)}),
        ]),
    "marigold_finetuned_checkpoint": (
        "A checkpoint written by `python -m train.finetune` is a folder in the diffusers layout: copy (or link) it "
        "to ComfyUI/models/marigold/my-finetune/ and pick marigold/my-finetune in LoadMarigold (the list is "
        "read when the node is drawn: press R to refresh). Put a photo in ComfyUI/input/.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "marigold/my-finetune", "dtype": "auto"}, {}),
            (3, P + "MarigoldDepth", SAMPLING, {"model": (2, 0), "image": (1, 0)}),
            (4, P + "Colorize", {"preset": "custom", "colormap": "Spectral", "invert": False,
                                 "percentile_low": 2.0, "percentile_high": 98.0, "range": "per image"},
             {"depth": (3, 1)}),
            (5, "SaveImage", {"filename_prefix": "marigold/finetuned_depth"}, {"images": (4, 0)}),
            (6, P + "SaveDepth16", {"filename_prefix": "marigold/finetuned_depth", "format": "npy"},
             {"depth": (3, 1)}),
        ]),
    "marigold_relief_3d_print": (
        NOTE_MODELS + " This graph: photo → depth → a 3D-printable bas-relief. Put a photo in ComfyUI/input/ and "
        "pick it in Load Image. DepthToRelief builds a watertight solid in millimetres (the Marigold demo's "
        "defaults: 100 mm longest side, 20 % embossing, 5 mm frame, 1 mm back plate); Save 3D Model writes "
        "ComfyUI/output/marigold/relief_00001_.stl for your slicer, Preview 3D shows it. Format glb or obj keeps "
        "the photo's colours.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldDepth", SAMPLING, {"model": (2, 0), "image": (1, 0)}),
            (4, P + "DepthToRelief", {"depth_near": "dark (Marigold)", "format": "stl", "size_mm": 100.0,
                                      "embossing": 20.0, "plane_near": 0.0, "plane_far": 1.0,
                                      "resolution_px": 512, "median_size": 3, "frame_mm": 5.0,
                                      "frame_near_mm": 1.0, "back_mm": 1.0, "batch_index": 0},
             {"depth": (3, 1), "image": (1, 0)}),
            (5, "Preview3D", {}, {"model_file": (4, 0)}),
            (6, "SaveGLB", {"filename_prefix": "marigold/relief"}, {"mesh": (4, 0)}),
        ]),
    "marigold_mesh_3d_scene": (
        NOTE_MODELS + " This graph: photo → depth → the scene as a coloured 3D mesh, seen from where the photo "
        "was taken. Put a photo in ComfyUI/input/ and pick it in Load Image. In DepthToMesh, set the camera's "
        "field of view and how deep the scene is (far_over_near); triangles across depth jumps are dropped "
        "(edge_threshold). Save 3D Model writes ComfyUI/output/marigold/scene_00001_.glb, Preview 3D shows it.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldDepth", SAMPLING, {"model": (2, 0), "image": (1, 0)}),
            (4, P + "DepthToMesh", {"depth_near": "dark (Marigold)", "format": "glb", "fov_degrees": 60.0,
                                    "far_over_near": 3.0, "edge_threshold": 0.04, "resolution_px": 1024,
                                    "batch_index": 0}, {"depth": (3, 1), "image": (1, 0)}),
            (5, "Preview3D", {}, {"model_file": (4, 0)}),
            (6, "SaveGLB", {"filename_prefix": "marigold/scene"}, {"mesh": (4, 0)}),
        ]),
}


def _spec_type(spec) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def _is_widget(t: str) -> bool:
    return t in WIDGET_TYPES or (t.startswith("COMFY_") and "COMBO" in t)  # V3 dynamic combos are widgets too


def _widget_value(name: str, nid: int, ntype: str, inp: str, spec, widgets: dict):
    if inp not in widgets:
        raise KeyError(f"{name}: node {nid} {ntype} needs a value for {inp}")
    value = widgets[inp]
    if _spec_type(spec).startswith("COMFY_"):  # a dynamic combo: the chosen option must add no widgets of its own
        option = next(o for o in spec[1]["options"] if o["key"] == value)
        if any(option["inputs"].get(k) for k in ("required", "optional")):
            raise KeyError(f"{name}: node {nid} {ntype}: option {value!r} of {inp} has inputs the generator does "
                           f"not lay out")
    return value


def build(name: str, object_info: dict) -> dict:
    note, spec = WORKFLOWS[name]
    nodes, links, link_id = [], [], 0
    out_links: dict[tuple[int, int], list[int]] = {}
    by_id = {}
    for order, (nid, ntype, widgets, inputs) in enumerate(spec):
        info = object_info[ntype]
        order_names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        node_inputs, values = [], []
        for inp in order_names:
            t = _spec_type(specs[inp])
            if _is_widget(t):  # a widget keeps its slot in widgets_values even when a link feeds it
                opts = specs[inp][1] if len(specs[inp]) > 1 else {}
                values.append(_widget_value(name, nid, ntype, inp, specs[inp], widgets) if inp not in inputs
                              else widgets.get(inp, opts.get("default")))
                if opts.get("control_after_generate") or (ntype == "KSampler" and inp == "seed"):
                    values.append("fixed")
                if opts.get("image_upload"):
                    values.append("image")
                if inp not in inputs:
                    continue
            if inp in inputs:
                link_id += 1
                src, slot = inputs[inp]
                links.append([link_id, src, slot, nid, len(node_inputs), t])
                out_links.setdefault((src, slot), []).append(link_id)
                node_inputs.append({"name": inp, "type": t, "link": link_id,
                                    **({"widget": {"name": inp}} if _is_widget(t) else {})})
            elif inp in info["input"].get("required", {}):
                raise KeyError(f"{name}: node {nid} {ntype} input {inp} is not connected")
        by_id[nid] = (info, ntype)
        nodes.append({"id": nid, "type": ntype, "pos": [60 + 340 * (order % 4), 80 + 360 * (order // 4)],
                      "size": [320, 260], "flags": {}, "order": order, "mode": 0, "inputs": node_inputs,
                      "outputs": [], "properties": {"Node name for S&R": ntype}, "widgets_values": values})
    for node in nodes:
        info, _ = by_id[node["id"]]
        node["outputs"] = [{"name": n, "type": t, "links": out_links.get((node["id"], i), []), "slot_index": i}
                           for i, (n, t) in enumerate(zip(info["output_name"], info["output"]))]
    note_id = max(n["id"] for n in nodes) + 1
    nodes.append({"id": note_id, "type": "Note", "pos": [60, -200], "size": [700, 160], "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [note], "color": "#432", "bgcolor": "#653"})
    return {"last_node_id": note_id, "last_link_id": link_id, "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


if __name__ == "__main__":
    oi = json.loads(Path(sys.argv[1]).read_text())
    out = Path(__file__).resolve().parents[1] / "workflows"
    out.mkdir(exist_ok=True)
    for wf in WORKFLOWS:
        (out / f"{wf}.json").write_text(json.dumps(build(wf, oi), indent=1) + "\n")
        print(out / f"{wf}.json")
