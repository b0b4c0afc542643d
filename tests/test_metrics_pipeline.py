"""The evaluation hooked into ``run`` and ``batch``: every case folder gets metrics.json / metrics.png, and the
batch summary a gates column (also for a case skipped as already finished)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np

from fixtures.roi_phantoms import chest_phantom
from mvg_backend.cli import main

FAST = ["--stages", "2", "--rounds", "2", "--steps", "2", "--transition-frames", "3", "--fps", "4", "--no-progress"]


def test_batch_cases_are_evaluated_and_the_summary_has_their_gates(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i, name in enumerate(("a", "b")):
        cv2.imwrite(str(data / f"{name}.png"), (chest_phantom(64, seed=i)["image"] * 255).round().astype(np.uint8))
        (data / f"{name}.txt").write_text("Small left pleural effusion.", encoding="utf-8")
    (data / "cases.csv").write_text("case,image,report\na,a.png,a.txt\nb,b.png,b.txt\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["batch", str(data / "cases.csv"), "--domain", "chest_xray", "--out", str(out), *FAST]) == 0
    with open(out / "summary.csv", newline="") as fh:
        rows = {r["case"]: r for r in csv.DictReader(fh)}
    for name in ("a", "b"):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert (out / name / "metrics.png").stat().st_size > 10_000
        assert rows[name]["gates"] == ("pass" if metrics["passed"] else "fail")
        failed = [g["name"] for g in metrics["gates"] if g["status"] == "fail"]
        assert rows[name]["failed_gates"] == " ".join(failed)
        assert metrics["frames"] == json.loads((out / name / "provenance.json").read_text())["video"]["frames"]
        assert metrics["metrics"]["confidence"] is None and metrics["metrics"]["anatomy"] is not None
    # a re-run skips the finished cases and still reports their gates
    capsys.readouterr()
    assert main(["batch", str(data / "cases.csv"), "--domain", "chest_xray", "--out", str(out), *FAST]) == 0
    with open(out / "summary.csv", newline="") as fh:
        again = {r["case"]: r for r in csv.DictReader(fh)}
    assert {r["status"] for r in again.values()} == {"skipped"}
    assert [again[n]["gates"] for n in "ab"] == [rows[n]["gates"] for n in "ab"]
