"""Files in and out: reading images, writing 16-bit PNG / EXR / npy (``images``); colour maps (``colorize``).
"""

from ..moved import package_getattr  # noqa: E402

__getattr__ = package_getattr(__name__)  # the names the flat io.py held, deprecated (marigold/moved/)
