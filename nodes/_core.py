"""The core library, whichever way this pack was installed, reached by plain imports that editors follow.

Inside ComfyUI the pack is loaded as a package (``custom_nodes/<pack>/``), so the core is its sibling
``<pack>.marigold``, reached by relative imports; with ``pip install`` (or in the library's own tests) ``nodes`` is a
top-level package, a relative import beyond it raises ImportError, and the installed top-level ``marigold`` is used.
The two branches name the same modules. The ComfyUI end-to-end tests load the pack the first way,
tests/test_nodes_inprocess.py the second.
"""

try:
    from .. import marigold  # custom_nodes/<pack>/marigold
    _IN_PACK = True
except ImportError:  # nodes/ is a top-level package: the installed library
    _IN_PACK = False

if _IN_PACK:
    # only the probe above may fall back: an ImportError from here on is real and must surface
    from .. import marigold  # noqa: F811
    from ..marigold.core import checkpoint, completion, devices, image, metric, tiling
    from ..marigold.geometry import mesh, relief, stereo
    from ..marigold.io import colorize
    from ..marigold.io import images as io
    from ..marigold.modalities import segmentation  # the module (``marigold.segment`` is its function)
    from ..marigold.video import fusion as video_fusion
    from ..marigold.video import output as video_output
    from ..marigold.video import pipeline as video
else:
    import marigold
    from marigold.core import checkpoint, completion, devices, image, metric, tiling
    from marigold.geometry import mesh, relief, stereo
    from marigold.io import colorize
    from marigold.io import images as io
    from marigold.modalities import segmentation  # the module (``marigold.segment`` is its function)
    from marigold.video import fusion as video_fusion
    from marigold.video import output as video_output
    from marigold.video import pipeline as video

__all__ = ["marigold", "checkpoint", "completion", "metric", "devices", "image", "tiling", "mesh", "relief", "stereo",
           "segmentation", "colorize", "io", "video", "video_fusion", "video_output"]
