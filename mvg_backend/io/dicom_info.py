"""What a DICOM file holds, without identifiers, and which decoder plugin a compressed one needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import MVGInputError

# Transfer syntaxes pydicom cannot decode on its own -> the plugin(s) to pip install
_PLUGINS: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg pylibjpeg-libjpeg (or Pillow)",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg pylibjpeg-libjpeg (or Pillow)",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg pylibjpeg-libjpeg",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg pylibjpeg-libjpeg",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pyjpegls (or pylibjpeg pylibjpeg-libjpeg)",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pyjpegls (or pylibjpeg pylibjpeg-libjpeg)",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg pylibjpeg-openjpeg (or Pillow)",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg pylibjpeg-openjpeg (or Pillow)",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle (pydicom's own RLE decoder should already work)",
}
# Only these go into a summary: nothing that names or dates a patient, study or institution
SAFE_FIELDS = ("Modality", "SOPClassUID", "PhotometricInterpretation", "BitsStored", "SamplesPerPixel")


def decoder_hint(ds: Any, name: str, exc: Exception) -> str:
    """A message for pixel data that could not be decoded: the transfer syntax and the plugin to install."""
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    label = f"{uid.name} ({uid})" if uid is not None else "an unknown transfer syntax"
    plugin = _PLUGINS.get(str(uid)) if uid is not None else None
    if plugin:
        return (f"{name!r} is compressed with {label}, and no installed decoder can read it: pip install {plugin}, "
                f"then try again ({exc}).")
    return (f"{name!r}: cannot decode its pixel data ({label}: {exc}). For compressed DICOM install a decoder, "
            "e.g. pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg.")


def read_header(path: str | Path):
    """The dataset without its pixel data (fast), or an :class:`MVGInputError` naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    if not p.is_file():
        raise MVGInputError(f"DICOM file {str(p)!r} does not exist.")
    try:
        return pydicom.dcmread(p, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise MVGInputError(f"{p.name!r} is not a readable DICOM file ({exc}).") from None


def frame_count(path: str | Path) -> int:
    return int(read_header(path).get("NumberOfFrames", 1) or 1)


def dicom_summary(path: str | Path, *, frame: int | str = 0, window: str = "") -> str:
    """One line about a DICOM image, with no patient, study or institution identifiers (no UIDs either)."""
    ds = read_header(path)
    sop = ds.get("SOPClassUID")
    sop_name = getattr(sop, "name", str(sop)) if sop is not None else "unknown SOP class"
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    parts = [
        f"DICOM {Path(path).name}: {ds.get('Modality', '?')}, {sop_name}",
        f"{ds.get('Columns', '?')}x{ds.get('Rows', '?')}",
        f"{int(ds.get('NumberOfFrames', 1) or 1)} frame(s)",
        f"{ds.get('PhotometricInterpretation', '?')}, {ds.get('BitsStored', '?')} bits stored",
    ]
    if ts is not None:
        parts.append(f"transfer syntax {ts.name}")
    parts.append(f"frame {frame}")
    if window:
        parts.append(f"window {window}")
    return ", ".join(parts)


WINDOW_MODES = ("file", "min-max", "custom")


def load_dicom_frames(path: str | Path, frame: int = 0, window: str = "file", center: float = 40.0,
                      width: float = 400.0) -> tuple[Any, str]:
    """``(float32 [N,H,W,3] in 0..1, summary)``: frame ``frame`` (0-based; ``-1`` = every frame, as a batch).

    ``window``: ``"file"`` (the file's window, else its VOI LUT, else min..max), ``"min-max"``, or ``"custom"``
    (``center``/``width`` in the modality values, e.g. Hounsfield units for CT). Colour files are not windowed.
    """
    import numpy as np

    from .dicom import read_dicom

    if window not in WINDOW_MODES:
        raise MVGInputError(f"window={window!r}: use one of {', '.join(WINDOW_MODES)}.")
    if window == "custom" and not width >= 1:
        raise MVGInputError(f"width={width!r}: a custom window needs a width >= 1 (e.g. 400 for CT soft tissue).")
    frames = frame_count(path)
    if frame < -1 or frame >= frames:
        raise MVGInputError(f"frame={frame}: {Path(path).name!r} has {frames} frame(s); use 0..{frames - 1}, or -1 "
                            "for all of them.")
    how = {"file": "auto", "min-max": "minmax", "custom": (float(center), float(width))}[window]
    chosen = range(frames) if frame == -1 else [frame]
    images = []
    for i in chosen:
        image = read_dicom(path, window=how, frame=i)
        images.append(np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image)
    label = {"file": "from the file", "min-max": "min..max",
             "custom": f"centre {center:g} width {width:g}"}[window]
    summary = dicom_summary(path, frame="all" if frame == -1 else frame, window=label)
    return np.stack(images).astype(np.float32), summary
