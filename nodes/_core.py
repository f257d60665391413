"""The core library, whichever way this pack was installed.

Inside ComfyUI the pack is loaded as a package (``custom_nodes/<pack>/``), so the core is its sibling
``<pack>.marigold``; with ``pip install`` (or in the library's own tests) it is the top-level ``marigold``.
"""

try:
    from .. import marigold  # noqa: F401  (custom_nodes/<pack>/marigold)
except (ImportError, ValueError):  # nodes/ is a top-level package: the installed library
    import marigold  # noqa: F401

from importlib import import_module as _imp

_pkg = marigold.__name__
image = _imp(f"{_pkg}.image")
checkpoint = _imp(f"{_pkg}.checkpoint")
colorize = _imp(f"{_pkg}.colorize")
io = _imp(f"{_pkg}.io")
devices = _imp(f"{_pkg}.devices")
video = _imp(f"{_pkg}.video")
video_output = _imp(f"{_pkg}.video_output")
segmentation = _imp(f"{_pkg}.segment")  # the module (``marigold.segment`` is its function)
