"""Video in and out: a video file (PyAV) or a folder of frames as a stream of frames with its frame rate;
colour mp4 and 16-bit PNG frames out; a disk-backed store for the two passes of ONE normalisation per clip.

Nothing here holds a whole clip in memory: sources decode one frame at a time, writers encode one frame at a
time, and :class:`DepthFrameStore` keeps each aligned frame on disk until the clip's range is known.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..io.images import IMAGE_SUFFIXES, load_image, save_depth_16bit

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
DEFAULT_FOLDER_FPS = Fraction(30)  # a folder of frames carries no rate; the CLI's --fps overrides it


def _av():
    try:
        import av
    except ImportError:
        raise InputError("Video files need PyAV: pip install av") from None
    return av


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _natural_key(p: Path) -> list:
    """``frame_2.png`` before ``frame_10.png``: digits compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


class VideoSource:
    """A clip as a stream: iterate for frames (``[H,W,3]`` uint8 RGB arrays, in order), plus what is known up front.

    ``fps`` is a :class:`~fractions.Fraction`; ``frame_count`` is ``None`` when the container does not say;
    ``size`` is ``(width, height)``; ``name`` is the stem outputs are named after. Iterating again starts over.
    """

    path: Path
    name: str
    fps: Fraction
    frame_count: int | None
    size: tuple[int, int]

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def __repr__(self) -> str:
        n = "?" if self.frame_count is None else self.frame_count
        w, h = self.size
        return f"<{type(self).__name__} {self.path} {w}×{h} {n} frames at {float(self.fps):g} fps>"


class VideoFile(VideoSource):
    """A video file read with PyAV, decoded frame by frame (never the whole clip)."""

    def __init__(self, path: str | os.PathLike):
        av = _av()
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such file.")
        if self.path.stat().st_size == 0:
            raise InputError(f"{self.path}: the video file is empty (0 bytes).")
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    raise InputError(f"{self.path}: the file has no video stream.")
                s = c.streams.video[0]
                rate = s.average_rate or s.guessed_rate or s.base_rate
                self.frame_count = int(s.frames) or None
                first = next(iter(self._frames(c)), None)  # proves the stream decodes, and gives the real size
        except InputError:
            raise
        except (av.FFmpegError, OSError, ValueError) as e:
            raise InputError(f"{self.path}: not a video file that can be decoded ({_reason(e)}).") from None
        if first is None:
            raise InputError(f"{self.path}: the video has no frames.")
        self.fps = Fraction(rate) if rate else DEFAULT_FOLDER_FPS
        self.size = (first.shape[1], first.shape[0])

    @staticmethod
    def _frames(container) -> Iterator[np.ndarray]:
        s = container.streams.video[0]
        s.thread_type = "AUTO"
        for frame in container.decode(s):
            a = frame.to_ndarray(format="rgb24")  # [H,W,3] uint8
            if frame.rotation:  # phone videos: the display matrix says how to turn the coded picture
                a = np.ascontiguousarray(np.rot90(a, k=round(frame.rotation / 90)))
            yield a

    def __iter__(self) -> Iterator[np.ndarray]:
        av = _av()
        i = 0
        try:
            with av.open(str(self.path)) as c:
                for a in self._frames(c):
                    if (a.shape[1], a.shape[0]) != self.size:
                        raise InputError(f"{self.path}: frame {i} is {a.shape[1]}×{a.shape[0]}, the first frame "
                                         f"{self.size[0]}×{self.size[1]}; a clip must keep one size.")
                    yield a
                    i += 1
        except (av.FFmpegError, OSError) as e:
            raise InputError(f"{self.path}: decoding stopped at frame {i} ({_reason(e)}); the file may be "
                             f"truncated.") from None


def _reason(e: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno and the path again."""
    text = getattr(e, "strerror", None) or str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class FrameFolder(VideoSource):
    """A folder of image files, one frame each, in natural name order; all frames must share one size."""

    def __init__(self, path: str | os.PathLike, fps: float | Fraction | None = None):
        self.path = Path(path)
        self.name = self.path.name
        self.files = sorted((f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES),
                            key=_natural_key)
        if not self.files:
            raise InputError(f"{self.path}: no image files in this folder ({', '.join(sorted(IMAGE_SUFFIXES))}).")
        sizes: dict[tuple[int, int], list[str]] = {}
        for f in self.files:  # headers only: cheap, and a mixed folder is refused before any work
            try:
                with Image.open(f) as im:
                    sizes.setdefault(im.size, []).append(f.name)
            except (OSError, SyntaxError, ValueError):
                raise InputError(f"{f}: not an image file that Pillow can read.") from None
        if len(sizes) > 1:
            parts = [f"{w}×{h} ({len(names)} frame{'s' * (len(names) > 1)}, e.g. {names[0]})"
                     for (w, h), names in sorted(sizes.items(), key=lambda kv: -len(kv[1]))]
            raise InputError(f"{self.path}: the frames of a clip must share one size; found " + ", ".join(parts) + ".")
        self.size = next(iter(sizes))
        self.frame_count = len(self.files)
        self.fps = Fraction(fps).limit_denominator(1001) if fps else DEFAULT_FOLDER_FPS

    def __iter__(self) -> Iterator[np.ndarray]:
        for f in self.files:
            yield np.asarray(load_image(f).convert("RGB"))  # [H,W,3] uint8


def open_video(path: str | os.PathLike, fps: float | Fraction | None = None) -> VideoSource:
    """A video file or a folder of frames → a :class:`VideoSource`. ``fps`` sets a frame folder's rate.

    Raises :class:`InputError` naming the path for a missing, empty, corrupt or frameless file and for a
    folder whose frames differ in size.
    """
    p = Path(path)
    if p.is_dir():
        return FrameFolder(p, fps)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder.")
    return VideoFile(p)


# --- writing -----------------------------------------------------------------------------------------------


def _to_uint8_hwc(rgb: torch.Tensor | np.ndarray) -> np.ndarray:
    """RGB ``[3,H,W]`` / ``[1,3,H,W]`` float 0..1 or ``[H,W,3]`` uint8 → ``[H,W,3]`` uint8."""
    if isinstance(rgb, torch.Tensor):
        t = rgb.detach().float().cpu()
        if t.ndim == 4:
            t = t[0]
        if t.ndim != 3 or t.shape[0] != 3:
            raise InputError(f"A video frame must be RGB [3,H,W]; got {tuple(rgb.shape)}.")
        return (t.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()  # [H,W,3]
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise InputError(f"A video frame array must be [H,W,3] uint8; got {a.shape} {a.dtype}.")
    return a


class VideoWriter:
    """Colour frames → an H.264 (yuv420p) mp4 at a given frame rate, one frame at a time.

    yuv420p needs even sides: an odd last row or column is repeated. The file appears only when the writer is
    closed without an error (written under a temporary name, then renamed). Falls back to MPEG-4 part 2
    where the FFmpeg build has no libx264.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, crf: int = 18):
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        if self.fps <= 0:
            raise InputError(f"Frame rate must be positive; got {fps}.")
        self.crf = crf
        self.frames = 0
        self._tmp = self.path.with_name(f".{self.path.stem}.tmp{self.path.suffix}")
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None

    def _open(self, w: int, h: int) -> None:
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        try:
            self._stream = self._container.add_stream("libx264", rate=self.fps)
            # no B-frames: with them the same frames gave a different file from run to run (x264's lookahead, on one
            # thread or several; CI's 1- and 2-process mp4s differed with every map equal); without, the file is a
            # function of the frames (macroblock-tree off did it too, at twice the size; this costs 7 %, no time)
            self._stream.options = {"crf": str(self.crf), "preset": "medium", "x264-params": "bframes=0"}
        except (av.FFmpegError, ValueError):
            self._stream = self._container.add_stream("mpeg4", rate=self.fps)
            self._stream.bit_rate = 8_000_000
        self._stream.width, self._stream.height = w + w % 2, h + h % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(self.fps.denominator, self.fps.numerator)
        self._size = (w, h)

    def write(self, rgb: torch.Tensor | np.ndarray) -> None:
        av = _av()
        a = _to_uint8_hwc(rgb)  # [H,W,3]
        h, w = a.shape[:2]
        if self._container is None:
            self._open(w, h)
        elif (w, h) != self._size:
            vw, vh = self._size
            raise InputError(f"{self.path}: frame {self.frames} is {w}×{h}, the video {vw}×{vh}.")
        if w % 2 or h % 2:
            a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # [H',W',3], even sides
        frame = av.VideoFrame.from_ndarray(a, format="rgb24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        if self._container is None:
            raise InputError(f"{self.path}: no frames were written; a video needs at least one.")
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001  (the file is deleted anyway)
                pass
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class DepthFrameWriter:
    """0..1 maps → ``folder/000000.png …`` as 16-bit greyscale PNG (value × 65535, like ``save_depth_16bit``)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, index: int) -> Path:
        return self.folder / f"{index:06d}.png"

    def write(self, index: int, value: torch.Tensor | np.ndarray) -> Path:
        return save_depth_16bit(value, self.path(index))


class DepthFrameStore:
    """Pass one of ONE normalisation per clip: each aligned frame goes to disk as float32 ``.npy`` while the
    clip's (lo, hi) is tracked; pass two reads them back in order. Memory stays one frame whatever the length.

    The files live in a hidden folder inside ``parent`` (the output folder: same disk, so ``keep`` can move
    them into place) and are deleted by :meth:`cleanup` unless moved with :meth:`keep`.
    """

    def __init__(self, parent: str | os.PathLike):
        Path(parent).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=".marigold-frames-", dir=parent))
        self.count = 0
        self.lo = float("inf")
        self.hi = float("-inf")

    def add(self, index: int, value: torch.Tensor | np.ndarray) -> None:
        a = value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, np.float32)
        a = np.squeeze(a).astype(np.float32, copy=False)  # [H,W]
        if not np.isfinite(a).all():
            raise InputError(f"Frame {index}: the prediction contains NaN or infinite values.")
        np.save(self.folder / f"{index:06d}.npy", a)
        self.lo = min(self.lo, float(a.min()))
        self.hi = max(self.hi, float(a.max()))
        self.count = max(self.count, index + 1)

    @property
    def value_range(self) -> tuple[float, float]:
        if self.count == 0:
            raise InputError("No frames were predicted.")
        return self.lo, self.hi

    def normalized(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """``(index, [1,H,W] float32 in 0..1)`` in frame order (or for ``indices``), all with the clip's one range."""
        lo, hi = self.value_range
        span = max(hi - lo, 1e-12)
        for i in range(self.count) if indices is None else indices:
            a = np.load(self.folder / f"{i:06d}.npy")  # [H,W]
            # a division, not a product with 1/span: the clip's maximum must map to exactly 1 (65535)
            yield i, ((torch.from_numpy(a) - lo) / span).clamp(0.0, 1.0)[None]  # [1,H,W]

    def keep(self, folder: str | os.PathLike) -> Path:
        """Move the raw (aligned, not normalised) frames to ``folder`` instead of deleting them."""
        dst = Path(folder)
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(self.folder, dst)
        self.folder = dst
        return dst

    def cleanup(self) -> None:
        if self.folder.name.startswith(".marigold-frames-"):
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "DepthFrameStore":
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
