"""The source of workflows/*.json (ComfyUI's UI format): ``python tests/nodes_workflows_src.py OBJECT_INFO.json``.

Each workflow is a short list of nodes (type, widget values by input name, links by (node, output slot)); the
UI JSON's ``widgets_values`` are laid out in the order the live ``/object_info`` gives, with the
``control_after_generate`` companion ("fixed") after seeds, as the front end saves them. Positions, sizes,
groups, the note and the saved view are computed (see ``layout``): a new entry needs no coordinates; a node may
carry a fifth element ``{"group": "..."}`` to choose its group. tests/test_workflows_browser.py checks in the real
page that each file opens fully visible.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

P = "MarigoldSuite_"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

SAMPLING = dict(denoising_steps=0, ensemble_size=1, processing_resolution=768, match_input_resolution=True,
                resample_method="bilinear", seed=0, batch_size=1)

VIDEO = dict(preset="fast", dilations="", snippet_length=-1, refine_steps=-1, processing_resolution=0, seed=0,
             temporal_strength=1.0,
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
    "marigold_video_stereo": (
        NOTE_MODELS + " This graph: a video → stereo 3D (side by side, for a VR player or a 3D TV). Put a video in "
        "ComfyUI/input/ and pick it in Load Video. MarigoldVideoDepth gives the clip ONE normalisation, so the 3D "
        "strength does not pump from frame to frame; DepthToStereo warps each frame for both eyes (nearer pixels "
        "win, what an eye sees behind an edge is filled from the background). divergence is the 3D strength "
        "(percent of the width, 0-2 is comfortable), convergence the depth on the screen plane. Saved at the "
        "input's frame rate. Long clips: lower processing_resolution or trim the video first (Trim Video).",
        [
            (1, "LoadVideo", {"file": "example.mp4"}, {}),
            (2, "GetVideoComponents", {}, {"video": (1, 0)}),
            (3, P + "LoadMarigold", {"checkpoint": "prs-eth/rollingdepth-v1-0", "dtype": "auto"}, {}),
            (4, P + "MarigoldVideoDepth", VIDEO, {"model": (3, 0), "frames": (2, 0)}),
            (5, P + "DepthToStereo", {"depth_near": "dark, inverse depth (RollingDepth video)",
                                      "layout": "side by side (full)", "divergence": 2.0, "convergence": 0.5,
                                      "far_over_near": 3.0, "balance": 0.0},
             {"image": (2, 0), "depth": (4, 0)}),
            (6, "CreateVideo", {"fps": 30.0, "bit_depth": 8}, {"images": (5, 0), "fps": (2, 2)}),
            (7, "SaveVideo", {"filename_prefix": "marigold/video_stereo", "format": "auto", "codec": "auto"},
             {"video": (6, 0)}),
        ]),
    "marigold_photo_anaglyph": (
        NOTE_MODELS + " This graph: a photo → a red-cyan anaglyph (Dubois), for red-cyan glasses. Put a photo in "
        "ComfyUI/input/ and pick it in Load Image. In DepthToStereo, layout also offers side by side, top-bottom "
        "and cross-eyed; divergence is the 3D strength (percent of the width), convergence the depth on the "
        "screen plane.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldDepth", SAMPLING, {"model": (2, 0), "image": (1, 0)}),
            (4, P + "DepthToStereo", {"depth_near": "dark (Marigold)", "layout": "anaglyph (red-cyan)",
                                      "divergence": 2.0, "convergence": 0.5, "far_over_near": 3.0, "balance": 0.0},
             {"image": (1, 0), "depth": (3, 1)}),
            (5, "SaveImage", {"filename_prefix": "marigold/anaglyph"}, {"images": (4, 0)}),
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
    "marigold_tiled_depth": (
        NOTE_MODELS + " This graph: a big photo → MarigoldTiledDepth → a depth map with the photo's detail, at its "
        "full size. Put a photo in ComfyUI/input/ and pick it in Load Image. A first pass at the processing "
        "resolution gives the structure; then overlapping tiles of that size over the photo at tile_factor × the "
        "processing resolution (2 at 768: 1536 px, about 6 tiles) add the detail: each tile is fitted to the first "
        "pass and only its fine detail is kept (the first pass keeps the structure), blended without seams. "
        "Time grows with the tiles, memory does not. SaveDepth16 writes the 16-bit "
        "PNG a displacement, relief or mesh needs; Colorize → Save Image the colour map.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-1", "dtype": "auto"}, {}),
            (3, P + "MarigoldTiledDepth", dict(SAMPLING, tile_factor=2.0, tile_overlap=192),
             {"model": (2, 0), "image": (1, 0)}),
            (4, "PreviewImage", {}, {"images": (3, 0)}),
            (5, P + "Colorize", {"preset": "custom", "colormap": "Spectral", "invert": False,
                                 "percentile_low": 0.0, "percentile_high": 100.0, "range": "per image"},
             {"depth": (3, 0)}),
            (6, "SaveImage", {"filename_prefix": "marigold/tiled_depth_color"}, {"images": (5, 0)}),
            (7, P + "SaveDepth16", {"filename_prefix": "marigold/tiled_depth", "format": "png16"},
             {"depth": (3, 0)}),
        ]),
    "marigold_metric_depth": (
        NOTE_MODELS + " This graph: a photo and sparse measured depth (a LiDAR sweep, a phone's depth sensor, SfM "
        "points) → depth in metres → the scene as a mesh in metres. Put the photo and its sparse depth in "
        "ComfyUI/input/ and pick them in Load Image and LoadSparseDepth: a 16-bit PNG in millimetres, or .npy / "
        ".exr in metres, the photo's size, 0 where unmeasured. No file? Unwire sparse and type distances you know "
        "in known_points (x,y,metres; ...). MarigoldDepthCompletion (Marigold-DC) steers the depth model towards "
        "the measurements at every step: 50 steps on a GPU, 10 on a CPU (slower than MarigoldDepth). Save 3D Model "
        "writes ComfyUI/output/marigold/metric_scene_00001_.glb in metres, SaveDepth16 the map in millimetres, "
        "Save Image the colour map with its metre scale.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadSparseDepth", {"file": "example_sparse.png"}, {}),
            (3, P + "LoadMarigold", {"checkpoint": "prs-eth/marigold-depth-v1-0", "dtype": "auto"}, {}),
            (4, P + "MarigoldDepthCompletion", {"known_points": "", "denoising_steps": 0, "ensemble_size": 1,
                                                "processing_resolution": 0, "seed": 0, "snap_to_points": True},
             {"model": (3, 0), "image": (1, 0), "sparse": (2, 0)}),
            (5, P + "DepthToMesh", {"depth_near": "dark (Marigold)", "format": "glb", "fov_degrees": 60.0,
                                    "far_over_near": 3.0, "edge_threshold": 0.04, "resolution_px": 1024,
                                    "batch_index": 0}, {"image": (1, 0), "metric": (4, 0)}),
            (6, "Preview3D", {}, {"model_file": (5, 0)}),
            (7, "SaveGLB", {"filename_prefix": "marigold/metric_scene"}, {"mesh": (5, 0)}),
            (8, "SaveImage", {"filename_prefix": "marigold/metric_depth"}, {"images": (4, 2)}),
            (9, P + "SaveDepth16", {"filename_prefix": "marigold/metric_depth", "format": "png16"},
             {"metric": (4, 0)}),
        ]),
    "marigold_segment_inpaint": (
        NOTE_MODELS + " This graph: photo + word → mask → inpaint. MarigoldSegment masks what the prompt names "
        "(pcuenq/marigold-coco-segmentation downloads into models/marigold/ with the Stable Diffusion 2 parts it "
        "needs); ComfyUI's own VAE Encode (for Inpainting) then lets the sampler repaint only the masked object. "
        "It also needs a Stable Diffusion 1.5 checkpoint in ComfyUI/models/checkpoints/ (e.g. "
        "v1-5-pruned-emaonly.safetensors; an inpainting checkpoint such as sd-v1-5-inpainting blends better). "
        "Put a photo in ComfyUI/input/ and pick it in Load Image.",
        [
            (1, "LoadImage", {"image": "example.png"}, {}),
            (2, P + "LoadMarigold", {"checkpoint": "pcuenq/marigold-coco-segmentation", "dtype": "auto"}, {}),
            (3, P + "MarigoldSegment", dict(prompt="car", threshold=0.93, clean=True, tone_down_white=True,
                                            **dict(SAMPLING, processing_resolution=512)),
             {"model": (2, 0), "image": (1, 0)}),
            (4, "MaskToImage", {}, {"mask": (3, 0)}),
            (5, "PreviewImage", {}, {"images": (4, 0)}),
            (6, "CheckpointLoaderSimple", {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}, {}, {"group": "Inpainting (SD 1.5)"}),
            (7, "CLIPTextEncode", {"text": "a red vintage sports car, detailed, photo"}, {"clip": (6, 1)}, {"group": "Inpainting (SD 1.5)"}),
            (8, "CLIPTextEncode", {"text": "blurry, low quality"}, {"clip": (6, 1)}, {"group": "Inpainting (SD 1.5)"}),
            (9, "VAEEncodeForInpaint", {"grow_mask_by": 6},
             {"pixels": (1, 0), "vae": (6, 2), "mask": (3, 0)}),
            (10, "KSampler", {"seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                              "denoise": 1.0},
             {"model": (6, 0), "positive": (7, 0), "negative": (8, 0), "latent_image": (9, 0)}, {"group": "Inpainting (SD 1.5)"}),
            (11, "VAEDecode", {}, {"samples": (10, 0), "vae": (6, 2)}, {"group": "Inpainting (SD 1.5)"}),
            (12, "SaveImage", {"filename_prefix": "marigold/inpainted"}, {"images": (11, 0)}),
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


# --- layout -------------------------------------------------------------------------------------------------------
# Left to right in data-flow order, in groups, with the note at the left, as ComfyUI's own templates are laid out;
# fully automatic, so a new WORKFLOWS entry needs no coordinates. A node's group is the optional fifth element of
# its spec ({"group": "..."}), else found from its type (GROUP_OF_TYPE, then the rules in group_of).

GROUP_ORDER = ("Marigold", "ControlNet", "Output")  # left to right; other group names follow in order of appearance
GROUP_COLORS = {"Marigold": "#3f789e", "ControlNet": "#8A8", "Output": "#b58b2a"}
GROUP_OF_TYPE = {t: "ControlNet" for t in (
    "CheckpointLoaderSimple", "ControlNetLoader", "CLIPTextEncode", "ControlNetApplyAdvanced", "EmptyLatentImage",
    "KSampler", "VAEDecode")}
GAP_X, GAP_Y = 60, 40  # between columns, between the nodes of a column (plus the title bar)
GROUP_PAD, GROUP_TITLE = 12, 40  # a group's margin around its nodes and its title bar
TITLE_H, SLOT_H, WIDGET_H = 30, 22, 26  # LiteGraph's node title, slot row and widget row heights
PREVIEW_H = 280  # image previews under LoadImage / SaveImage / PreviewImage
# nodes that draw a preview under their widgets: an image, a video, or (Preview 3D, Save 3D Model) a 3D viewer
IMAGE_NODES = {"LoadImage", "SaveImage", "PreviewImage", "LoadVideo", "SaveVideo", "Preview3D", "SaveGLB"}
VIEW = (1600, 1000)  # the window the workflow must open fully visible in (at the saved view, extra.ds)
VIEW_MARGIN = (80, 110, 40, 40)  # left (side bar), top (tabs, Run bar), right, bottom: screen pixels, frontend 1.47


def group_of(ntype: str, tags: dict | None = None) -> str:
    if tags and tags.get("group"):
        return tags["group"]
    if ntype in GROUP_OF_TYPE:
        return GROUP_OF_TYPE[ntype]
    bare = ntype[len(P):] if ntype.startswith(P) else ntype
    return "Output" if bare.startswith(("Save", "Preview")) else "Marigold"


def node_size(ntype: str, n_inputs: int, n_outputs: int, n_widgets: int) -> list[int]:
    """A size at least what the front end computes for the node, so that nothing is drawn over its neighbour."""
    width = 300 if ntype.startswith(P) or ntype in IMAGE_NODES else 270
    height = max(n_inputs, n_outputs) * SLOT_H + n_widgets * WIDGET_H + 12
    if ntype in IMAGE_NODES:
        height += PREVIEW_H
    return [width, height]


def layout(nodes: list[dict], links: list[list], groups_of: dict[int, str]) -> tuple[list[dict], list[float]]:
    """Set every node's ``pos``; returns the groups and the bounding box [x0, y0, x1, y1] of everything.

    Columns are graph depth (the longest path of links from a first node); a node without inputs sits in the
    column just before its first consumer, and output nodes (group "Output", nothing downstream) in one last
    column. Each group is a band of rows over its columns; a group shares a band with earlier ones where their
    columns do not overlap, else it opens a new band below. The output column is top-aligned at the right.
    """
    ids = [n["id"] for n in nodes]
    by_id = {n["id"]: n for n in nodes}
    srcs: dict[int, list[int]] = {i: [] for i in ids}
    dsts: dict[int, list[int]] = {i: [] for i in ids}
    for _, src, _, dst, _, _ in links:
        srcs[dst].append(src)
        dsts[src].append(dst)
    depth: dict[int, int] = {}

    def longest(i: int) -> int:
        if i not in depth:
            depth[i] = 1 + max(map(longest, srcs[i])) if srcs[i] else 0
        return depth[i]

    col = {i: longest(i) for i in ids}
    for i in sorted(ids, key=lambda i: -col[i]):  # first nodes move right, next to what they feed
        if not srcs[i] and dsts[i]:
            col[i] = max(0, min(col[d] for d in dsts[i]) - 1)
    sinks = [i for i in ids if groups_of[i] == "Output" and not dsts[i]]
    last = max([col[i] for i in ids if i not in sinks] or [0]) + 1
    for i in sinks:
        col[i] = last
    widths = {c: max(by_id[i]["size"][0] for i in ids if col[i] == c) for c in set(col.values())}
    xs, x = {}, 0
    for c in sorted(widths):
        xs[c], x = x, x + widths[c] + GAP_X

    names = list(dict.fromkeys([g for g in GROUP_ORDER if g in groups_of.values()] + list(groups_of.values())))
    bands: list[list[str]] = []  # group names per band
    span = {g: {col[i] for i in ids if groups_of[i] == g} for g in names}
    for g in names:
        if g == "Output" and all(i in sinks for i in ids if groups_of[i] == g):
            continue
        for band in bands:
            if not any(span[g] & span[h] for h in band):
                band.append(g)
                break
        else:
            bands.append([g])
    placed: dict[int, float] = {}

    def stack(members: list[int], top: float) -> float:
        """Place ``members`` column by column from ``top``, beside what feeds them; returns the bottom."""
        bottom = top
        for c in sorted({col[i] for i in members}):
            column = [i for i in members if col[i] == c]

            def barycenter(i: int) -> float:
                ys = [placed[s] for s in srcs[i] if s in placed]
                return sum(ys) / len(ys) if ys else -1.0

            column.sort(key=lambda i: (barycenter(i), ids.index(i)))
            y = top
            for i in column:
                by_id[i]["pos"] = [xs[c], y]
                placed[i] = y
                y += by_id[i]["size"][1] + TITLE_H + GAP_Y
            bottom = max(bottom, y - GAP_Y)
        return bottom

    def group_box(g: str) -> dict:
        members = [i for i in ids if groups_of[i] == g]
        x0 = min(by_id[i]["pos"][0] for i in members) - GROUP_PAD
        y0 = min(by_id[i]["pos"][1] for i in members) - TITLE_H - GROUP_TITLE
        x1 = max(by_id[i]["pos"][0] + by_id[i]["size"][0] for i in members) + GROUP_PAD
        y1 = max(by_id[i]["pos"][1] + by_id[i]["size"][1] for i in members) + GROUP_PAD
        return {"title": g, "bounding": [x0, y0, x1 - x0, y1 - y0], "color": GROUP_COLORS.get(g, "#444"),
                "font_size": 24, "flags": {}}

    top = 0.0
    for band in bands:
        bottom = top
        for g in band:
            bottom = max(bottom, stack([i for i in ids if groups_of[i] == g], top))
        top = bottom + GROUP_TITLE + 2 * GROUP_PAD + GAP_Y
    stack(sinks, 0.0)
    groups = [dict(id=k + 1, **group_box(g)) for k, g in enumerate(names)]
    box = [min(g["bounding"][0] for g in groups), min(g["bounding"][1] for g in groups),
           max(g["bounding"][0] + g["bounding"][2] for g in groups),
           max(g["bounding"][1] + g["bounding"][3] for g in groups)]
    return groups, box


MINIMAP = (270, 270)  # frontend 1.47's minimap (shown by default): width, height at the bottom right
# below this zoom frontend 1.47 draws nodes as plain boxes, without titles or widgets: its threshold is
# LiteGraph.Canvas.MinFontSizeForLOD (8 px) / (NODE_TEXT_SIZE 14 · sqrt(devicePixelRatio)) = 0.571 on a 1× screen
READABLE = 0.6


def fit_view(box: list[float], nodes: list[dict]) -> dict:
    """The saved view (``extra.ds``) that shows ``box`` whole in a VIEW-sized window: screen = (pos + offset) ·
    scale; the largest scale at which some placement (centred, else top-aligned, else at the top left of the free
    area) keeps every node clear of the minimap. Never below READABLE: the front end draws nodes without their
    text below that zoom, so a workflow that cannot be shown whole and readable is an error here."""
    left, top, right, bottom = VIEW_MARGIN
    w, h = VIEW[0] - left - right, VIEW[1] - top - bottom
    bw, bh = box[2] - box[0], box[3] - box[1]

    def covered(scale: float, offset: list[float]) -> bool:
        mx, my = VIEW[0] - MINIMAP[0], VIEW[1] - MINIMAP[1]
        return any((n["pos"][0] + n["size"][0] + offset[0]) * scale > mx
                   and (n["pos"][1] + n["size"][1] + offset[1]) * scale > my for n in nodes)

    scale = float(int(min(1.0, w / bw, h / bh) * 1000)) / 1000  # rounded down: never a pixel too big
    while scale >= READABLE:
        sx, sy = (w - bw * scale) / 2, (h - bh * scale) / 2  # the free space either side when centred
        for dx, dy in ((sx, sy), (sx, 0.0), (0.0, 0.0)):  # centred, top-aligned, top left
            offset = [(left + dx) / scale - box[0], (top + dy) / scale - box[1]]
            if not covered(scale, offset):
                return {"scale": scale, "offset": [round(offset[0], 1), round(offset[1], 1)]}
        scale = round(scale - 0.005, 3)
    raise ValueError(f"the workflow ({bw:.0f}×{bh:.0f}) cannot be shown whole and clear of the minimap at a zoom of "
                     f"{READABLE} or more in a {VIEW[0]}×{VIEW[1]} window: lay it out more compactly")


def build(name: str, object_info: dict) -> dict:
    note, spec = WORKFLOWS[name]
    nodes, links, link_id = [], [], 0
    out_links: dict[tuple[int, int], list[int]] = {}
    by_id = {}
    groups_of: dict[int, str] = {}
    for order, (nid, ntype, widgets, inputs, *tags) in enumerate(spec):
        info = object_info[ntype]
        order_names = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        node_inputs, values = [], []
        n_widgets = 0
        for inp in order_names:
            t = _spec_type(specs[inp])
            if _is_widget(t):  # a widget keeps its slot in widgets_values even when a link feeds it
                opts = specs[inp][1] if len(specs[inp]) > 1 else {}
                values.append(_widget_value(name, nid, ntype, inp, specs[inp], widgets) if inp not in inputs
                              else widgets.get(inp, opts.get("default")))
                if inp not in inputs:  # a linked widget is drawn as an input slot, not a widget row
                    n_widgets += 4 if opts.get("multiline") else 1  # a text box is four rows high
                if opts.get("control_after_generate") or (ntype == "KSampler" and inp == "seed"):
                    values.append("fixed")
                    n_widgets += 1
                if opts.get("image_upload"):
                    values.append("image")
                    n_widgets += 1
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
        groups_of[nid] = group_of(ntype, tags[0] if tags else None)
        nodes.append({"id": nid, "type": ntype, "pos": None,
                      "size": node_size(ntype, len(node_inputs), len(info["output"]), n_widgets), "flags": {},
                      "order": order, "mode": 0, "inputs": node_inputs, "outputs": [],
                      "properties": {"Node name for S&R": ntype}, "widgets_values": values})
    for node in nodes:
        info, _ = by_id[node["id"]]
        node["outputs"] = [{"name": n, "type": t, "links": out_links.get((node["id"], i), []), "slot_index": i}
                           for i, (n, t) in enumerate(zip(info["output_name"], info["output"]))]
    groups, box = layout(nodes, links, groups_of)
    # the note: left-aligned, as wide as the groups (the graphs are wider than high); above them, unless a taller
    # column further right (the outputs) leaves room for it below the groups it would sit under: there it costs no
    # height, which keeps the graph readable on opening (fit_view's READABLE)
    note_id = max(n["id"] for n in nodes) + 1
    width = max(500.0, min(900.0, box[2] - box[0]))
    lines = sum(1 + int(len(par) * 7.5 // (width - 30)) for par in note.split("\n"))
    note_size = [width, 30 + 22 * lines]
    under = max(g["bounding"][1] + g["bounding"][3] for g in groups if g["bounding"][0] < box[0] + width)
    if under + 40 + TITLE_H + note_size[1] <= box[3]:
        note_pos = [box[0], under + 40 + TITLE_H]
    else:
        note_pos = [box[0], box[1] - note_size[1] - 40]
    nodes.append({"id": note_id, "type": "MarkdownNote", "pos": note_pos, "size": note_size, "flags": {},
                  "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                  "widgets_values": [note], "color": "#222", "bgcolor": "#000"})
    box = [box[0], min(box[1], note_pos[1] - TITLE_H), box[2], box[3]]
    return {"last_node_id": note_id, "last_link_id": link_id, "nodes": nodes, "links": links, "groups": groups,
            "config": {}, "extra": {"ds": fit_view(box, nodes)}, "version": 0.4}


if __name__ == "__main__":
    oi = json.loads(Path(sys.argv[1]).read_text())
    out = Path(__file__).resolve().parents[1] / "workflows"
    out.mkdir(exist_ok=True)
    for wf in WORKFLOWS:
        (out / f"{wf}.json").write_text(json.dumps(build(wf, oi), indent=1) + "\n")
        print(out / f"{wf}.json")
