"""DICOM out (one multi-frame Secondary Capture, a cine loop) read back with pydicom and validated with dicom3tools'
``dciodvfy``; DICOM in: the summary without identifiers, frames, windows, and compressed files without a decoder."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from mvg_backend.errors import MVGInputError
from mvg_backend.io.dicom import read_dicom
from mvg_backend.io.dicom_info import dicom_summary, frame_count
from mvg_backend.io.dicom_write import (GRAYSCALE_SC, SYNTHETIC_LABEL, TRUE_COLOR_SC, color_mode_for,
                                       write_multiframe_sc)


def _frames(n: int = 6, h: int = 33, w: int = 40) -> np.ndarray:
    return np.random.default_rng(0).random((n, h, w, 3)).astype(np.float32)


def _validate(path) -> None:
    """dciodvfy (Debian package dicom3tools; .ci/run installs it): no line may start with "Error"."""
    tool = shutil.which("dciodvfy")
    if tool is None:  # the attribute checks above still ran; CI installs the validator
        return
    out = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    report = out.stdout + out.stderr
    assert not [line for line in report.splitlines() if line.startswith("Error")], report


@pytest.mark.parametrize("color,sop,photometric", [("grayscale", GRAYSCALE_SC, "MONOCHROME2"),
                                                   ("rgb", TRUE_COLOR_SC, "RGB")])
def test_multiframe_secondary_capture_round_trip(tmp_path, color, sop, photometric):
    frames = _frames()
    source = get_testdata_file("CT_small.dcm")
    path = write_multiframe_sc(tmp_path / "seq.dcm", frames, 7.5, color=color, source=source)
    ds = pydicom.dcmread(path)
    src = pydicom.dcmread(source)
    assert ds.SOPClassUID == sop and ds.file_meta.MediaStorageSOPClassUID == sop
    assert ds.PhotometricInterpretation == photometric
    for uid in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert getattr(ds, uid) != getattr(src, uid)  # a new object
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds.SeriesDescription == SYNTHETIC_LABEL and ds.ImageComments.startswith(SYNTHETIC_LABEL)
    assert ds.ConversionType == "SYN" and ds.Modality == "OT"
    assert int(ds.NumberOfFrames) == 6 and (ds.Rows, ds.Columns) == (33, 40)
    assert ds.FrameIncrementPointer == pydicom.tag.Tag("FrameTime")
    assert float(ds.FrameTime) == pytest.approx(1000 / 7.5, rel=1e-5)
    assert int(ds.RecommendedDisplayFrameRate) == 8 and int(ds.CineRate) == 8
    # anonymous: copy_patient was not asked for, so nothing of the source's patient or study is here
    assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == "" and ds.PatientSex == ""
    assert ds.PatientIdentityRemoved == "YES" and ds.AccessionNumber == "" and "SourceImageSequence" not in ds
    assert str(src.PatientName) not in str(ds) and src.PatientID not in str(ds)
    pixels = ds.pixel_array
    expected = (np.clip(frames, 0, 1) * 255 + 0.5).astype(np.uint8)
    if color == "grayscale":
        expected = np.clip(expected.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0,
                           255).astype(np.uint8)
    assert pixels.shape == expected.shape and np.array_equal(pixels, expected)
    _validate(path)


def test_copy_patient_only_on_opt_in(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    src = pydicom.dcmread(source)
    ds = pydicom.dcmread(write_multiframe_sc(tmp_path / "p.dcm", _frames(2), 10, color="rgb", source=source,
                                             copy_patient=True))
    assert ds.PatientName == src.PatientName and ds.PatientID == src.PatientID
    assert ds.PatientBirthDate == src.PatientBirthDate and ds.PatientSex == src.PatientSex
    assert ds.StudyID == src.StudyID and "PatientIdentityRemoved" not in ds
    assert ds.StudyInstanceUID != src.StudyInstanceUID  # still a new study
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert float(ds.FrameTime) == pytest.approx(100.0)
    _validate(tmp_path / "p.dcm")
    with pytest.raises(MVGInputError, match="copy_patient needs the source DICOM"):
        write_multiframe_sc(tmp_path / "x.dcm", _frames(2), 10, copy_patient=True)


def test_color_mode_and_bad_inputs(tmp_path):
    assert color_mode_for("chest_xray") == "grayscale" and color_mode_for("fundus") == "rgb"
    assert color_mode_for("fundus", "grayscale") == "grayscale"
    with pytest.raises(MVGInputError, match="fps=0"):
        write_multiframe_sc(tmp_path / "x.dcm", _frames(2), 0)
    with pytest.raises(MVGInputError, match=r"DICOM frames: expected \[N,H,W,3\]"):
        write_multiframe_sc(tmp_path / "x.dcm", np.zeros((2, 3)), 8)
    assert not (tmp_path / "x.dcm").exists()


def test_read_multiframe_and_window(tmp_path):
    path = write_multiframe_sc(tmp_path / "g.dcm", _frames(4), 8, color="grayscale")
    assert frame_count(path) == 4
    ds = pydicom.dcmread(path)
    third = read_dicom(path, window="minmax", frame=2)
    raw = ds.pixel_array[2].astype(np.float64)
    assert np.allclose(third, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    assert np.allclose(read_dicom(path, window=(127.5, 256.0), frame=0), np.clip((ds.pixel_array[0] - 127.0) / 255.0
                                                                                  + 0.5, 0, 1), atol=1e-6)
    with pytest.raises(MVGInputError, match="has 4 frames; frame=4 is out of range"):
        read_dicom(path, frame=4)


def test_summary_has_no_identifiers():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    text = dicom_summary(path)
    assert "CT" in text and "128x128" in text and "1 frame(s)" in text
    for value in (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID, ds.SOPInstanceUID,
                  str(ds.get("InstitutionName", "")) or "\0", ds.StudyDate):
        assert value not in text


def test_compressed_without_decoder_names_the_plugin():
    path = get_testdata_file("emri_small_jpeg_ls_lossless.dcm")  # JPEG-LS: no decoder in requirements-dev
    with pytest.raises(MVGInputError) as exc:
        read_dicom(path)
    message = str(exc.value)
    assert "JPEG-LS Lossless" in message and "pip install pyjpegls" in message
