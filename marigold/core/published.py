"""What is known of checkpoints by name and by pipeline class, beyond their own files: the published repos, the
facts their hub files leave out, the ones refused (with the line the user reads), and the pipeline classes' tasks
and video models."""

from __future__ import annotations

from typing import Any

from .lotus import LOTUS_REPOS

PUBLISHED = (
    "prs-eth/marigold-depth-v1-1",
    "prs-eth/marigold-normals-v1-1",
    "prs-eth/marigold-iid-appearance-v1-1",
    "prs-eth/marigold-iid-lighting-v1-1",
    "prs-eth/marigold-depth-lcm-v1-0",
    "prs-eth/rollingdepth-v1-0",
    "prs-eth/marigold-depth-v1-0",
    "GonzaloMG/marigold-e2e-ft-depth",
    "GonzaloMG/marigold-e2e-ft-normals",
    "pcuenq/marigold-coco-segmentation",
    *LOTUS_REPOS,
)
# What the hub files of the older or third-party checkpoints say (model_index.json, scheduler/scheduler_config.json),
# and what they leave out. ``inspect`` fills a field from here only where the folder's model_index.json has none.
PUBLISHED_FACTS: dict[str, dict[str, Any]] = {
    # The paper's model (Ke et al., CVPR 2024). model_index.json: "MarigoldPipeline" (prs-eth/Marigold's own
    # class), no prediction_type and no default steps; scheduler: DDIMScheduler, v_prediction, no timestep_spacing
    # (diffusers' default, "leading"). The paper samples 50 DDIM steps with an ensemble of 10; that default is not
    # in the hub files, so it is not set here (diffusers' fallback applies).
    "prs-eth/marigold-depth-v1-0": {"task": "depth", "prediction_type": "depth"},
    # End-to-end fine-tuned Marigold (Garcia et al., "Fine-Tuning Image-Conditional Diffusion Models is Easier
    # than You Think", 2024). model_index.json: "StableDiffusionPipeline" (no Marigold fields at all, hence the
    # task here); scheduler: DDIMScheduler, v_prediction, timestep_spacing "trailing". One step (t = 999) is the
    # paper's protocol (deterministic: the model was trained for that single step); not in the hub files.
    "GonzaloMG/marigold-e2e-ft-depth": {"task": "depth", "prediction_type": "depth", "default_denoising_steps": 1},
    # Same authors and protocol for normals. Its model_index.json and scheduler_config.json were not found in our
    # search, so the pipeline class and scheduler are read from the files at load time and nothing else is
    # assumed; the task is the repo's name and the single step the paper's protocol.
    "GonzaloMG/marigold-e2e-ft-normals": {"task": "normals", "prediction_type": "normals",
                                          "default_denoising_steps": 1},
    # Cocogold (Pedro Cuenca, "cocogold: training Marigold for text-grounded object segmentation", 2025): text-grounded
    # segmentation, the prompt a bare COCO class name. VERIFIED in the training code (pcuenca/Marigold, branch
    # cocogold): only the UNet is saved (conv_in widened to 8 channels); inference takes the VAE, scheduler,
    # tokenizer and text encoder from stabilityai/stable-diffusion-2 (cocogold-inference.ipynb builds the pipeline
    # as ``MarigoldPipeline.from_pretrained(sd2, unet=unet)``); the prompt embedding enters the UNet's
    # cross-attention; validation sampled 50 DDIM steps with an ensemble of 1; training crops were 512².
    # ASSUMED (the hub repo's file list was not read here): the UNet is at unet/ or at the top level, in
    # safetensors; whether it has a model_index.json is unknown (if it has one, its keys win over these);
    # processing at 512 px (the training crop size) is our choice, not the author's statement.
    "pcuenq/marigold-coco-segmentation": {"task": "segmentation", "prediction_type": "segmentation",
                                          "default_denoising_steps": 50, "default_processing_resolution": 512,
                                          "base": "stabilityai/stable-diffusion-2"},
    # Lotus (marigold.core.lotus): their files do not say what a checkpoint predicts; the README's table does
    **{repo: {"task": "normals" if ptype == "normals" else "depth", "prediction_type": ptype}
       for repo, ptype in LOTUS_REPOS.items()},
}
# Published checkpoints we recognise and refuse, with the line the user reads. What is known of the HR model
# (third-party notes; its pipeline.py is not available to us): model_index.json names MarigoldDepthHRPipeline,
# which diffusers does not have; that pipeline runs a base pass with prs-eth/marigold-depth-v1-1 at 768 px
# (ensemble 10, 10 steps), then a "boosted" pass over 768-px patches with a second UNet (``boosting_unet``;
# ensemble 5, 10 steps), x2 upscale by default, up to about 4 MP. How the boosting UNet is conditioned (its input
# channels: the patch latent, the base prediction's latent, anything else) is not known, so it is not guessed at.
HR_HINT = ("for high resolution with any Marigold checkpoint, tile instead: --tile (CLI), "
           "marigold.tiling.predict_tiled, or the MarigoldTiledDepth node (docs/tiling.md)")
UNSUPPORTED: dict[str, str] = {
    "prs-eth/marigold-depth-hr-v1-1": (
        "prs-eth/marigold-depth-hr-v1-1 needs its own MarigoldDepthHRPipeline (a base pass, then a second "
        "'boosting' UNet over 768-px patches whose inputs are not published), which this package does not run; "
        + HR_HINT + "."),
}
UNSUPPORTED_CLASSES = {"MarigoldDepthHRPipeline": "prs-eth/marigold-depth-hr-v1-1"}

PIPELINE_TASKS = {  # model_index _class_name → task
    "MarigoldDepthPipeline": "depth",
    "MarigoldPipeline": "depth",  # prs-eth/Marigold's own pipeline class (v1-0 checkpoints)
    "MarigoldNormalsPipeline": "normals",
    "MarigoldIntrinsicsPipeline": "intrinsics",
    "RollingDepthPipeline": "depth",  # video depth (Ke et al., CVPR 2025); see VIDEO_MODELS
    # our name for a text-grounded segmentation checkpoint (what train.finetune --task segmentation writes, and what
    # a UNet-only folder plus an SD2 base is composed into); diffusers has no such pipeline
    "MarigoldSegmentationPipeline": "segmentation",
}
# Checkpoints whose UNet runs on snippets of frames with self-attention across them (marigold.core.snippet). Their
# model_index.json carries no Marigold keys; what their pipeline does instead (prs-eth/RollingDepth rollingdepth/rollingdepth_pipeline.py):
# inverse depth ("disparity": near = high, affine-invariant), one DDIM step from t = 999 (``init_infer_steps=[1]``
# in run_video.py), 768 px (run_video.py's default ``res``, the "fast" preset).
VIDEO_MODELS = {"RollingDepthPipeline": {"prediction_type": "disparity", "default_denoising_steps": 1,
                                         "default_processing_resolution": 768}}
