"""RollingDepth's snippets: the reference's rules (which frames each dilation's snippets hold, the cap on the
dilation, the plan for a clip), and :class:`SnippetRunner`, which encodes frames and runs one batch of snippets
through the UNet and the decoder."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..core import image as img
from ..core.model import MarigoldModel


def cap_dilation(n_frames: int, snippet_length: int, dilation: int) -> int:
    """The reference's cap for short clips (rollingdepth_pipeline.py, ``cap_max_dilation``): at most
    ``⌊N/n⌋ - 1``. The reference then fails for clips shorter than 2n frames (a cap below 1 trips the
    ``gap >= 0`` assertion in ``get_snippet_indice``); we floor it at 1 there."""
    max_allowed = int(n_frames / snippet_length) - 1
    return max(1, min(dilation, max_allowed))


def snippet_indices(n_frames: int, snippet_length: int, dilation: int) -> list[list[int]]:
    """Frames of each snippet for one dilation, stride 1: ``[i, i+g, …, i+(n-1)g]`` for every start i that fits
    (rollingdepth_pipeline.py, ``get_snippet_indice`` at ``i_step=0``, ``stride=1``; the same triplets as
    depth_aligner.py's ``create_triplet_indices``)."""
    span = (snippet_length - 1) * dilation
    return [list(range(i, i + span + 1, dilation)) for i in range(0, n_frames - span)]


def plan_snippets(n_frames: int, dilations: Iterable[int], snippet_length: int, cap: bool = True
                  ) -> tuple[int, list[int], list[str]]:
    """(snippet length, dilations to run, notes) for a clip of ``n_frames``, following the reference:
    dilations capped (``cap``), duplicates run once; a clip shorter than a snippet becomes one snippet of all
    its frames; without the cap, dilations with no snippet that fits are left out (the reference would fail)."""
    notes: list[str] = []
    n = snippet_length
    if n_frames < n:
        notes.append(f"{n_frames} frame{'s' if n_frames > 1 else ''}: shorter than a snippet of {n}; "
                     + ("predicted as a single image." if n_frames == 1 else f"one snippet of {n_frames} frames."))
        n = n_frames
    out: list[int] = []
    for g in dilations:
        d = cap_dilation(n_frames, n, g) if cap else g
        if d != g:
            notes.append(f"dilation {g} is too large for {n_frames} frames; capped to {d} (reference rule: at most "
                         f"⌊N/n⌋-1 = {int(n_frames / n) - 1}, at least 1).")
        if not cap and (n - 1) * d >= n_frames:
            notes.append(f"dilation {g} leaves no snippet of {n} frames in {n_frames} frames; left out.")
            continue
        if d not in out:
            out.append(d)
    return n, sorted(out), notes


def snippet_kind(snippet: list[int]) -> int:
    """A snippet's dilation (1 for a one-frame snippet): the group its (scale, shift) penalty is averaged in."""
    return snippet[1] - snippet[0] if len(snippet) > 1 else 1


def rolling_units(n_frames: int, snippet_length: int, dilations: Iterable[int]) -> list[list[int]]:
    """Every snippet of a clip in the order the stream creates its units: by last frame, then by dilation
    (the order in which :meth:`VideoStream._rolling` runs them; unit ``u`` is ``rolling_units(...)[u]``)."""
    span = {g: (snippet_length - 1) * g for g in dilations}
    return [list(range(t - span[g], t + 1, g)) for t in range(n_frames) for g in sorted(span) if t - span[g] >= 0]


class SnippetRunner:
    """RollingDepth's per-snippet work, shared by :class:`VideoStream` and by several processes
    (:mod:`marigold.video.distributed`): frame → latent, and a batch of snippets → each frame's decoded map.

    ONE noise tensor for every frame (reference: ``init_noise`` repeated over the sequence), from a CPU generator
    in the model's dtype as in marigold.predict, so one seed gives one video on any device and in any process.
    """

    def __init__(self, model: MarigoldModel, size: tuple[int, int], processing_resolution: int, seed: int,
                 num_inference_steps: int | None = None) -> None:
        self.model = model
        dev, dt = model.device, model.dtype
        self.sf = model.vae_scaling_factor
        self.processing_resolution = processing_resolution
        ph, pw = img.padded_size(img.processing_size(size, processing_resolution))
        h, w = ph // img.LATENT_FACTOR, pw // img.LATENT_FACTOR
        self.noise = torch.randn((1, 4, h, w), generator=torch.Generator("cpu").manual_seed(seed),
                                 dtype=dt).to(dev)  # [1,4,h,w]
        self.text = model.empty_text_embedding.to(device=dev, dtype=dt)  # [1,2,D]
        self.scheduler = model.make_scheduler()
        self.steps = num_inference_steps or model.default_denoising_steps or 1
        self.padding = (0, 0)

    def encode(self, frame: torch.Tensor) -> torch.Tensor:
        """``[1,3,H,W]`` 0..1 → its latent ``[1,4,h,w]`` (scaled), the image condition of every snippet."""
        model = self.model
        x, self.padding = img.preprocess(frame, self.processing_resolution, "bilinear")  # [1,3,PPH,PPW] -1..1
        return model.vae.encode(x.to(device=model.device, dtype=model.dtype)).latent_dist.mode() * self.sf

    def run(self, latents: dict[int, torch.Tensor], batch: list[list[int]]) -> list[list[torch.Tensor]]:
        """Snippets of equal length (frame indices into ``latents``) → per snippet, per frame, the decoded map
        ``[PH,PW]`` on the CPU in the decoder's dtype: ``(x + 1) / 2`` of the channel mean, unclipped."""
        from ..core.snippet import snippet_frames

        model, dev, sf = self.model, self.model.device, self.sf
        cond = torch.cat([latents[f] for s in batch for f in s])  # [S·n,4,h,w]
        x = self.noise.expand(cond.shape[0], -1, -1, -1)  # [S·n,4,h,w]
        self.scheduler.set_timesteps(self.steps, device=dev)  # reset per call, as the reference does per snippet
        with snippet_frames(model.unet, len(batch[0])):
            for ts in self.scheduler.timesteps:
                out = model.unet(torch.cat([cond, x], dim=1), ts, encoder_hidden_states=self.text.expand(
                    cond.shape[0], -1, -1), return_dict=False)[0]  # [S·n,4,h,w]
                x = self.scheduler.step(out, ts, x).prev_sample  # [S·n,4,h,w]
        maps, k = [], 0
        for s in batch:
            values = []
            for _ in s:
                dec = model.vae.decode(x[k:k + 1] / sf, return_dict=False)[0]  # [1,3,PPH,PPW]
                # the reference's decode_depth: channel mean, unclipped; read as (x+1)/2 (module docstring)
                values.append(img.unpad((dec.mean(dim=1)[0] + 1.0) / 2.0, self.padding).cpu())  # [PH,PW]
                k += 1
            maps.append(values)
        return maps
