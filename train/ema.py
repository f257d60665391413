"""Exponential moving average of the trainable weights (fp32 shadow copy)."""

from __future__ import annotations

import torch


class EMA:
    def __init__(self, module: torch.nn.Module, decay: float = 0.999):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: p.detach().float().clone() for k, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))  # warm-up, as diffusers' EMAModel
        for k, p in module.named_parameters():
            if k in self.shadow:
                self.shadow[k].lerp_(p.detach().float(), 1.0 - d)

    @torch.no_grad()
    def swap(self, module: torch.nn.Module) -> None:
        """Exchange the live weights and the shadow (call twice to undo)."""
        for k, p in module.named_parameters():
            if k in self.shadow:
                live = p.detach().float().clone()
                p.copy_(self.shadow[k].to(p.dtype))
                self.shadow[k] = live

    def state_dict(self) -> dict:
        return {**self.shadow, "__updates__": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.updates = int(state.pop("__updates__", torch.tensor(0)))
        for k in self.shadow:
            self.shadow[k] = state[k].float().clone()
