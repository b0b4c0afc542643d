"""DICOM images as display-ready float arrays (pydicom): modality LUT, window or VOI LUT, polarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MVGInputError


def is_dicom(path: str | Path) -> bool:
    """True for a ``.dcm``/``.dicom`` name or a file with the ``DICM`` preamble."""
    p = Path(path)
    if p.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(p, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM LINEAR windowing (PS3.3 C.11.2.1.2.1) onto 0..1."""
    width = max(float(width), 1.0)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)


def read_dicom(path: str | Path, window: str | tuple[float, float] = "auto", frame: int = 0) -> np.ndarray:
    """A DICOM file as float32 ``[H,W]`` (grayscale) or ``[H,W,3]`` (colour) in 0..1, as a viewer shows it.

    Grayscale: the modality LUT (rescale slope/intercept) is applied, then ``window``: ``"auto"`` uses
    the file's first window centre/width, else its VOI LUT, else the data's min..max; ``"minmax"`` always
    uses min..max; ``(center, width)`` sets it. MONOCHROME1 (white = low values) is inverted so that
    the result always reads MONOCHROME2 (air dark on an X-ray). Multi-frame files give ``frame``.
    """
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError as exc:  # pragma: no cover - pydicom is a requirement
        raise MVGInputError("reading DICOM needs pydicom: pip install pydicom") from exc
    p = Path(path)
    if p.is_dir():
        raise MVGInputError(f"DICOM file {str(p)!r} is a folder (a DICOM series?); give one image file in it.")
    if not p.is_file():
        raise MVGInputError(f"DICOM file {str(p)!r} does not exist.")
    try:
        ds = pydicom.dcmread(p)
    except InvalidDicomError as exc:
        raise MVGInputError(f"{p.name!r} is not a DICOM file ({exc}).") from None
    if "PixelData" not in ds:
        raise MVGInputError(f"{p.name!r} holds no image (no Pixel Data); pick an image instance, not a report/DICOMDIR.")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # decoders raise many types
        from .dicom_info import decoder_hint

        raise MVGInputError(decoder_hint(ds, p.name, exc)) from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1))
    if frames > 1:
        if not 0 <= frame < frames:
            raise MVGInputError(f"{p.name!r} has {frames} frames; frame={frame} is out of range.")
        pixels = pixels[frame]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if samples == 3:  # pydicom already converts YBR colour to RGB
        bits = int(ds.get("BitsStored", 8))
        return (pixels.astype(np.float32) / float(2**bits - 1)).clip(0.0, 1.0)
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if isinstance(window, tuple):
        out = _window(values, *window)
    elif window == "auto" and "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = (v[0] if isinstance(v, pydicom.multival.MultiValue) else v
                         for v in (ds.WindowCenter, ds.WindowWidth))
        out = _window(values, float(center), float(width))
    elif window == "auto" and "VOILUTSequence" in ds:
        values = np.asarray(apply_voi_lut(values, ds, prefer_lut=True), dtype=np.float64)
        out = None
    elif window not in ("auto", "minmax"):
        raise MVGInputError(f"window={window!r}: use 'auto', 'minmax' or (center, width).")
    else:
        out = None
    if out is None:
        lo, hi = float(values.min()), float(values.max())
        out = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32)
