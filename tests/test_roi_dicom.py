"""DICOM reading (pydicom's own test files: 16-bit CT, MONOCHROME1 CR, colour) and lungs on a real CR."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mvg_backend.errors import MVGInputError
from mvg_backend.io import read_dicom
from mvg_backend.io.files import read_image
from mvg_backend.roi import segment, segment_detailed

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

MONOCHROME1_CR = "dicomdirtests/77654033/CR1/6154"  # 16x16, 12 bits stored, MONOCHROME1


def _testfile(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install pydicom-data)")
    return path


def test_ct_16bit_rescale_and_window(tmp_path):
    path = _testfile("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert ds.BitsAllocated == 16 and "RescaleSlope" in ds
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    image = read_dicom(path, window=(40.0, 400.0))  # a soft-tissue window in Hounsfield units
    assert image.dtype == np.float32 and image.shape == (128, 128)
    expected = np.clip((hu - 39.5) / 399.0 + 0.5, 0, 1)
    np.testing.assert_allclose(image, expected, atol=1e-5)
    full = read_dicom(path, window="minmax")
    assert full.min() == 0.0 and full.max() == 1.0
    np.testing.assert_array_equal(read_dicom(path), full)  # no window in the file: "auto" is min..max
    ds.WindowCenter, ds.WindowWidth = 60, 300  # the file's own window is used when present
    ds.save_as(tmp_path / "windowed.dcm")
    auto = read_dicom(tmp_path / "windowed.dcm")
    np.testing.assert_allclose(auto, np.clip((hu - 59.5) / 299.0 + 0.5, 0, 1), atol=1e-5)


def test_monochrome1_is_inverted():
    path = _testfile(MONOCHROME1_CR)
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = ds.pixel_array.astype(np.float64)
    image = read_dicom(path, window="minmax")
    # the highest stored value is displayed black
    assert image.flat[np.argmax(raw)] == pytest.approx(0.0, abs=1e-6)
    assert image.flat[np.argmin(raw)] == pytest.approx(1.0, abs=1e-6)


def test_colour_and_read_image_dispatch():
    rgb = read_image(_testfile("examples_rgb_color.dcm"))
    assert rgb.shape == (240, 320, 3) and rgb.dtype == np.float32 and 0 <= rgb.min() <= rgb.max() <= 1
    mr = read_image(_testfile("MR_small.dcm"))
    assert mr.shape == (64, 64)
    mask = segment(mr, "other", "full")
    assert mask.shape == (64, 64)


def test_not_a_dicom_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "fake.dcm"
    bad.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(MVGInputError, match="fake.dcm"):
        read_dicom(bad)
    with pytest.raises(MVGInputError, match="does not exist"):
        read_dicom(tmp_path / "missing.dcm")
    with pytest.raises(MVGInputError, match="window"):
        read_dicom(_testfile("CT_small.dcm"), window="soft")


def test_lungs_on_the_real_monochrome1_chest_cr():
    """RG1_UNCR.dcm (pydicom-data, MIT): a real 16-bit MONOCHROME1 PA chest radiograph."""
    image = read_dicom(_testfile("RG1_UNCR.dcm"))
    h, w = image.shape
    result = segment_detailed(image, "chest_xray", "lungs")
    parts = result.analysis.parts
    assert not result.fallback and result.components == 2
    for name, side in (("right_lung", slice(0, w // 2)), ("left_lung", slice(w // 2, w))):
        part = parts[name] >= 0.5
        assert 0.08 < part.mean() < 0.25, name
        assert part[:, side].sum() > 0.97 * part.sum(), name
    lum = image
    lungs = result.mask >= 0.5
    assert lum[lungs].mean() < lum[~lungs].mean() - 0.1  # lungs are the dark (air) fields
    assert lungs[:, int(0.48 * w) : int(0.52 * w)].mean() < 0.02  # the mediastinum is out
    # the same film exported inverted (as a MONOCHROME1 file read without its tag would be)
    flipped = segment(1.0 - image, "chest_xray", "lungs") >= 0.5
    assert 2 * (flipped & lungs).sum() / (flipped.sum() + lungs.sum()) > 0.97
