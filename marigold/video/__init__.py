"""Video depth: RollingDepth snippets and Marigold's video mode, streamed in bounded memory.

- ``pipeline``: presets, snippets, shared noise, the streaming window, ``iter_video_depth`` / ``predict_video``.
- ``frame_align``: co-alignment (``marigold.core.coalign``) of Marigold's per-frame predictions (video mode).
- ``io``: PyAV reading and writing, frame folders, 16-bit frame stores; ``output``: one normalisation per clip.
- ``distributed``: one clip split across processes; ``flow``: optional optical-flow rows.
"""
