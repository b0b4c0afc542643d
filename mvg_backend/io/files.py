"""Reading inputs from disk and writing outputs so that nothing is left half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import MVGInputError
from .dicom import is_dicom, read_dicom


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``[H,W]`` or ``[H,W,3|4]`` RGB(A), keeping its bit depth (uint8/uint16).

    DICOM files are read with :func:`read_dicom` (float 0..1, windowed, MONOCHROME1 inverted).
    """
    p = Path(path)
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


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    """Write float ``[H,W]`` / ``[H,W,3]`` in 0..1 as an 8-bit PNG."""
    data = to_uint8(image)
    if data.ndim == 3:
        data = cv2.cvtColor(data, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), data):
        raise OSError(f"could not write {path}")


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
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))

    def __enter__(self) -> Path:
        return self.staging

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
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
