"""Reading inputs from disk and writing outputs so that nothing is left half-written."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from ..errors import MVGInputError, MVGRuntimeError
from .dicom import is_dicom, read_dicom


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``[H,W]`` or ``[H,W,3|4]`` RGB(A), keeping its bit depth (uint8/uint16).

    DICOM files are read with :func:`read_dicom` (float 0..1, windowed, MONOCHROME1 inverted).
    """
    p = Path(path)
    if p.is_dir():
        raise MVGInputError(f"image file {str(p)!r} is a folder; give an image file (PNG, JPEG, TIFF, BMP, DICOM...).")
    if not p.is_file():
        raise MVGInputError(f"image file {str(p)!r} does not exist.")
    if is_dicom(p):
        return read_dicom(p)
    data = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise MVGInputError(f"{p.name!r} could not be read as an image (PNG, JPEG, TIFF, BMP, WebP...).")
    if data.ndim == 3 and data.shape[-1] == 3:
        data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
    elif data.ndim == 3 and data.shape[-1] == 4:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA)
    return data


def read_text(path: str | Path, what: str) -> str:
    """A UTF-8 text file (a leading BOM is allowed), with clear errors for a folder, a missing file or other
    encodings. ``what`` names the input in messages (e.g. ``"--prompts"``)."""
    p = Path(path)
    if p.is_dir():
        raise MVGInputError(f"{what} {str(p)!r} is a folder; give a text file.")
    if not p.is_file():
        raise MVGInputError(f"{what} {str(p)!r} does not exist.")
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MVGInputError(
            f"{what} {str(p)!r} is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "save it as UTF-8 (e.g. 'Save as... UTF-8' in your editor, or iconv -f latin1 -t utf-8)."
        ) from None


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write float ``[H,W]`` / ``[H,W,3]`` in 0..1 as an 8-bit PNG."""
    data = to_uint8(image)
    if data.ndim == 3:
        data = cv2.cvtColor(data, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data):
        raise OSError(f"could not write {path}")


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".webp")


def check_output_file(path: str | Path, what: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> Path:
    """Check, before anything is written, that ``path`` can take a new file: not a folder, a known suffix, an
    existing parent folder. ``what`` names the option in messages (e.g. ``"--out"``)."""
    p = Path(path)
    if p.is_dir():
        raise MVGInputError(f"{what} {str(p)!r} is a folder; give a file name, e.g. {str(p / ('mask' + suffixes[0]))!r}.")
    if p.suffix.lower() not in suffixes:
        got = f"ends in {p.suffix!r}" if p.suffix else "has no extension"
        others = f" (or {', '.join(suffixes[1:])})" if len(suffixes) > 1 else ""
        raise MVGInputError(f"{what} {str(p)!r} {got}; end it in {suffixes[0]}{others}.")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise MVGInputError(f"{what} {str(p)!r}: the folder {str(parent)!r} does not exist; create it first or "
                            "choose another folder.")
    return p


def write_pngs(outputs: Mapping[Path, np.ndarray]) -> None:
    """Write every ``path: image`` (float 0..1) all-or-nothing: each to a temporary file beside its target, then
    all renamed into place; on any failure (or interruption) none of the targets is created or changed."""
    staged: dict[Path, Path] = {}
    try:
        for path, image in outputs.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent or ".")
            os.close(fd)
            staged[path] = Path(tmp)
            write_png(staged[path], image)
        with deferred_termination():
            for path, tmp in staged.items():
                os.replace(tmp, path)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ termination
class Terminated(SystemExit):
    """SIGTERM, raised as an exception so that ``with``/``finally`` clean-ups run (exit status 143)."""


_deferring = threading.local()


def _on_sigterm(signum: int, _frame: object) -> None:
    if getattr(_deferring, "active", False):
        _deferring.pending = signum
        return
    raise Terminated(128 + signum)


@contextmanager
def terminate_cleanly() -> Iterator[None]:
    """While the block runs, SIGTERM raises ``SystemExit(143)`` like Ctrl-C raises ``KeyboardInterrupt``, so
    staging folders and partial files are removed (the default action would kill the process on the spot).
    Only in the main thread (where Python runs signal handlers); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_frame_folders(out: Path, frames: np.ndarray, keyframes: np.ndarray) -> None:
    """``out/frames/frame_000.png …`` and ``out/keyframes/keyframe_00.png …`` (frames float 0..1)."""
    (out / "frames").mkdir()
    (out / "keyframes").mkdir()
    for i, frame in enumerate(frames):
        write_png(out / "frames" / f"frame_{i:03d}.png", frame)
    for k, frame in enumerate(keyframes):
        write_png(out / "keyframes" / f"keyframe_{k:02d}.png", frame)


def run_command_line(command: Callable[[], int]) -> int:
    """A CLI command's exit status: 2 with ``error: ...`` for a bad input or a failed run, 130 on Ctrl-C; SIGTERM
    cleans up like Ctrl-C (no staging folder is left behind) and exits 143."""
    import sys

    try:
        with terminate_cleanly():
            return command()
    except (MVGInputError, MVGRuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: nothing was written.", file=sys.stderr)
        return 130
    except Terminated:
        print("\nterminated (SIGTERM): nothing was written.", file=sys.stderr)
        raise


@contextmanager
def deferred_termination() -> Iterator[None]:
    """Hold a SIGTERM (with :func:`terminate_cleanly` active) or a Ctrl-C that arrives during the block (a commit
    of renames) until it has finished, so that no output is left half-replaced."""
    interrupted: list[bool] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True)) if main else None
    _deferring.active, _deferring.pending = True, None
    try:
        yield
    finally:
        _deferring.active = False
        if main:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if _deferring.pending is not None:
        raise Terminated(128 + _deferring.pending)
    if interrupted:
        raise KeyboardInterrupt


class OutputDir:
    """Stage outputs in a temporary folder beside ``target`` and move them in only when all succeeded.

    ``target`` must be missing or empty unless ``overwrite``; then only the files this run writes are
    replaced (others are left alone).
    """

    def __init__(self, target: str | Path, *, overwrite: bool = False) -> None:
        self.target = Path(target)
        if self.target.exists() and not self.target.is_dir():
            raise MVGInputError(f"--out {str(self.target)!r} is a file; give a folder.")
        if self.target.is_dir() and any(self.target.iterdir()) and not overwrite:
            raise MVGInputError(
                f"--out {str(self.target)!r} is not empty; choose a new folder or pass --overwrite "
                "(only the files this run writes are replaced)."
            )
        self.staging: Path | None = None

    def __enter__(self) -> Path:
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MVGInputError(f"--out {str(self.target)!r}: cannot create its parent folder ({exc.strerror}); "
                                "choose another place.") from None
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                with deferred_termination():
                    self._commit()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _commit(self) -> None:
        self.target.mkdir(parents=True, exist_ok=True)
        for src in sorted(self.staging.rglob("*")):
            if src.is_file():
                dst = self.target / src.relative_to(self.staging)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
