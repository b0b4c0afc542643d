"""``batch``: 3 cases from a CSV, one broken; the others finish, the failure is recorded, and a re-run after the fix
skips the finished cases. Also a folder of cases, per-row overrides and CSV errors."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom
from mvg_backend.batch import load_cases
from mvg_backend.cli import main
from mvg_backend.errors import MVGInputError

FAST = ["--stages", "2", "--rounds", "2", "--steps", "2", "--transition-frames", "3", "--fps", "4", "--no-progress"]


def _write_case(folder, name, seed):
    gray = chest_phantom(64, seed=seed)["image"]
    cv2.imwrite(str(folder / f"{name}.png"), (gray * 255).round().astype(np.uint8))
    (folder / f"{name}.txt").write_text("Small left pleural effusion.", encoding="utf-8")


def _summary(path):
    with open(path, newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def test_batch_csv_failure_recorded_then_resumed(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        _write_case(data, name, i)
    (data / "b.png").write_bytes(b"not an image")  # the broken case
    (data / "cases.csv").write_text("case,image,report,rounds,transition\n"
                                    "a,a.png,a.txt,,\n"
                                    "b,b.png,b.txt,,\n"
                                    "c,c.png,c.txt,4,none\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["batch", str(data / "cases.csv"), "--domain", "chest_xray", "--out", str(out), *FAST]) == 1
    printed = capsys.readouterr().out
    rows = _summary(out / "summary.csv")
    assert [rows[c]["status"] for c in "abc"] == ["ok", "failed", "ok"]
    assert "could not be read as an image" in rows["b"]["error"]
    assert int(rows["a"]["frames"]) == 5 and float(rows["a"]["seconds"]) > 0  # 3 keyframes, 2 x 3 frames, joined
    assert int(rows["c"]["frames"]) == 5  # the row's overrides: 4 rounds, every PIE frame, no transitions
    assert "3 case(s): 2 ok, 0 skipped (already finished), 1 failed" in printed
    prov = json.loads((out / "c" / "provenance.json").read_text())
    assert prov["config"]["rounds"] == 4 and prov["config"]["transition"] == "none"
    assert not (out / "b").exists()  # nothing half-written for the failing case
    assert (out / "a" / "video.mp4").is_file()
    mtime = (out / "a" / "video.mp4").stat().st_mtime_ns

    _write_case(data, "b", 1)  # fixed: only b runs again
    assert main(["batch", str(data / "cases.csv"), "--domain", "chest_xray", "--out", str(out), *FAST]) == 0
    rows = _summary(out / "summary.csv")
    assert [rows[c]["status"] for c in "abc"] == ["skipped", "ok", "skipped"]
    assert rows["a"]["frames"] == "5" and (out / "a" / "video.mp4").stat().st_mtime_ns == mtime
    assert "3 case(s): 1 ok, 2 skipped (already finished), 0 failed" in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_batch_folder_of_cases(tmp_path):
    data = tmp_path / "cases"
    for i, name in enumerate(("p1", "p2")):
        (data / name).mkdir(parents=True)
        gray = chest_phantom(64, seed=i)["image"]
        cv2.imwrite(str(data / name / "image.png"), (gray * 255).round().astype(np.uint8))
        (data / name / "report.txt").write_text("Moderate right pleural effusion.")
    (data / "p2" / "params.json").write_text(json.dumps({"transition": "crossfade"}))
    cases = load_cases(data)
    assert [c.name for c in cases] == ["p1", "p2"] and cases[1].overrides == {"transition": "crossfade"}
    out = tmp_path / "out"
    assert main(["batch", str(data), "--domain", "chest_xray", "--out", str(out), "--dicom-out", *FAST]) == 0
    prov = json.loads((out / "p2" / "provenance.json").read_text())
    assert {f["method"] for f in prov["frames"] if f["kind"] == "interpolated"} == {"crossfade"}
    assert (out / "p1" / "sequence.dcm").is_file()


@pytest.mark.parametrize("text,match", [
    ("image,rounds\na.png,2\n", "lacks the column(s) report"),
    ("image,report,warp\na.png,a.txt,1\n", "unknown column(s) warp"),
    ("image,report\n", "has no rows"),
])
def test_batch_csv_errors(tmp_path, text, match):
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(MVGInputError, match=match.replace("(", r"\(").replace(")", r"\)")):
        load_cases(tmp_path / "c.csv")


def test_batch_bad_override_is_that_case_failure(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    _write_case(data, "a", 0)
    (data / "c.csv").write_text("image,report,rounds\na.png,a.txt,many\n")
    out = tmp_path / "out"
    assert main(["batch", str(data / "c.csv"), "--domain", "chest_xray", "--out", str(out), *FAST]) == 1
    assert "rounds='many': use a whole number" in _summary(out / "summary.csv")["a"]["error"]
