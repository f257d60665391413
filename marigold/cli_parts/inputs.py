"""The command line's inputs: files and folders → images, videos and frame folders, and their output stems."""

from __future__ import annotations

from pathlib import Path


def collect_inputs(inputs: list[str], video: bool = False) -> list[Path]:
    """Files and folders → image files, video files and (with ``video``) frame folders, in the given order.

    A folder gives its image files and its video files; with ``video`` a folder of images is itself one clip
    (returned as the folder), and a folder with only video files still gives those files.
    """
    from ..errors import InputError
    from ..io.images import IMAGE_SUFFIXES
    from ..video.io import VIDEO_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            images = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            videos = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
            if not images and not videos:
                raise InputError(f"{p}: no image or video files in this folder "
                                 f"({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))}).")
            files.extend(([p] if images else []) if video else images)
            files.extend(videos)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such file or folder.")
    return files


def is_clip(path: Path) -> bool:
    """A video file, or a folder (only collected as a clip under --video)."""
    from ..video.io import is_video_file

    return path.is_dir() or is_video_file(path)


def output_stems(files: list[Path]) -> list[str]:
    """Output stems; a stem seen twice (same name in two folders) gets a suffix so nothing is overwritten."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        stem = f.name if f.is_dir() else f.stem
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}_{n}")
    return out
