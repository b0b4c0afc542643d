"""H.264 MP4 out (PyAV, else imageio-ffmpeg), and back in for checks.

Browser-playable: ``libx264``, ``yuv420p``, ``+faststart``. yuv420p needs even sides, so an odd width or
height is edge-padded by one pixel (and the caller is told). OpenCV's wheels cannot write H.264.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import MVGInputError

INSTALL_HINT = "pip install av (PyAV, as ComfyUI uses) or pip install imageio-ffmpeg"


def _rate(fps: float) -> Fraction:
    if not np.isfinite(fps) or not 0.1 <= fps <= 240:
        raise MVGInputError(f"fps={fps!r}: use a frame rate between 0.1 and 240 (e.g. 8).")
    return Fraction(round(float(fps) * 1000), 1000).limit_denominator(1001)


def even_frames(frames: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """uint8 ``[N,H,W,3]`` edge-padded at the bottom/right to even sides (H.264 yuv420p), with a note."""
    h, w = frames.shape[1:3]
    pad_h, pad_w = h % 2, w % 2
    if not (pad_h or pad_w):
        return frames, []
    note = f"video: frames are {w}x{h}; edge-padded to {w + pad_w}x{h + pad_h} (H.264 yuv420p needs even sides)."
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge"), [note]


def _as_uint8(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise MVGInputError(f"video frames: expected [N,H,W,3] with N >= 1, got shape {tuple(frames.shape)}.")
    if frames.dtype != np.uint8:
        frames = (np.clip(frames.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(frames)


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 8.0, *, crf: int = 18) -> list[str]:
    """Write ``frames`` (float 0..1 or uint8, ``[N,H,W,3]`` RGB) as H.264 MP4 at ``fps``; returns notes."""
    rate = _rate(fps)
    data, notes = even_frames(_as_uint8(frames))
    try:
        import av  # noqa: F401
    except ImportError:
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise MVGInputError(f"writing MP4 needs PyAV or imageio-ffmpeg: {INSTALL_HINT}.") from None
        _write_imageio(Path(path), data, float(rate), crf)
        return notes + ["video written with imageio-ffmpeg."]
    _write_pyav(Path(path), data, rate, crf)
    return notes


def _write_pyav(path: Path, frames: np.ndarray, rate: Fraction, crf: int) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_imageio(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), (frames.shape[2], frames.shape[1]), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", quality=None, macro_block_size=2,
                                         output_params=["-crf", str(crf), "-movflags", "+faststart"])
    writer.send(None)
    for image in frames:
        writer.send(np.ascontiguousarray(image))
    writer.close()


def read_video(path: str | Path) -> tuple[np.ndarray, float, str]:
    """``(uint8 [N,H,W,3], fps, codec name)`` of a video file, decoded with PyAV (for checks and tests)."""
    try:
        import av
    except ImportError:
        raise MVGInputError(f"reading video needs PyAV: {INSTALL_HINT}.") from None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        codec = stream.codec_context.name
    return np.stack(frames), fps, codec
