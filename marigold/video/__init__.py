"""Video depth: RollingDepth snippets and Marigold's video mode, streamed in bounded memory.

- ``pipeline``: the stream, ``iter_video_depth`` / ``predict_video`` (and every name of the files below it);
  ``presets``: presets and option checks; ``frames``: frames in and out, ``ClipNormalizer``; ``snippets``: the
  reference's snippet rules and the snippet runner; ``streaming``: the streaming co-alignment; ``refine``: the
  streamed refinement.
- ``frame_align``: co-alignment (``marigold.core.coalign``) of Marigold's per-frame predictions (video mode).
- ``io``: PyAV reading and writing, frame folders, 16-bit frame stores; ``output``: one normalisation per clip.
- ``distributed``: one clip split across processes; ``flow``: optional optical-flow rows.
"""

from ..moved import package_getattr  # noqa: E402

__getattr__ = package_getattr(__name__)  # the names the flat video.py held, deprecated (marigold/moved/)
