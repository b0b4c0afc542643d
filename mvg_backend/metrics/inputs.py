"""Read a trajectory from disk: a folder of frame images (in name order) or a video file (PyAV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MVGInputError
from ..io.files import read_image
from .common import as_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video as float32 ``[T,H,W,3]`` in 0..1 (PyAV)."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a requirement
        raise MVGInputError(f"reading {Path(path).name} needs PyAV: pip install av ({e}).") from e
    frames = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as e:
        raise MVGInputError(f"{Path(path).name}: not a readable video ({e}).") from e
    if not frames:
        raise MVGInputError(f"{Path(path).name}: the video has no frames.")
    return np.stack(frames).astype(np.float32) / 255.0


def read_frames(path: str | Path) -> np.ndarray:
    """A trajectory from a folder of images (sorted by name) or a video file, as float32 ``[T,H,W,3]``."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            raise MVGInputError(f"{str(p)!r} holds no frame images ({', '.join(IMAGE_SUFFIXES)}).")
        frames = [as_image(read_image(f), f.name) for f in files]
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise MVGInputError(f"{str(p)!r}: the frames differ in size ({sorted(shapes)}); give frames of one size.")
        return np.stack(frames)
    if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
        return read_video(p)
    if p.is_file():
        raise MVGInputError(f"{p.name}: give a folder of frames or a video ({', '.join(VIDEO_SUFFIXES)}).")
    raise MVGInputError(f"{str(p)!r} does not exist.")
