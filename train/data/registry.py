"""The data sets registered from outside the built-in list: a new modality's loaders (``register_dataset``), the
sets of one modality only (segmentation's image + prompt + mask), and how such a task's samples become tensors.
Its own module so that the loaders that register themselves (train.data.segmentation) need not import the
package that imports them."""

from __future__ import annotations

# loaders added by code outside this package (a new modality's data): name → factory(path, **options)
REGISTERED: dict = {}
# loaders of one modality only (its samples are not DepthSample: segmentation's image + prompt + mask): task →
# {name → (factory, needs_path)}; such a task trains on these sets only, and they serve no other task
TASK_SETS: dict[str, dict] = {}
# how such a task's samples become the trainer's tensors: task → prepare(sample, size, flip, **options) → dict
PREPARERS: dict = {}


def register_dataset(name: str, factory, *, needs_path: bool = False, task: str | None = None,
                     prepare=None) -> None:
    """Make ``name`` usable in data specs (``--data NAME[:PATH]``): ``factory(path, **options)`` returns a
    data set whose items are :class:`DepthSample` (``len()``, ``[i]``, ``native_size``). With the modality's
    entry in :mod:`marigold.modality`, this is all a new modality needs.

    ``task``: the set serves that modality only (its items are that modality's own samples, e.g.
    :class:`train.data.segmentation.SegmentationSample`), under ``name`` even where another set of that name
    exists for the other tasks; ``prepare(sample, size, flip, **stream_options)`` then turns its samples into the
    trainer's tensors (once per task)."""
    if task is None:
        REGISTERED[name] = (factory, needs_path)
    else:
        TASK_SETS.setdefault(task, {})[name] = (factory, needs_path)
    if prepare is not None:
        PREPARERS[task] = prepare


def task_set_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for sets in TASK_SETS.values() for n in sets))
