"""Atomic checkpoints, keep-last-K, and the training state a resumed run needs.

A checkpoint is ``OUTPUT/checkpoints/step-0000500/``: a complete Marigold folder (``marigold.load`` reads it as
it is) plus ``train_state/`` (optimizer, LR schedule, EMA, live UNet weights when EMA is on, RNG state of every
rank, the step, and the config). It is written under a hidden temporary name and renamed into place, so a run
killed while writing leaves no half checkpoint: the newest complete one is always the one ``--resume`` finds.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

STATE = "train_state"
PATTERN = re.compile(r"^step-(\d+)$")


def checkpoint_dir(output: Path) -> Path:
    return Path(output) / "checkpoints"


def list_checkpoints(output: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    root = checkpoint_dir(output)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = PATTERN.match(p.name)
        if m and (p / STATE / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest(output: Path) -> Path | None:
    cps = list_checkpoints(output)
    return cps[-1][1] if cps else None


def temp_dir(output: Path, step: int) -> Path:
    return checkpoint_dir(output) / f".tmp-step-{step:07d}"


def commit(output: Path, tmp: Path, step: int, keep_last: int) -> Path:
    """Rename ``tmp`` into place (replacing an older copy of the same step) and drop all but the newest K."""
    final = checkpoint_dir(output) / f"step-{step:07d}"
    if final.exists():
        trash = final.with_name(f".trash-{final.name}")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp, final)
    if keep_last and keep_last > 0:
        for _, old in list_checkpoints(output)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoint_dir(output).glob(".tmp-step-*"):  # leftovers of killed runs
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                      int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": random.getstate()}


def save_rng(path: Path) -> None:
    torch.save(rng_state(), path)


def load_rng(path: Path) -> None:
    s = torch.load(path, weights_only=False)  # our own file: tensors, ints and a tuple of ints
    torch.set_rng_state(s["torch"])
    n = s["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    random.setstate(s["python"])


def write_state(tmp: Path, state: dict, optimizer_state: dict, lr_state: dict, ema_state: dict | None,
                live_unet: dict | None) -> None:
    from safetensors.torch import save_file

    d = tmp / STATE
    d.mkdir(parents=True, exist_ok=True)
    torch.save({"optimizer": optimizer_state, "lr_scheduler": lr_state}, d / "optimizer.pt")
    if ema_state is not None:
        save_file({k: v.contiguous() for k, v in ema_state.items()}, str(d / "ema.safetensors"))
    if live_unet is not None:
        save_file({k: v.contiguous() for k, v in live_unet.items()}, str(d / "unet_live.safetensors"))
    tmp_json = d / "state.json.tmp"
    tmp_json.write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
    os.replace(tmp_json, d / "state.json")  # last: its presence marks the checkpoint complete


def read_state(folder: Path) -> dict:
    d = folder / STATE
    out = json.loads((d / "state.json").read_text(encoding="utf-8"))
    opt = torch.load(d / "optimizer.pt", weights_only=True, map_location="cpu")
    out["optimizer"], out["lr_scheduler"] = opt["optimizer"], opt["lr_scheduler"]
    from safetensors.torch import load_file

    out["ema"] = load_file(str(d / "ema.safetensors")) if (d / "ema.safetensors").is_file() else None
    live = d / "unet_live.safetensors"
    out["unet_live"] = load_file(str(live)) if live.is_file() else None
    return out
