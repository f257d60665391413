"""RollingDepth's refinement, streamed: :class:`Refiner` re-encodes the co-aligned clip, noises it to
mid-schedule and denoises it with dilations shrinking to 1 as a wavefront over the frames (see the docstring of
:mod:`marigold.video.pipeline`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from ..core import image as img
from ..errors import InputError

if TYPE_CHECKING:  # annotations only: the stream creates its refiner
    from .pipeline import VideoStream


class Refiner:
    """RollingDepth's refinement (rollingdepth_pipeline.py, ``refine``), streamed as a wavefront.

    The reference normalises the co-aligned clip to [-1, 1], encodes it, noises it to mid-schedule with the
    shared noise (``skip_t_ratio=0.5``: ``int(K/0.5)`` scheduler steps, the second half run), then for each step k
    runs every snippet of dilation ``int((1 - k/K)·(start-1)) + 1`` on the previous step's latents and averages
    the frames' new latents over the snippets covering them; finally decodes (channel mean, not renormalised).
    Step k of frame f needs step k-1 of frames up to f + (n-1)·g_k only, so each step runs as soon as its
    inputs exist, and only those latents are held. The [-1, 1] normalisation takes the range of the first
    frames emitted by the co-alignment (the whole clip when it fits the window, as in the reference).
    """

    def __init__(self, stream: "VideoStream", n: int, start: int, noise, text, rgb, sf, padding) -> None:
        self.s, self.n, self.noise, self.text, self.rgb, self.sf, self.padding = stream, n, noise, text, rgb, sf, padding
        model = stream.model
        self.model = model
        k_steps = stream.refine_steps
        self.scheduler = model.make_scheduler()
        total = int(k_steps / 0.5)
        if total > int(self.scheduler.config.get("num_train_timesteps", 1000)):
            raise InputError(f"`refine_steps` {k_steps} is too many for this scheduler.")
        self.scheduler.set_timesteps(total, device=model.device)
        self.timesteps = self.scheduler.timesteps[int(total * 0.5):]  # [K]
        self.K = len(self.timesteps)
        gap_start = start - 1
        self.dilations = [int((1 - k / self.K) * gap_start) + 1 for k in range(self.K)]  # get_snippet_indice
        self.lat = [dict() for _ in range(self.K + 1)]  # step → frame → latent [1,4,h,w]
        self.acc: list[dict] = [dict() for _ in range(self.K + 1)]  # step → frame → [sum, count]
        self.final = [0] * (self.K + 1)  # frames below this are final at that step
        self.last = [-1] * self.K  # last frame whose snippets ran at that step
        self.lo = self.hi = None

    def push(self, frames: list[tuple[int, torch.Tensor]]) -> Iterator[tuple[int, torch.Tensor]]:
        if not frames:
            return
        model, dev, dt = self.model, self.model.device, self.model.dtype
        if self.lo is None:
            self.lo = min(float(v.min()) for _, v in frames)
            self.hi = max(float(v.max()) for _, v in frames)
        span = max(self.hi - self.lo, 1e-12)
        for f, value in frames:
            x = ((value - self.lo) / span * 2.0 - 1.0)[None, None].expand(1, 3, -1, -1)  # [1,3,PH,PW]
            ph, pw = self.padding()
            if ph or pw:
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")  # [1,3,PPH,PPW]
            z = model.vae.encode(x.to(device=dev, dtype=dt)).latent_dist.mode() * self.sf  # [1,4,h,w]
            self.lat[0][f] = self.scheduler.add_noise(z, self.noise, self.timesteps[:1])  # [1,4,h,w]
            yield from self._arrived(0, f)

    def _arrived(self, k: int, m: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Frame m's latent at step k exists: run the step-k snippet ending at m, pass on what is final."""
        model = self.model
        if k == self.K:
            dec = model.vae.decode(self.lat[k].pop(m) / self.sf, return_dict=False)[0]  # [1,3,PPH,PPW]
            yield m, img.unpad(dec.mean(dim=1)[0], self.padding()).float().cpu()  # [PH,PW]
            return
        g, n = self.dilations[k], self.n
        first = m - (n - 1) * g
        if first >= 0:
            idx = list(range(first, m + 1, g))
            if self.s.check_cancel is not None:
                self.s.check_cancel()
            from ..core.snippet import snippet_frames

            cond = torch.cat([self.rgb[f] for f in idx])  # [n,4,h,w]
            x = torch.cat([self.lat[k][f] for f in idx])  # [n,4,h,w]
            t = self.timesteps[k]
            with snippet_frames(model.unet, n):
                out = model.unet(torch.cat([cond, x], dim=1), t, encoder_hidden_states=self.text.expand(n, -1, -1),
                                 return_dict=False)[0]  # [n,4,h,w]
            new = self.scheduler.step(out, t, x).prev_sample  # [n,4,h,w]
            for j, f in enumerate(idx):
                a = self.acc[k + 1].setdefault(f, [0.0, 0])
                a[0] = new[j:j + 1] + a[0]
                a[1] += 1
            self.s._done += 1
            if self.s.progress is not None:
                self.s.progress(self.s._done, self.s._total)
        self.last[k] = m
        yield from self._finalize(k, first + 1)

    def _finalize(self, k: int, upto: int) -> Iterator[tuple[int, torch.Tensor]]:
        """Frames below ``upto`` have all their step-k snippets run: their step k+1 latents are final."""
        for f in range(self.final[k + 1], upto):
            total, count = self.acc[k + 1].pop(f)
            assert count > 0  # every frame is covered (the reference asserts the same)
            self.lat[k + 1][f] = total / count
            self.final[k + 1] = f + 1
            self.lat[k].pop(f, None)
            yield from self._arrived(k + 1, f)
        low = min(self.last[j] + 1 - (self.n - 1) * self.dilations[j] for j in range(self.K))
        for f in [f for f in self.rgb if f < low]:
            del self.rgb[f]

    def finish(self, n_frames: int) -> Iterator[tuple[int, torch.Tensor]]:
        for k in range(self.K):
            yield from self._finalize(k, n_frames)
