r"""Fine-tune Stable Diffusion 2 (or continue a Marigold model) into a Marigold depth / normals model.

    python -m train.finetune --base stabilityai/stable-diffusion-2 --data synthetic --output runs/demo \
        --max-steps 1000 --batch-size 2 --resolution 256 --seed 0 [--config FILE] [--resume]
    accelerate launch --num_processes 8 -m train.finetune --config train/configs/marigold_depth.yaml ...

Three modes (``mode``):

- ``diffusion`` (Marigold, Ke et al. 2024): the image latent and the noised target latent enter the UNet
  together; DDPM noise schedule with 1000 steps, a uniformly drawn timestep per sample, multi-resolution noise
  with annealing, v-prediction (or epsilon), MSE in latent space over the latent pixels whose 8×8 footprint is
  valid.
- ``e2e`` (Garcia et al. 2024, "Fine-Tuning Image-Conditional Diffusion Models is Easier than You Think"): one
  step at t = 999 from the noise the sampler starts with, the predicted clean latent decoded by the frozen VAE,
  and a task loss on the decoded prediction: affine-invariant L1 for depth, angular for normals.
- ``snippet`` (RollingDepth, Ke et al. 2024, arXiv 2411.19189): samples of n frames (default 3) of a video at a
  random dilation, ONE inverse-depth normalisation per snippet, self-attention across the snippet's frames
  (:mod:`marigold.core.snippet`), one noise and one timestep per snippet; objective ``snippet.objective``:
  ``diffusion`` (default, as above, on the zero-terminal-SNR betas RollingDepth's scheduler uses) or ``e2e``
  (one step, affine-invariant L1 fitted per snippet). Writes the RollingDepth folder layout.

Every run writes ``OUTPUT/checkpoints/step-N/`` (complete Marigold folders + training state, atomically, the
last K kept), ``OUTPUT/final/`` and ``OUTPUT/tensorboard/``.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpointing as cp
from .base import export_marigold, export_rollingdepth, in_memory_model, load_base, noise_scheduler_config
from .config import dumps, parse
from .data import StreamSampler, make_stream, parse_spec
from .ema import EMA
from .losses import affine_invariant_l1, angular, latent_mask, masked_mse, target_weights, weighted_target_mse
from .noise import training_noise
from marigold.errors import MarigoldError
from marigold.optional import require


def lr_lambda(warmup: int, decay: int, final_ratio: float):
    """Linear warm-up over ``warmup`` steps, then exponential decay from 1 to ``final_ratio`` at step ``decay``,
    constant after (Marigold's ``IterExponential``: 100 warm-up steps, 0.01 at 25 000 steps)."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if decay <= warmup:
            return 1.0
        return final_ratio ** ((min(step, decay) - warmup) / (decay - warmup))

    return f


def step_generator(seed: int, micro: int, rank: int) -> torch.Generator:
    """The CPU generator of one micro-step: a pure function of (seed, micro-batch, rank), so a resumed run
    draws the same timesteps and noise as an uninterrupted one."""
    # shifted as a Python int: numpy < 2 refuses uint64 >> int (no safe common type before NEP 50)
    s = int(np.random.SeedSequence([seed, micro, rank, 4]).generate_state(1, dtype=np.uint64)[0]) >> 1
    return torch.Generator("cpu").manual_seed(s)


def seed_everything(seed: int) -> None:
    torch.set_flush_denormal(True)  # CPU: denormal floats from decaying weights slow convolutions ~10×
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: dict):
        from accelerate import Accelerator
        from diffusers import DDPMScheduler

        self.cfg = cfg
        # several processes and no CUDA: accelerate only sets up gloo DDP when told the run is CPU-only
        cpu_ddp = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.acc = Accelerator(mixed_precision=cfg["mixed_precision"], cpu=cpu_ddp)
        self.output = Path(cfg["output"])
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        seed_everything(cfg["seed"] + self.rank)

        from marigold.core.modality import get as get_modality

        self.snippet = cfg["mode"] == "snippet"
        self.modality = get_modality(cfg["task"])
        from .evaluate import evaluation_for

        self.evaluation = evaluation_for(self.modality)  # how validation scores it; a bad hook fails before training
        if self.snippet and not self.modality.video:
            raise SystemExit("--mode snippet trains video depth; --task must be depth.")
        self.target_weights = target_weights(cfg["e2e"].get("target_weights"), self.modality.target_names)
        self.base = load_base(cfg["base"], cfg["task"], cfg["cache_dir"])
        self.noise_cfg = noise_scheduler_config(self.base, cfg)
        if self.snippet:
            # RollingDepth's published scheduler is zero-terminal-SNR v-prediction; train on what it will run
            if self.noise_cfg["prediction_type"] != "v_prediction":
                raise SystemExit("--mode snippet writes RollingDepth's v-prediction scheduler; keep "
                                 "noise_scheduler.prediction_type: v_prediction.")
            self.noise_cfg["rescale_betas_zero_snr"] = True
        self.sched = DDPMScheduler(**self.noise_cfg, clip_sample=False)
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg["mixed_precision"], torch.float32)
        dev = self.acc.device
        self.base.vae.to(dev) if self.weight_dtype == torch.float32 else self.base.vae.to(dev, self.weight_dtype)
        self.sf = float(self.base.vae.config.scaling_factor)
        self.text = self.base.empty_text_embedding.to(dev, self.weight_dtype)  # [1,T,D]
        self.prompts: dict[str, torch.Tensor] = {}  # prompt modalities: class name → [1,77,D], each class of the data

        unet = self.base.unet
        # frames the UNet, the noise and the loss treat as one snippet (1: every frame alone); the stream samples
        # snippet.frames frames either way, so snippet.joint: false sees the very frames a snippet model sees
        self.frames = int(cfg["snippet"]["frames"]) if self.snippet and cfg["snippet"]["joint"] else 1
        if self.snippet:
            from marigold.core.snippet import enable_snippet_attention

            enable_snippet_attention(unet)  # weights unchanged: only the self-attention's token set grows
        if cfg["gradient_checkpointing"]:
            unet.enable_gradient_checkpointing()
        unet.train().requires_grad_(True)
        o = cfg["optimizer"]
        self.optimizer = torch.optim.AdamW(unet.parameters(), lr=cfg["lr"], betas=(o["beta1"], o["beta2"]),
                                           eps=o["eps"], weight_decay=o["weight_decay"])
        ls = cfg["lr_schedule"]
        self.lr_sched = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(ls["warmup_steps"], ls["decay_steps"], ls["final_ratio"]))
        self.ema = EMA(unet, cfg["ema"]["decay"]) if cfg["ema"]["enabled"] else None
        self.step = 0
        self.resumed_from = None
        if cfg["resume"]:
            self._resume(unet)
        unet.to(dev)
        if self.ema is not None:
            self.ema.shadow = {k: v.to(dev) for k, v in self.ema.shadow.items()}
        self.unet, self.optimizer = self.acc.prepare(unet, self.optimizer)

        if self.snippet:
            from .data.video import make_snippet_stream

            sn = cfg["snippet"]
            self.stream = make_snippet_stream(cfg["data"], cfg["resolution"], cfg["batch_size"], cfg["seed"],
                                              cfg["flip_p"], int(sn["frames"]), int(sn["max_dilation"]), sn["space"],
                                              bool(sn["joint"]))
        else:
            seg = cfg["segmentation"]
            if self.modality.conditioning == "prompt" and seg["classes"]:  # the prompts to train on
                cfg["data"] = [{**parse_spec(d), "classes": list(seg["classes"])} for d in cfg["data"]]
            self.stream = make_stream(cfg["data"], cfg["resolution"], cfg["batch_size"], cfg["seed"], cfg["task"],
                                      cfg["flip_p"], cfg.get("augment"), seg["target"])
            if self.modality.conditioning == "prompt":  # the frozen text encoder runs once, on every class name
                from marigold.core.prompts import encode_prompts

                names = sorted({c for ds in self.stream.datasets for c in ds.classes})
                self.prompts = {k: v.to(dev, self.weight_dtype) for k, v in
                                encode_prompts(self.base.folder, names, cfg["cache_dir"]).items()}
        self.writer = None
        if self.acc.is_main_process:
            SummaryWriter = require("torch.utils.tensorboard", "train", "Training logs").SummaryWriter

            self.output.mkdir(parents=True, exist_ok=True)
            (self.output / "config.json").write_text(dumps(cfg), encoding="utf-8")
            self.writer = SummaryWriter(str(self.output / "tensorboard"))

    # ------------------------------------------------------------------ state

    def _resume(self, unet: torch.nn.Module) -> None:
        folder = cp.latest(self.output)
        if folder is None:
            print(f"--resume: no checkpoint in {self.output / 'checkpoints'}; starting from the base.", flush=True)
            return
        st = cp.read_state(folder)
        if st["unet_live"] is not None:
            unet.load_state_dict(st["unet_live"])
        else:
            from safetensors.torch import load_file

            unet.load_state_dict(load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors")))
        self.optimizer.load_state_dict(st["optimizer"])
        self.lr_sched.load_state_dict(st["lr_scheduler"])
        if self.ema is not None and st["ema"] is not None:
            self.ema.load_state_dict(st["ema"])
        rng = folder / cp.STATE / f"rng-rank{self.rank}.pt"
        if rng.is_file():
            cp.load_rng(rng)
        self.step = int(st["step"])
        self.resumed_from = folder
        if self.acc.is_main_process:
            print(f"resumed from {folder} at step {self.step}", flush=True)

    @property
    def raw_unet(self) -> torch.nn.Module:
        return self.acc.unwrap_model(self.unet)

    def default_steps(self) -> int:
        return 1 if self.cfg["mode"] == "e2e" else 4

    def _export(self, out: Path, unet: torch.nn.Module) -> None:
        if self.snippet:
            export_rollingdepth(out, self.base, unet, self.noise_cfg)
        else:
            export_marigold(out, self.base, unet, self.noise_cfg, self.cfg["task"], self.cfg["export"],
                            self.default_steps())

    def frames_context(self):
        """Inside: the UNet reads its batch as snippets of ``self.frames`` frames (a no-op outside snippet
        mode). The backward pass runs inside too, so a checkpointed forward is recomputed with the same n."""
        if not self.snippet:
            return _null()
        from marigold.core.snippet import snippet_frames

        return snippet_frames(self.raw_unet, self.frames)

    def save_checkpoint(self) -> None:
        acc, cfg = self.acc, self.cfg
        tmp = cp.temp_dir(self.output, self.step)
        unet = self.raw_unet
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            live = None
            if self.ema is not None:
                live = {k: v.detach().cpu() for k, v in unet.state_dict().items()}
                self.ema.swap(unet)
            try:
                self._export(tmp, unet)
            finally:
                if self.ema is not None:
                    self.ema.swap(unet)
        acc.wait_for_everyone()
        (tmp / cp.STATE).mkdir(parents=True, exist_ok=True)
        cp.save_rng(tmp / cp.STATE / f"rng-rank{self.rank}.pt")
        acc.wait_for_everyone()
        if acc.is_main_process:
            state = {"step": self.step, "micro_batches": self.step * cfg["grad_accum"], "world_size": self.world,
                     "config": cfg}
            ema_state = None
            if self.ema is not None:
                ema_state = {k: v.detach().cpu() for k, v in self.ema.state_dict().items()}
            cp.write_state(tmp, state, self.optimizer.state_dict(), self.lr_sched.state_dict(), ema_state, live)
            cp.commit(self.output, tmp, self.step, cfg["keep_last"])
        acc.wait_for_everyone()

    def export_final(self) -> Path | None:
        final = self.output / "final"
        if self.acc.is_main_process:
            tmp = self.output / ".tmp-final"
            shutil.rmtree(tmp, ignore_errors=True)
            unet = self.raw_unet
            if self.ema is not None:
                self.ema.swap(unet)
            try:
                self._export(tmp, unet)
            finally:
                if self.ema is not None:
                    self.ema.swap(unet)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        self.acc.wait_for_everyone()
        return final

    # ------------------------------------------------------------------ the loss

    def loss(self, batch: dict, gen: torch.Generator) -> torch.Tensor:
        dev, dt = self.acc.device, self.weight_dtype
        n = self.frames
        if self.snippet:  # [B,n,…] snippets → [B·n,…] frames, snippet-major (what snippet_frames expects)
            batch = {k: v.flatten(0, 1) for k, v in batch.items()}
        rgb = batch["rgb"].to(dev, dt)  # [B,3,H,W] -1..1 (B = snippets × n in snippet mode)
        target = batch["target"].to(dev, dt)  # [B,3·T,H,W] -1..1: the modality's T targets stacked
        valid = batch["valid"].to(dev)  # [B,1,H,W]
        b = rgb.shape[0]
        snippets = b // n
        objective = self.cfg["snippet"]["objective"] if self.snippet else self.cfg["mode"]
        with torch.no_grad():
            rgb_latent = self.base.vae.encode(rgb).latent_dist.mode() * self.sf  # [B,4,h,w]
        if self.prompts:  # prompt modalities (segmentation): each sample's class name
            text = torch.cat([self.prompts[p] for p in batch["prompt"]])  # [B,77,D]
        else:
            text = self.text.expand(b, -1, -1)  # [B,T,D]
        n_t = self.sched.config.num_train_timesteps
        if objective == "diffusion":
            with torch.no_grad():  # each target encoded on its own, the latents stacked (prs-eth's IID models)
                flat = target.reshape(-1, 3, *target.shape[-2:])  # [B·T,3,H,W]
                target_latent = self.base.vae.encode(flat).latent_dist.mode() * self.sf  # [B·T,4,h,w]
                target_latent = target_latent.reshape(b, -1, *target_latent.shape[-2:])  # [B,4T,h,w]
            # one timestep and one noise per snippet, shared by its frames (RollingDepth's inference repeats one
            # noise over a snippet's frames); n = 1: per sample, as Marigold
            t = torch.randint(0, n_t, (snippets,), generator=gen)  # [S]
            shape = (snippets,) + tuple(target_latent.shape[1:])
            noise = training_noise(shape, t, self.cfg["multi_res_noise"], n_t, gen)  # [S,4T,h,w]
            t = t.repeat_interleave(n)  # [B]
            noise = noise.repeat_interleave(n, 0).to(dev, target_latent.dtype)  # [B,4T,h,w]
            t = t.to(dev)
            noisy = self.sched.add_noise(target_latent, noise, t)  # [B,4T,h,w]
            pred = self.unet(torch.cat([rgb_latent, noisy], 1), t, encoder_hidden_states=text).sample  # [B,4T,h,w]
            if self.noise_cfg["prediction_type"] == "v_prediction":
                goal = self.sched.get_velocity(target_latent, noise, t)
            elif self.noise_cfg["prediction_type"] == "epsilon":
                goal = noise
            else:
                goal = target_latent
            mask = latent_mask(valid)  # [B,1,h,w]
            return masked_mse(pred, goal, mask if mask.any() else None)
        # end-to-end single step at t = 999
        t_val = int(self.cfg["e2e"]["timestep"])
        t = torch.full((b,), t_val, device=dev, dtype=torch.long)
        shape = (snippets, 4 * self.modality.n_targets) + tuple(rgb_latent.shape[2:])
        noise = (torch.zeros(shape) if self.cfg["e2e"]["noise"] == "zeros" else torch.randn(shape, generator=gen))
        noise = noise.repeat_interleave(n, 0).to(dev, rgb_latent.dtype)  # [B,4T,h,w]: one noise per snippet
        pred = self.unet(torch.cat([rgb_latent, noise], 1), t, encoder_hidden_states=text).sample  # [B,4T,h,w]
        a = self.sched.alphas_cumprod.to(dev)[t_val].float()
        if self.noise_cfg["prediction_type"] == "v_prediction":
            x0 = a.sqrt() * noise.float() - (1 - a).sqrt() * pred.float()  # [B,4,h,w]
        elif self.noise_cfg["prediction_type"] == "epsilon":
            x0 = (noise.float() - (1 - a).sqrt() * pred.float()) / a.sqrt().clamp(min=1e-4)
        else:
            x0 = pred.float()
        x0 = x0.reshape(-1, 4, *x0.shape[-2:])  # [B·T,4,h,w]: each target's latent decoded alone
        decoded = self.base.vae.decode((x0 / self.sf).to(dt)).sample.float()  # [B·T,3,H,W]
        kind = self.modality.targets[0].transfer if self.modality.n_targets == 1 else None
        if kind not in ("affine", "unit"):  # maps in a fixed range (intrinsics, ...): MSE on the decoded targets
            goal = target.float().reshape(decoded.shape)  # [B·T,3,H,W]
            mask = valid.repeat_interleave(self.modality.n_targets, 0)  # [B·T,1,H,W]
            if self.target_weights is None:
                return masked_mse(decoded, goal, mask if mask.any() else None)
            return weighted_target_mse(decoded, goal, mask if mask.any() else None, self.target_weights)
        if kind == "affine":
            est = decoded.mean(1, keepdim=True)  # [B,1,H,W]
            if n > 1:  # one scale and shift per snippet: its frames stacked into one tall image [S,1,n·H,W]
                h, w = est.shape[-2:]
                return affine_invariant_l1(est.reshape(snippets, 1, n * h, w),
                                           target[:, :1].float().reshape(snippets, 1, n * h, w),
                                           valid.reshape(snippets, 1, n * h, w))
            return affine_invariant_l1(est, target[:, :1].float(), valid, float(self.cfg["e2e"]["grad_weight"]))
        return angular(decoded, target.float(), valid)

    # ------------------------------------------------------------------ the loop

    def validate(self) -> dict:
        """Light validation on held-out scenes through the core sampler (main process only)."""
        vcfg = self.cfg["validation"]
        unet = self.raw_unet
        if self.ema is not None:
            self.ema.swap(unet)
        unet.eval()
        try:
            if self.snippet:  # held-out synthetic videos, the snippet step alone (train.video_eval)
                from .base import rollingdepth_scheduler_config
                from .video_eval import evaluate_snippets, synthetic_videos

                h, w = self.stream.sizes[0]
                k = min(1.0, 128 / max(h, w))  # rendered videos: light, whatever the training size
                h, w = max(8, round(h * k / 8) * 8), max(8, round(w * k / 8) * 8)
                res = evaluate_snippets(unet, self.base.vae, self.text, rollingdepth_scheduler_config(self.noise_cfg),
                                        synthetic_videos(vcfg["num_images"], 24, h, w, vcfg["split"],
                                                         texture=vcfg["texture"]),
                                        frames=self.frames, space=self.cfg["snippet"]["space"],
                                        steps=vcfg["steps"], per_video=2)
                res["metrics"] = {k: v for k, v in res["metrics"].items() if k in ("abs_rel", "delta1",
                                                                                   "temporal_error")}
                return self._log_validation(res)
            model = in_memory_model(self.base, unet, self.noise_cfg, self.cfg["task"], self.acc.device,
                                    processing_resolution=vcfg["processing_resolution"])
            # prompt modalities: the class names the trainer encoded, so validation never loads the text encoder again
            model.prompt_embeddings.update({k: v.float().cpu() for k, v in self.prompts.items()})
            # the entry says how it is scored (train.evaluate.Evaluation: depth, per-target maps, IoU for masks ...)
            res = self.evaluation.validate(model, vcfg, self.stream.sizes[0])
        finally:
            unet.train()
            if self.ema is not None:
                self.ema.swap(unet)
        return self._log_validation(res)

    def _log_validation(self, res: dict) -> dict:
        if self.writer is not None:
            for k, v in res["metrics"].items():
                self.writer.add_scalar(f"val/{k}", v, self.step)
            for i, im in enumerate(res.get("images", [])):
                self.writer.add_image(f"val/prediction_{i}", im, self.step, dataformats="HWC")
        return res["metrics"]

    def run(self) -> Path | None:
        cfg, acc = self.cfg, self.acc
        accum = cfg["grad_accum"]
        sampler = StreamSampler(cfg["batch_size"], self.rank, self.world, start=self.step * accum)
        loader = torch.utils.data.DataLoader(self.stream, batch_size=cfg["batch_size"], sampler=sampler,
                                             num_workers=cfg["num_workers"], drop_last=True,
                                             persistent_workers=cfg["num_workers"] > 0)
        batches = iter(loader)
        pbar = None
        if acc.is_main_process and cfg["progress"]:
            from tqdm.auto import tqdm

            pbar = tqdm(total=cfg["max_steps"], initial=self.step, desc="fine-tune", dynamic_ncols=True,
                        file=sys.stdout)
        t0, steps0 = time.perf_counter(), self.step
        micro = self.step * accum
        while self.step < cfg["max_steps"]:
            total = 0.0
            for k in range(accum):
                batch = next(batches)
                gen = step_generator(cfg["seed"], micro, self.rank)
                micro += 1
                sync = k == accum - 1
                ctx = acc.no_sync(self.unet) if not sync else _null()
                with ctx, self.frames_context():
                    with acc.autocast():
                        loss = self.loss(batch, gen)
                    acc.backward(loss / accum)
                total += float(loss.detach()) / accum
            if cfg["optimizer"]["max_grad_norm"]:
                acc.clip_grad_norm_(self.unet.parameters(), cfg["optimizer"]["max_grad_norm"])
            self.optimizer.step()
            self.lr_sched.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.raw_unet)
            self.step += 1
            if not math.isfinite(total):
                raise FloatingPointError(f"loss is {total} at step {self.step}; lower the learning rate or use bf16.")
            elapsed = time.perf_counter() - t0
            rate = (self.step - steps0) / max(elapsed, 1e-9)
            per_sample = int(cfg["snippet"]["frames"]) if self.snippet else 1
            samples = rate * cfg["batch_size"] * accum * self.world * per_sample  # frames per second
            if pbar is not None:
                pbar.update(1)
                pbar.set_postfix(loss=f"{total:.4f}", lr=f"{self.lr_sched.get_last_lr()[0]:.2e}",
                                 samples_per_s=f"{samples:.2f}")
            if self.writer is not None and (self.step % cfg["log_every"] == 0 or self.step == 1):
                self.writer.add_scalar("train/loss", total, self.step)
                self.writer.add_scalar("train/lr", self.lr_sched.get_last_lr()[0], self.step)
                self.writer.add_scalar("train/samples_per_s", samples, self.step)
            if cfg["validation"]["every"] and self.step % cfg["validation"]["every"] == 0:
                if acc.is_main_process:
                    m = self.validate()
                    if pbar is not None:
                        pbar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
                acc.wait_for_everyone()
            if cfg["debug_step_sleep"]:
                time.sleep(cfg["debug_step_sleep"])
            if cfg["checkpoint_every"] and (self.step % cfg["checkpoint_every"] == 0 or self.step == cfg["max_steps"]):
                self.save_checkpoint()
        if pbar is not None:
            pbar.close()
        if cfg["dump_rank_weights"]:
            from safetensors.torch import save_file

            self.output.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in self.raw_unet.state_dict().items()},
                      str(self.output / f"rank-{self.rank}-unet.safetensors"))
        final = self.export_final()
        if self.writer is not None:
            self.writer.close()
        acc.end_training()
        return final


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def check_dependencies(cfg: dict | None = None) -> None:
    """Fail before the base model loads (minutes on a real SD2) when an optional package the run needs is
    missing: one line naming the ``train`` extra, not a traceback after the load."""
    require("torch.utils.tensorboard", "train", "Training logs")
    if cfg is None:
        return
    kinds = {str(d.get("name") if isinstance(d, dict) else d).split(":")[0].split("@")[0] for d in cfg["data"]}
    if "synthetic" in kinds:
        require("skimage.data", "train", "The synthetic scenes (scikit-image photographs as textures)")
    if kinds - {"synthetic"}:
        require("scipy.ndimage", "train", "Filling invalid depth pixels")
    if "hypersim" in kinds:
        require("h5py", "train", "Reading HDF5 files (Hypersim)")


def main(argv: list[str] | None = None) -> int:
    torch.set_flush_denormal(True)  # before torch's thread pool starts: threads inherit the FP mode
    try:
        check_dependencies()  # every run needs these; before the arguments, so that even --help says it
        cfg = parse(argv)
        check_dependencies(cfg)
        trainer = Trainer(cfg)
        final = trainer.run()
    except MarigoldError as e:  # a missing package, a bad base checkpoint: one line, no traceback
        print(f"python -m train.finetune: {e}", file=sys.stderr, flush=True)
        return 2
    if trainer.acc.is_main_process:
        print(f"done: {trainer.step} steps; the model is at {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
