"""The modalities: one entry each, described by :class:`marigold.core.modality.Modality` and registered on import.

- ``depth``: depth and disparity; ``normals``; ``intrinsics``: IID appearance and lighting; ``segmentation``:
  text-grounded segmentation (Cocogold: a prompt, a painted target; ``marigold.segment``).

A new modality is one more entry (a module here, or a ``marigold.modality.register(...)`` call in your own code)
plus its data loader in ``train/data``; the loader, sampler, ensembling, CLI, nodes and trainer read the entry.
"""

# each registers its entries, in this order (the order `known: ...` messages list them)
from . import depth  # noqa: F401, I001
from . import normals  # noqa: F401
from . import intrinsics  # noqa: F401
from . import segmentation  # noqa: F401
