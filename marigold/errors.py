"""The errors a user reads. Every message names what was wrong and what to do about it.

All of them derive from :class:`MarigoldError` (itself a ``ValueError``), so callers that want one
``except`` clause have it, and the CLI and the ComfyUI nodes can show the message without a traceback.
"""


class MarigoldError(ValueError):
    """Base class of every error this package raises on purpose."""


class CheckpointError(MarigoldError):
    """A checkpoint is missing, incomplete, of the wrong kind, or cannot be downloaded."""


class InputError(MarigoldError):
    """An image, tensor or argument that the pipeline cannot use."""


class Cancelled(MarigoldError):
    """Raised by a cancel check to stop sampling between two denoising steps."""


class DependencyError(MarigoldError, ImportError):
    """An installed package is older than this package needs (raised at import, one line)."""
