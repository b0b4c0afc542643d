"""The headless pipeline: ``run`` end to end to an MP4 (decoded and checked), stdin reports, DICOM in and out,
frame provenance, argument errors, and Ctrl-C leaving nothing half-written."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom
from fixtures.tiny_checkpoints import write_tiny_ldm_checkpoint
from fixtures.tiny_seine import one_torch_thread, write_tiny_seine_checkpoint  # noqa: F401 (fixture)
from mvg_backend.cli import main
from mvg_backend.io.video import read_video

REPORT = "Moderate right pleural effusion. No pneumothorax."
FAST = ["--stages", "2", "--rounds", "2", "--steps", "4", "--transition-frames", "4", "--fps", "5", "--no-progress"]


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    """A 16-bit PNG chest phantom (72x64: not square), its report, a tiny SD checkpoint and a tiny SEINE one."""
    root = tmp_path_factory.mktemp("case")
    gray = chest_phantom(64, width=72)["image"]
    cv2.imwrite(str(root / "cxr.png"), (gray * 65535).round().astype(np.uint16))
    (root / "report.txt").write_text(REPORT, encoding="utf-8")
    ckpt, _ = write_tiny_ldm_checkpoint(root / "tiny.safetensors", config_dir=root / "cfg")
    seine = write_tiny_seine_checkpoint(root / "seine.safetensors", cross_attention_dim=32)
    return {"root": root, "image": root / "cxr.png", "report": root / "report.txt", "ckpt": ckpt,
            "cfg": root / "cfg", "seine": seine}


def _run(files, out, *extra):
    return main(["run", "--image", str(files["image"]), "--report", str(files["report"]), "--domain", "chest_xray",
                 "--checkpoint", str(files["ckpt"]), "--config", str(files["cfg"]), "--out", str(out), *FAST, *extra])


def test_run_end_to_end_to_mp4(case_files, tmp_path, capsys, one_torch_thread):
    out = tmp_path / "patient01"
    assert _run(case_files, out) == 0
    # 1 original + 2 stage keyframes -> 2 transitions of 4 frames, joined: 2*3 + 1 = 7 frames
    video, fps, codec = read_video(out / "video.mp4")
    assert codec == "h264" and video.shape == (7, 64, 72, 3) and fps == pytest.approx(5.0)
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == 7 and len(list((out / "keyframes").glob("*.png"))) == 3
    for name in ("mask.png", "roi_overlay.png", "plan.txt", "summary.txt"):
        assert (out / name).is_file(), name
    first = cv2.imread(str(frames[0]))[..., ::-1]
    assert np.abs(video[0].astype(int) - first.astype(int)).mean() < 6  # H.264 of the original, lossy but close
    prov = json.loads((out / "provenance.json").read_text())
    kinds = [f["kind"] for f in prov["frames"]]
    assert kinds == ["original", "interpolated", "interpolated", "keyframe", "interpolated", "interpolated", "keyframe"]
    assert [f["method"] for f in prov["frames"]][:2] == ["input", "optical_flow"]
    assert prov["frames"][3]["stage"] == 1 and prov["frames"][6]["stage"] == 2
    assert prov["video"] == {"frames": 7, "fps": 5.0, "width": 72, "height": 64}
    assert prov["report"]["sha256"] and "text" not in prov["report"]
    text = (out / "provenance.json").read_text() + (out / "plan.txt").read_text() + (out / "summary.txt").read_text()
    assert "No pneumothorax" not in text and REPORT[:20] not in text  # no report text (findings are labels)
    assert str(tmp_path) not in text  # no absolute paths
    assert prov["inputs"]["image"]["name"] == "cxr.png" and prov["models"][0]["name"] == "tiny.safetensors"
    assert set(prov["timings_s"]) >= {"prompts", "roi", "pie", "transitions", "video"}
    assert "wrote 7 frames" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_run_with_seine_and_every_pie_round(case_files, tmp_path, one_torch_thread):
    out = tmp_path / "seine"
    assert _run(case_files, out, "--seine", str(case_files["seine"]), "--transition-steps", "2",
                "--transition-sampler", "ddim", "--resolution", "native") == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert {f["method"] for f in prov["frames"] if f["kind"] == "interpolated"} == {"seine"}
    assert prov["models"][-1]["name"] == "seine.safetensors"
    out = tmp_path / "none"
    assert _run(case_files, out, "--transition", "none") == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert [f["kind"] for f in prov["frames"]] == ["original", "keyframe", "keyframe"]  # 1 round per stage
    keep = np.zeros((64, 72), np.uint8)
    keep[20:40, 10:62] = 255  # a band across both lungs (a line, a tube) must stay untouched
    cv2.imwrite(str(tmp_path / "keep.png"), keep)
    out = tmp_path / "rounds"
    assert _run(case_files, out, "--transition", "none", "--rounds", "4", "--keep-mask", str(tmp_path / "keep.png")) == 0
    frames = [cv2.imread(str(p)) for p in sorted((out / "frames").glob("*.png"))]
    assert all(np.array_equal(f[20:40, 10:62], frames[0][20:40, 10:62]) for f in frames)
    assert cv2.imread(str(out / "mask.png"))[20:40, 10:62].max() == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert [f["kind"] for f in prov["frames"]] == ["original", "pie_round", "keyframe", "pie_round", "keyframe"]
    assert read_video(out / "video.mp4")[0].shape[0] == 5
    out = tmp_path / "capped"
    assert _run(case_files, out, "--transition", "none", "--max-severity", "moderate") == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["config"]["max_severity"] == "moderate"
    assert not any("large" in s["prompt"] for s in prov["plan"]["stages"])  # ReportToPrompts' cap reached the plan


def test_run_dicom_in_report_from_stdin_random_model(tmp_path, monkeypatch, capsys, one_torch_thread):
    from pydicom.data import get_testdata_file

    import pydicom

    monkeypatch.setattr("sys.stdin", io.StringIO(REPORT))
    src = get_testdata_file("MR_small.dcm")
    out = tmp_path / "dcm"
    code = main(["run", "--image", src, "--report", "-", "--domain", "chest_xray", "--out", str(out), *FAST,
                 "--dicom-out", "--keep-report-in-metadata"])
    assert code == 0
    err = capsys.readouterr().err
    assert "random-weight tiny" in err
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["report"]["text"] == REPORT  # only because the user opted in
    assert "random-weight tiny" in prov["model_note"]
    ds = pydicom.dcmread(out / "sequence.dcm")
    assert int(ds.NumberOfFrames) == 7 and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.2"
    assert float(ds.FrameTime) == pytest.approx(200.0)
    assert ds.PatientName == "" and ds.PatientIdentityRemoved == "YES"


def test_run_dicom_copy_patient_opt_in(tmp_path, one_torch_thread):
    from pydicom.data import get_testdata_file

    import pydicom

    src = get_testdata_file("MR_small.dcm")
    (tmp_path / "r.txt").write_text(REPORT)
    out = tmp_path / "copy"
    assert main(["run", "--image", src, "--report", str(tmp_path / "r.txt"), "--domain", "chest_xray", "--out",
                 str(out), *FAST, "--transition", "none", "--dicom-out", "cine.dcm", "--dicom-copy-patient"]) == 0
    source, ds = pydicom.dcmread(src), pydicom.dcmread(out / "cine.dcm")
    assert ds.PatientName == source.PatientName and ds.PatientID == source.PatientID
    assert ds.StudyInstanceUID != source.StudyInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
    assert "PatientIdentityRemoved" not in ds


@pytest.mark.parametrize("extra,match", [
    (["--rounds", "0"], "rounds=0 (--rounds): use a whole number from 1 to 200"),
    (["--fps", "0"], "fps=0.0 (--fps): use a value in 0.1..240.0"),
    (["--strength", "1.5"], "strength=1.5 (--strength)"),
    (["--transition-frames", "2"], "transition_frames=2 (--transition-frames)"),
    (["--dicom-copy-patient"], "--dicom-copy-patient only applies with --dicom-out"),
    (["--dicom-out", "--dicom-copy-patient"], "copies identifiers from a DICOM --image"),
    (["--dicom-out", "../x.dcm"], "--dicom-out '../x.dcm': give a file name"),
    (["--region", "macula"], "region='macula' is not available for domain 'chest_xray'"),
])
def test_run_argument_errors_name_the_argument(tmp_path, capsys, extra, match):
    cv2.imwrite(str(tmp_path / "img.png"), np.full((32, 32), 128, np.uint8))
    (tmp_path / "r.txt").write_text(REPORT)
    out = tmp_path / "o"
    code = main(["run", "--image", str(tmp_path / "img.png"), "--report", str(tmp_path / "r.txt"), "--domain",
                 "chest_xray", "--out", str(out), "--no-progress", *extra])
    assert code == 2
    assert match in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["img.png", "r.txt"]


@pytest.mark.parametrize("argv,match", [
    (["--report", "missing.txt"], "--report 'missing.txt' does not exist; give the report as a text file, or -"),
    (["--report", "empty.txt"], "is empty; give the clinical report text"),
    (["--image", "nope.png"], "--image 'nope.png' does not exist"),
])
def test_run_input_errors(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("img.png", np.full((32, 32), 128, np.uint8))
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "r.txt").write_text(REPORT)
    base = {"--image": "img.png", "--report": "r.txt"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    args = ["run", "--domain", "chest_xray", "--out", "o", "--no-progress"] + [x for kv in base.items() for x in kv]
    assert main(args) == 2
    assert match in capsys.readouterr().err


def test_run_flag_typos_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--image", "a.png", "--report", "r.txt", "--domain", "chest_xray", "--out", "o",
              "--transition", "warp"])
    assert exc.value.code == 2
    assert "--transition: invalid choice: 'warp'" in capsys.readouterr().err


def test_ctrl_c_leaves_no_half_written_folder(case_files, tmp_path, monkeypatch):
    import mvg_backend.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "transition_stage", interrupted)
    assert _run(case_files, tmp_path / "run") == 130  # the CLI's exit status for Ctrl-C
    assert list(tmp_path.iterdir()) == []  # neither the output folder nor its staging folder
