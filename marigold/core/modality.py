"""What a modality is: one entry per kind of dense prediction, read by every part of the project.

The Marigold recipe is the same for every modality (an image latent and the target latents go into the UNet, the
VAE decodes the target); what differs is described here, once:

- ``targets``: the maps one sample predicts (names, channels, value range, transfer curve), each VAE-encoded on
  its own, their latents stacked (a UNet of ``4·(T+1)`` input and ``4·T`` output channels);
- how a target becomes VAE input (``Target.encode``, used by the trainer) and back (``Target.decode``, used by
  the sampler);
- the conditioning: ``"empty"`` (the cached empty-prompt embedding, every published Marigold model) or
  ``"prompt"`` (a text prompt, e.g. text-grounded segmentation); :func:`text_embedding` gives it;
- the ensembling rule (``"affine"``: depth-like scale/shift alignment; ``"closest"``: unit normals;
  ``"median"``: per target, per pixel);
- what the checkpoint says (``pipeline``, ``prediction_type``, extra ``model_index.json`` keys) and what the CLI
  and the nodes write (``files``: the suffixes of the CLI's output files; :func:`write`);
- for prompt modalities, what the CLI runs per image and prompt (``predict_prompt``);
- how it is scored (``evaluation``: what ``train.evaluate`` and the trainer's validation run; by default chosen
  from the targets).

Adding a modality is one :class:`Modality` passed to :func:`register` (anywhere before loading or training)
plus a data loader whose samples carry the targets by name (``sample.targets[name]``, or
``sample.targets["MODALITY/NAME"]`` where one data set defines a target differently for two modalities; see
``train.data.common.target_map``); nothing else changes. ``model_index.json`` of a checkpoint the trainer writes
names its modality (``"modality"``), so the loader finds the entry again. The ``task`` of an entry is the
family the public API and the nodes use (``model.task``: "depth", "normals", "intrinsics" or the entry's own
name); ``name`` is the entry itself (depth and disparity are both the depth task, the two IID models both
intrinsics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import CheckpointError, InputError

if TYPE_CHECKING:  # annotations only: the model's module imports this one
    from .model import MarigoldModel


@dataclass(frozen=True)
class Target:
    """One predicted map.

    ``channels``: what the user gets (1: the decoded RGB is averaged; 3: kept). ``transfer``: how the values
    relate to the world: "affine" (affine-invariant depth/disparity, normalised per sample), "unit" (unit
    vectors, -1..1), "srgb" (a scene-linear map through gamma 1/2.2: loaders give it linear, the model predicts
    it gamma-encoded), "linear" (scene-linear 0..1, clipped and scaled by the data loader), "raw" (0..1 as is).
    ``value_range``: the range the user gets.
    """

    name: str
    channels: int = 3
    transfer: str = "raw"
    value_range: tuple[float, float] = (0.0, 1.0)

    def from_linear(self, x: np.ndarray) -> np.ndarray:
        """A scene-linear map (what loaders give for "srgb" and "linear" targets) → this target's space."""
        if self.transfer == "srgb":  # gamma 1/2.2, prs-eth's img_linear2srgb
            return np.clip(x, 0.0, None) ** (1.0 / 2.2)
        return x

    def to_linear(self, x: np.ndarray) -> np.ndarray:
        """This target's space → scene-linear (the inverse of :meth:`from_linear`)."""
        if self.transfer == "srgb":
            return np.clip(x, 0.0, None) ** 2.2
        return x

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The loader's target ``[H,W,C]`` (or ``[H,W]``; scene-linear for "srgb" targets, else in
        ``value_range``) → the VAE's input ``[3,H,W]`` in -1..1."""
        x = self.from_linear(np.asarray(x, dtype=np.float32))
        if x.ndim == 2:
            x = x[..., None]
        lo, hi = self.value_range
        x = (np.clip(x, lo, hi) - lo) / (hi - lo) * 2.0 - 1.0  # [H,W,C] -1..1
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)  # the VAE takes RGB
        return np.ascontiguousarray(x.transpose(2, 0, 1))  # [3,H,W]

    def decode(self, decoded: torch.Tensor, *, use_full_z_range: bool = True) -> torch.Tensor:
        """VAE output ``[B,3,H,W]`` in -1..1 → the target ``[B,C,H,W]`` in ``value_range``."""
        if self.channels == 1:
            x = decoded.mean(dim=1, keepdim=True).clip(-1.0, 1.0)  # [B,1,H,W]
        else:
            x = decoded.clip(-1.0, 1.0)  # [B,3,H,W]
        if self.transfer == "unit":
            from .ensemble import normalize_normals

            if not use_full_z_range:
                x = torch.cat([x[:, :2], x[:, 2:] * 0.5 + 0.5], dim=1)  # [B,3,H,W]
            return normalize_normals(x.float())  # [B,3,H,W]
        lo, hi = self.value_range
        return (x + 1.0) / 2.0 * (hi - lo) + lo  # [B,C,H,W]


# ``write(modality, prediction [C,H,W], out_dir, stem, options) -> {suffix: path}``; options: colormap, npy, exr.
Writer = Callable[["Modality", torch.Tensor, Path, str, dict], dict]


@dataclass(frozen=True)
class Modality:
    """One kind of dense prediction; see the module docstring."""

    name: str
    task: str
    targets: tuple[Target, ...]
    pipeline: str  # the diffusers pipeline class written to and read from model_index.json
    prediction_type: str
    conditioning: str = "empty"  # "empty" | "prompt"
    ensemble: str = "median"  # "affine" | "closest" | "median"
    default_reduction: str = "median"
    index_keys: dict[str, Any] = field(default_factory=dict)  # extra model_index.json keys the trainer writes
    writer: Writer | None = None  # default: one PNG per target (see :func:`write`)
    geometry: bool = False  # reliefs, meshes and point clouds can be made from it (depth-like)
    video: bool = False  # the video path (RollingDepth-style clips) serves it
    files: tuple[str, ...] = ()  # the CLI's output file suffixes, for the docs and the nodes
    # prompt modalities: what the CLI runs per image and prompt, ``predict_prompt(model, image, prompt, options,
    # **sampling) -> (prediction [N,C,H,W] for the writer, uncertainty [N,1,H,W] | None)``; ``options``: the CLI's
    # prompt-model options (threshold, clean, tone_down), also handed to the writer with the prompt
    predict_prompt: Callable[..., tuple[torch.Tensor, torch.Tensor | None]] | None = None
    # how train.evaluate and the trainer's validation score it: "module:attribute" naming a train.evaluate.Evaluation
    # (imported by the trainer only; the library never imports it), or that object; None: by the targets (affine:
    # the depth protocol; other maps: per-target scores against the synthetic renders)
    evaluation: Any = None

    @property
    def n_targets(self) -> int:
        return len(self.targets)

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def channels(self) -> int:
        """Channels of a prediction: the targets' channels, stacked."""
        return sum(t.channels for t in self.targets)

    @property
    def unet_in_channels(self) -> int:
        return 4 * (self.n_targets + 1)

    @property
    def unet_out_channels(self) -> int:
        return 4 * self.n_targets

    def decode(self, decoded: torch.Tensor, n_targets: int | None = None, *,
               use_full_z_range: bool = True) -> torch.Tensor:
        """VAE output of B samples' T targets ``[B·T,3,H,W]`` (target-major per sample) → ``[B·T,C,H,W]``.

        Targets of different channel counts decode one by one; then the result is ``[B,ΣC,H,W]``.
        """
        t = n_targets or self.n_targets
        if len({x.channels for x in self.targets}) == 1:
            return self.targets[0].decode(decoded, use_full_z_range=use_full_z_range)  # [B·T,C,H,W]
        b = decoded.shape[0] // t
        x = decoded.reshape(b, t, *decoded.shape[1:])  # [B,T,3,H,W]
        return torch.cat([tg.decode(x[:, k], use_full_z_range=use_full_z_range)
                          for k, tg in enumerate(self.targets)], dim=1)  # [B,ΣC,H,W]

    def combine(self, values: torch.Tensor, *, output_uncertainty: bool = False, reduction: str | None = None,
                scale_invariant: bool = True, shift_invariant: bool = True, **kwargs
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """E members ``[E,C,H,W]`` of one image → ``(prediction [1,C,H,W], uncertainty | None)``."""
        from . import ensemble as ens

        if values.shape[0] == 1:
            return values, None
        if self.ensemble == "affine":
            return ens.ensemble_depth(values, scale_invariant, shift_invariant, output_uncertainty,
                                      reduction=reduction or self.default_reduction, **kwargs)
        if self.ensemble == "closest":
            return ens.ensemble_normals(values, output_uncertainty, reduction=reduction or self.default_reduction)
        reduction = reduction or self.default_reduction
        if reduction not in ens.REDUCTIONS_DEPTH:
            raise InputError(f"`reduction` must be one of {ens.REDUCTIONS_DEPTH}; got {reduction!r}.")
        e, c, h, w = values.shape
        pred, unc = ens._reduce(values, reduction, output_uncertainty)  # [1,C,H,W] per pixel and channel
        return pred, unc

    def renormalize(self, x: torch.Tensor) -> torch.Tensor:
        """After resizing a prediction ``[N,C,H,W]``: unit targets are unit again."""
        if not any(t.transfer == "unit" for t in self.targets):
            return x
        from .ensemble import normalize_normals

        parts, c = [], 0
        for t in self.targets:
            part = x[:, c:c + t.channels]
            parts.append(normalize_normals(part) if t.transfer == "unit" else part)
            c += t.channels
        return torch.cat(parts, dim=1)


# ---------------------------------------------------------------------------------------------------------------
# What the CLI writes


def _write_targets(m: Modality, p: torch.Tensor, out_dir: Path, stem: str, options: dict,
                   names: list[str] | None = None) -> dict:
    """One PNG per target (grey for 1 channel), plus .npy with ``npy``."""
    from ..io import images as io

    out, c = {}, 0
    targets = m.targets if names is None else [Target(n) for n in names]
    for t in targets:
        x = p[c:c + t.channels]  # [C,H,W]
        c += t.channels
        lo, hi = t.value_range
        shown = ((x - lo) / (hi - lo)).clamp(0, 1)
        out[t.name] = out_dir / f"{stem}_{t.name}.png"
        io.save_rgb(shown.expand(3, -1, -1) if t.channels == 1 else shown, out[t.name])
        if options.get("npy"):
            out[f"{t.name}_npy"] = out_dir / f"{stem}_{t.name}.npy"
            io.save_npy(x, out[f"{t.name}_npy"])
    return out


def write(m: Modality, prediction: torch.Tensor, out_dir: str | Path, stem: str, options: dict | None = None,
          target_names: list[str] | None = None) -> dict[str, Path]:
    """Write one prediction ``[C,H,W]`` the way the CLI does; returns the files by kind."""
    out_dir, options = Path(out_dir), dict(options or {})
    if m.writer is not None:
        return m.writer(m, prediction, out_dir, stem, options)
    return _write_targets(m, prediction, out_dir, stem, options, target_names)


# ---------------------------------------------------------------------------------------------------------------
# The entries


MODALITIES: dict[str, Modality] = {}


def register(m: Modality, *, replace: bool = False) -> Modality:
    """Add an entry (a new modality); ``replace`` to redefine one."""
    if not isinstance(m, Modality):
        raise InputError(f"register() takes a marigold.modality.Modality; got {type(m).__name__}.")
    if m.conditioning not in ("empty", "prompt"):
        raise InputError(f"modality {m.name!r}: `conditioning` must be 'empty' or 'prompt'; got {m.conditioning!r}.")
    if m.ensemble not in ("affine", "closest", "median"):
        raise InputError(f"modality {m.name!r}: `ensemble` must be 'affine', 'closest' or 'median'; "
                         f"got {m.ensemble!r}.")
    if not m.targets:
        raise InputError(f"modality {m.name!r} has no targets.")
    if m.name in MODALITIES and not replace and MODALITIES[m.name] != m:
        raise InputError(f"a modality named {m.name!r} is already registered; pass replace=True to redefine it.")
    MODALITIES[m.name] = m
    return m


def get(name: str) -> Modality:
    """The entry called ``name``; a one-line error naming the known ones otherwise."""
    if isinstance(name, Modality):
        return name
    m = MODALITIES.get(name)
    if m is None:
        raise InputError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}.")
    return m


# The built-in entries (depth, disparity, normals, intrinsics, segmentation) are registered by marigold/modalities/.

# model_index _class_name → task, for checkpoints that do not name their modality
_PIPELINE_TASKS = {"MarigoldDepthPipeline": "depth", "MarigoldPipeline": "depth", "RollingDepthPipeline": "depth",
                   "MarigoldNormalsPipeline": "normals", "MarigoldIntrinsicsPipeline": "intrinsics"}


def for_checkpoint(index: dict[str, Any], task: str | None = None) -> Modality:
    """The entry a checkpoint's (completed) ``model_index.json`` describes.

    A ``"modality"`` key (what our trainer writes) wins; else the task (from the pipeline class) and the
    prediction type / target names pick a built-in entry; intrinsics with other target names get an ad-hoc
    per-target entry, so that any published IID-style folder still runs.
    """
    name = index.get("modality")
    if name:
        if name not in MODALITIES:
            raise CheckpointError(f"the checkpoint's model_index.json names modality {name!r}, which is not "
                                  f"registered here (known: {', '.join(MODALITIES)}); import the module that "
                                  f"registers it first.")
        return MODALITIES[name]
    cls = index.get("_class_name", "")
    task = (task or _PIPELINE_TASKS.get(cls)
            or next((m.task for m in MODALITIES.values() if m.pipeline == cls), None)  # a registered entry's class
            or index.get("prediction_type"))
    if task == "depth":
        return MODALITIES["disparity" if index.get("prediction_type") == "disparity" else "depth"]
    if task == "normals":
        return MODALITIES["normals"]
    if task == "intrinsics":
        names = list((index.get("target_properties") or {}).get("target_names") or ["target"])
        for m in MODALITIES.values():
            if m.task == "intrinsics" and m.target_names == names:
                return m
        props = index.get("target_properties") or {}
        targets = tuple(Target(n, 3, "srgb" if (props.get(n) or {}).get("prediction_space") == "srgb" else "linear")
                        for n in names)
        return Modality(f"intrinsics[{','.join(names)}]", "intrinsics", targets, "MarigoldIntrinsicsPipeline",
                        "intrinsics", index_keys={"target_properties": props})
    if task in MODALITIES:
        return MODALITIES[task]
    raise CheckpointError(f"no modality serves task {task!r} (known: {', '.join(MODALITIES)}).")


def text_embedding(model: "MarigoldModel", prompt: str | None = None) -> torch.Tensor:
    """The conditioning text embedding ``[1,T,D]`` for ``model`` (float32, CPU).

    "empty" modalities: the cached empty-prompt embedding (``prompt`` must be empty). "prompt" modalities: the
    checkpoint's text encoder run on ``prompt`` (cached per model and prompt, see ``marigold.prompts``).
    """
    m = model.modality
    if m.conditioning == "empty":
        if prompt:
            raise InputError(f"{model.path.name} is a {m.name} model, which takes no text prompt; got {prompt!r}.")
        return model.empty_text_embedding
    from .prompts import prompt_embedding  # checks the prompt (empty, too long) and caches it per model

    return prompt_embedding(model, prompt)


__all__ = ["Target", "Modality", "MODALITIES", "register", "get", "for_checkpoint", "text_embedding", "write"]
