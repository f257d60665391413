"""Multi-resolution ("pyramid") noise with annealing, as Marigold trains with it.

Marigold (Ke et al. 2024, Sec. 3.2; config ``multi_res_noise``: strength 0.9, annealed, ``original``
downscale) adds to the i.i.d. Gaussian noise upsampled Gaussian noise at ever coarser scales: at level i the
grid shrinks by r^i with r drawn uniformly from [2, 4), the level is weighted strength^i, and the sum is
renormalised to unit standard deviation. Annealing scales the strength with the timestep, t / T, so the
lowest-frequency noise fades out as t → 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multi_res_noise(shape: tuple[int, ...], strength: float | torch.Tensor = 0.9, *,
                    generator: torch.Generator | None = None, downscale_strategy: str = "original",
                    levels: int = 10) -> torch.Tensor:
    """``[B,C,h,w]`` noise of unit standard deviation; ``strength`` a float or ``[B]`` (annealed per sample)."""
    b, c, h, w = shape
    s = strength.reshape(-1, 1, 1, 1).float() if torch.is_tensor(strength) else float(strength)
    noise = torch.randn(shape, generator=generator)  # [B,C,h,w]
    hh, ww = h, w
    for i in range(levels):
        if downscale_strategy == "original":
            r = float(torch.rand(1, generator=generator)) * 2 + 2  # a random factor in [2, 4)
            hh, ww = max(1, int(hh / r**i)), max(1, int(ww / r**i))
        elif downscale_strategy == "every_layer":
            hh, ww = max(1, hh // 2), max(1, ww // 2)
        else:
            raise ValueError(f"downscale_strategy must be 'original' or 'every_layer'; got {downscale_strategy!r}")
        coarse = torch.randn((b, c, hh, ww), generator=generator)  # [B,C,hh,ww]
        noise = noise + F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * s**i
        if hh == 1 or ww == 1:
            break
    return noise / noise.std()


def training_noise(shape: tuple[int, ...], timesteps: torch.Tensor, cfg: dict, num_train_timesteps: int,
                   generator: torch.Generator | None) -> torch.Tensor:
    """The noise one training step adds: multi-resolution (annealed) where enabled, else i.i.d. Gaussian."""
    if not cfg.get("enabled", True):
        return torch.randn(shape, generator=generator)
    strength = torch.full((shape[0],), float(cfg.get("strength", 0.9)))
    if cfg.get("annealed", True):
        strength = strength * timesteps.float().cpu() / num_train_timesteps  # [B]
    return multi_res_noise(shape, strength, generator=generator,
                           downscale_strategy=cfg.get("downscale_strategy", "original"))
