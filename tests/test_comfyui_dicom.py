"""MVG Load DICOM and MVG Save DICOM inside a real, headless ComfyUI (marker ``comfyui``; see tests/conftest.py).

A multi-frame DICOM goes Load DICOM (all frames) -> Save DICOM and comes back as the same cine; a CT slice is
windowed by hand; the summary names no patient; copy_patient copies the source's identifiers only when on.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from comfyui_harness import history_status
from mvg_backend.io.dicom_write import GRAYSCALE_SC, SYNTHETIC_LABEL, TRUE_COLOR_SC, write_multiframe_sc

pytestmark = pytest.mark.comfyui


@pytest.fixture(scope="module")
def dicom_inputs(comfyui_server):
    """Two files in the server's input folder: a 5-frame RGB cine (made here) and pydicom's CT_small."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    write_multiframe_sc(comfyui_server.input_dir / "mvg_cine.dcm", frames, 5.0, color="rgb")
    shutil.copy(get_testdata_file("CT_small.dcm"), comfyui_server.input_dir / "mvg_ct.dcm")
    return frames


def _graph(dicom: str, frame: int = -1, window: str = "file", center: float = 40.0, width: float = 400.0,
           **save) -> dict:
    save_inputs = {"images": ["1", 0], "filename_prefix": "mvg_dicom/out", "fps": 5.0, "color": "auto",
                   "source_dicom": "none", "copy_patient": False, **save}
    return {
        "1": {"class_type": "MVG_LoadDICOM", "inputs": {"dicom": dicom, "frame": frame, "window": window,
                                                        "center": center, "width": width}},
        "2": {"class_type": "MVG_SaveDICOM", "inputs": save_inputs},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
    }


def _written(srv, entry) -> pydicom.Dataset:
    summary = entry["outputs"]["2"]["text"][0]
    name = summary.split(":")[0].removeprefix("wrote ")
    return pydicom.dcmread(srv.output_dir / name)


def test_object_info_lists_the_dicom_nodes(comfyui_server, dicom_inputs):
    info = comfyui_server.object_info()
    load, save = info["MVG_LoadDICOM"], info["MVG_SaveDICOM"]
    assert load["input_order"]["required"] == ["dicom", "frame", "window", "center", "width"]
    files = load["input"]["required"]["dicom"]
    options = files[1]["options"] if isinstance(files[1], dict) and "options" in files[1] else files[0]
    assert {"mvg_cine.dcm", "mvg_ct.dcm"} <= set(options)
    assert files[1].get("image_upload") is True
    assert load["output"] == ["IMAGE", "STRING"] and save["output_node"] is True
    assert save["input_order"]["required"] == ["images", "filename_prefix", "fps", "color", "source_dicom",
                                               "copy_patient"]


def test_cine_round_trip_through_comfyui(comfyui_server, dicom_inputs):
    srv = comfyui_server
    entry = srv.run(_graph("mvg_cine.dcm"), timeout=120)
    ds = _written(srv, entry)
    assert ds.SOPClassUID == TRUE_COLOR_SC and int(ds.NumberOfFrames) == 5
    assert ds.SeriesDescription == SYNTHETIC_LABEL and float(ds.FrameTime) == pytest.approx(200.0)
    assert np.array_equal(ds.pixel_array, dicom_inputs)  # IMAGE float round trip of 8-bit values is exact
    summary = entry["outputs"]["3"]["text"][0]
    assert "5 frame(s)" in summary and "frame all" in summary
    assert not [p for p in (srv.output_dir / "mvg_dicom").iterdir() if p.name.startswith(".")]


def test_ct_custom_window_and_patient_opt_in(comfyui_server, dicom_inputs):
    srv = comfyui_server
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    entry = srv.run(_graph("mvg_ct.dcm", frame=0, window="custom", center=40.0, width=400.0), timeout=120)
    ds = _written(srv, entry)
    assert ds.SOPClassUID == GRAYSCALE_SC and int(ds.NumberOfFrames) == 1  # gray frames -> grayscale SC
    assert ds.PatientName == "" and ds.PatientIdentityRemoved == "YES"
    summary = entry["outputs"]["3"]["text"][0]
    assert "CT" in summary and "centre 40 width 400" in summary
    assert str(source.PatientName) not in summary and source.PatientID not in summary
    hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    expected = np.clip((hu - 39.5) / 399.0 + 0.5, 0, 1)
    assert np.abs(ds.pixel_array / 255.0 - expected).max() < 1.5 / 255
    entry = srv.run(_graph("mvg_ct.dcm", frame=0, source_dicom="mvg_ct.dcm", copy_patient=True), timeout=120)
    ds = _written(srv, entry)
    assert ds.PatientName == source.PatientName and ds.PatientID == source.PatientID
    assert ds.StudyInstanceUID != source.StudyInstanceUID


def test_load_dicom_bad_frame_fails_clearly(comfyui_server, dicom_inputs):
    srv = comfyui_server
    entry = srv.wait_history(srv.post_prompt(_graph("mvg_cine.dcm", frame=9)), timeout=120)
    status, events = history_status(entry)
    assert status == "error" and "execution_error" in events, (status, events)
    error = dict(m for m in entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_LoadDICOM" and "has 5 frame(s); use 0..4" in error["exception_message"]
