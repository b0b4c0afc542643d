"""The generated sequence as ONE multi-frame DICOM Secondary Capture that viewers play as a cine loop.

- X-ray (grayscale) domains: Multi-frame Grayscale Byte SC Image (``1.2.840.10008.5.1.4.1.1.7.2``),
  MONOCHROME2, 8 bits; other domains: Multi-frame True Color SC Image (``...7.4``), RGB, 8 bits.
- A new object: new Study, Series and SOP Instance UIDs; ImageType ``DERIVED\\SECONDARY``; Conversion Type
  ``SYN`` (synthetic image); "SYNTHETIC — MVG simulation" in SeriesDescription and ImageComments.
- Cine: Frame Increment Pointer -> Frame Time (ms) = 1000 / fps, plus Cine Rate and Recommended Display
  Frame Rate, so the loop plays at the video's speed.
- Patient and study identifiers of a ``source`` DICOM are copied only with ``copy_patient=True``;
  otherwise the object is anonymous (empty patient attributes, Patient Identity Removed YES).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MVGInputError

GRAYSCALE_SC = "1.2.840.10008.5.1.4.1.1.7.2"  # Multi-frame Grayscale Byte Secondary Capture Image Storage
TRUE_COLOR_SC = "1.2.840.10008.5.1.4.1.1.7.4"  # Multi-frame True Color Secondary Capture Image Storage
SYNTHETIC_LABEL = "SYNTHETIC — MVG simulation"
COLOR_MODES = ("auto", "grayscale", "rgb")
GRAYSCALE_DOMAINS = ("chest_xray",)
# copied from the source only on opt-in (Patient module, and the General Study identifiers)
PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
                    "PatientAge", "OtherPatientIDsSequence")
STUDY_KEYWORDS = ("AccessionNumber", "StudyID", "StudyDescription", "ReferringPhysicianName", "StudyDate",
                  "StudyTime")


def color_mode_for(domain: str | None, mode: str = "auto") -> str:
    """``"grayscale"`` for X-ray domains (with ``mode="auto"``), else ``"rgb"``; an explicit mode wins."""
    if mode not in COLOR_MODES:
        raise MVGInputError(f"color={mode!r}: use one of {', '.join(COLOR_MODES)}.")
    if mode != "auto":
        return mode
    return "grayscale" if domain in GRAYSCALE_DOMAINS else "rgb"


def color_mode_for_frames(frames: Any, mode: str = "auto") -> str:
    """``"grayscale"`` when every frame is gray (R = G = B to 1/255), else ``"rgb"``; an explicit mode wins."""
    if mode not in COLOR_MODES:
        raise MVGInputError(f"color={mode!r}: use one of {', '.join(COLOR_MODES)}.")
    if mode != "auto":
        return mode
    data = np.asarray(frames.detach().cpu().float().numpy() if hasattr(frames, "detach") else frames, np.float32)
    if data.ndim < 3 or data.shape[-1] == 1:
        return "grayscale"
    spread = float(np.abs(data[..., :3] - data[..., :1]).max())
    return "grayscale" if spread <= (1.0 / 255 if data.max() <= 1.0 else 1.0) else "rgb"


def frames_to_pixels(frames: Any, color: str) -> np.ndarray:
    """uint8 ``[N,H,W]`` (grayscale: Rec. 601 luma) or ``[N,H,W,3]`` (rgb) from float 0..1 / uint8 frames."""
    data = np.asarray(frames.detach().cpu().float().numpy() if hasattr(frames, "detach") else frames)
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4 or data.shape[-1] not in (1, 3, 4) or len(data) == 0:
        raise MVGInputError(f"DICOM frames: expected [N,H,W,3] with N >= 1, got shape {tuple(data.shape)}.")
    data = data[..., :3] if data.shape[-1] == 4 else data
    if data.dtype != np.uint8:
        data = (np.clip(data.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if data.shape[-1] == 1:
        data = np.repeat(data, 3, axis=-1)
    if color == "grayscale":
        luma = data.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.ascontiguousarray(np.clip(luma + 0.5, 0, 255).astype(np.uint8))
    return np.ascontiguousarray(data)


def _source_dataset(source: Any):
    import pydicom

    if source is None:
        return None
    if isinstance(source, pydicom.Dataset):
        return source
    p = Path(source)
    if not p.is_file():
        raise MVGInputError(f"source DICOM {str(p)!r} does not exist; give the DICOM the sequence was made from.")
    try:
        return pydicom.dcmread(p, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises several types for bad files
        raise MVGInputError(f"source DICOM {p.name!r} could not be read ({exc}).") from None


def build_dataset(frames: Any, fps: float, *, color: str = "rgb", source: Any = None, copy_patient: bool = False,
                  description: str = "", software_version: str = "", created: _dt.datetime | None = None):
    """The multi-frame Secondary Capture as a pydicom ``FileDataset`` (not yet written)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    if not np.isfinite(fps) or not 0.1 <= fps <= 240:
        raise MVGInputError(f"fps={fps!r}: use a frame rate between 0.1 and 240 (the video's fps).")
    if color not in ("grayscale", "rgb"):
        raise MVGInputError(f"color={color!r}: use 'grayscale' or 'rgb'.")
    if copy_patient and source is None:
        raise MVGInputError("copy_patient needs the source DICOM: give the DICOM the sequence was made from, "
                            "or leave copy_patient off (anonymous output).")
    pixels = frames_to_pixels(frames, color)
    src = _source_dataset(source) if copy_patient else None
    n, rows, cols = pixels.shape[:3]
    now = created or _dt.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sop_class = GRAYSCALE_SC if color == "grayscale" else TRUE_COLOR_SC
    sop_instance = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)

    # SOP Common
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the em dash in the SYNTHETIC label
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    # Patient (anonymous unless the user opts in)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, "")
    if src is not None:
        for keyword in PATIENT_KEYWORDS:
            if keyword in src:
                ds[keyword] = src[keyword]
    else:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "MVG synthetic object: no identifiers copied from the source"
    # General Study (always a new study)
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = date, time
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    if src is not None:
        for keyword in STUDY_KEYWORDS:
            if keyword in src:
                ds[keyword] = src[keyword]
    # General Series
    ds.Modality = "OT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = SYNTHETIC_LABEL
    ds.Laterality = ""  # Type 2C (paired body parts): unknown for a synthetic series
    # General Equipment, SC Equipment
    ds.Manufacturer = "ComfyUI-MVG"
    ds.ConversionType = "SYN"
    ds.SecondaryCaptureDeviceManufacturer = "ComfyUI-MVG"
    ds.SecondaryCaptureDeviceManufacturerModelName = "MVG"
    if software_version:
        ds.SecondaryCaptureDeviceSoftwareVersions = software_version
    # General Image
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.ContentDate, ds.ContentTime = date, time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ImageComments = SYNTHETIC_LABEL + (f": {description}" if description else "")
    ds.DerivationDescription = "Simulated disease progression (MVG: PIE progressive editing and transitions)"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    if src is not None and "SOPInstanceUID" in src and "SOPClassUID" in src:
        ref = pydicom.Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
        ds.SourceImageSequence = Sequence([ref])
    # Image Pixel
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if color == "grayscale":
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        # SC Multi-frame Image: required for MONOCHROME2 grayscale
        ds.PresentationLUTShape = "IDENTITY"
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    else:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    # Multi-frame, Cine
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    ds.FrameTime = f"{1000.0 / fps:.6g}"
    ds.CineRate = max(1, round(fps))
    ds.RecommendedDisplayFrameRate = max(1, round(fps))
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OB"
    return ds


def write_multiframe_sc(path: str | Path, frames: Any, fps: float, **options: Any) -> Path:
    """Write :func:`build_dataset` to ``path`` (a DICOM Part 10 file, renamed into place) and return the path."""
    import os
    import tempfile

    ds = build_dataset(frames, fps, **options)
    target = Path(path)
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:  # written beside the target and renamed: never half a file under the final name
        ds.save_as(staging, enforce_file_format=True)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    return target
