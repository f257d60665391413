"""The command line's work, one job to a file; ``marigold/cli.py`` is the entry (options, up-front checks, main).

- inputs.py: files and folders → images, videos, frame folders, and their output stems
- images.py: the checkpoint, the per-image loop (plain or tiled), the run's summary
- prompted.py: a prompt model (segmentation): images × prompts
- clips.py: videos, whole or split across processes
- outputs.py: the 3D files and the stereo view from a depth map

Nothing here imports ``marigold.cli`` (it sits on top), and nothing imports torch at module level (--help stays fast).
"""

DEFAULT_CHECKPOINT = "prs-eth/marigold-depth-v1-1"
SEGMENTATION_CHECKPOINT = "pcuenq/marigold-coco-segmentation"
