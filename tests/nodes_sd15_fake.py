"""Random-weight SD1.5 checkpoint and SD1.5 ControlNet files that ComfyUI's own loaders accept.

``python tests/nodes_sd15_fake.py CHECKPOINT.safetensors CONTROLNET.safetensors`` (in ComfyUI's venv).
ComfyUI recognises SD1.5 by its real architecture (320 base channels, 768-wide text context), so these are
full size (about 1.7 GB + 0.7 GB in fp16) with random weights: the graph runs, the picture is noise. The UNet
goes in as ComfyUI's single-file layout (diffusers keys renamed with ComfyUI's own key map, read from
``comfy.utils``, so nothing of it is copied here); the VAE and ControlNet in diffusers' layout, which ComfyUI's
loaders convert themselves.
"""

import os
import sys

import torch


def main(ckpt_path: str, controlnet_path: str) -> None:
    sys.path.insert(0, os.environ["COMFYUI_DIR"])
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.model_detection
    import comfy.utils
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    sd = {}
    unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64).half().state_dict()
    unet_config = comfy.model_detection.unet_config_from_diffusers_unet(unet)
    key_map = comfy.utils.unet_to_diffusers(unet_config)  # diffusers key → ComfyUI (ldm) key
    for k, v in unet.items():
        sd["model.diffusion_model." + key_map[k]] = v.contiguous()
    del unet
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512).half().state_dict()
    sd.update({"first_stage_model." + k: v.contiguous() for k, v in vae.items()})
    clip = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, projection_dim=768)).half().state_dict()
    sd.update({"cond_stage_model.transformer." + k: v.contiguous() for k, v in clip.items()})
    save_file(sd, ckpt_path)
    del sd
    cn = ControlNetModel(cross_attention_dim=768).half().state_dict()
    save_file({k: v.contiguous() for k, v in cn.items()}, controlnet_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
