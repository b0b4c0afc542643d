"""bench/eval_reports.py: metrics on a tiny hand-written labelled set, and a clean skip without data."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from mvg_backend.prompts import CXR_LABELS

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "eval_reports.py"


def _load():
    spec = importlib.util.spec_from_file_location("eval_reports", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, rows: list[tuple[str, str, set[str]]]) -> None:
    (folder / "reports").mkdir(parents=True)
    with open(folder / "reports" / "indiana_reports_dev.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["uid", "MeSH", "Problems", "image", "indication", "comparison", "findings", "impression"])
        for uid, text, _ in rows:
            w.writerow([uid, "", "", "", "", "", text, ""])
    with open(folder / "reports_openi.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "split", *CXR_LABELS, "normal"])
        for uid, _, gold in rows:
            w.writerow([f"CXR{uid}", "dev", *(int(k in gold) for k in CXR_LABELS), int(not gold)])


def test_metrics_on_a_tiny_set(tmp_path, capsys):
    _write(tmp_path, [
        ("1", "Large right pleural effusion. No pneumothorax.", {"Effusion"}),
        ("2", "Possible small left effusion. Mild cardiomegaly.", {"Cardiomegaly"}),
        ("3", "Lungs clear.", {"Effusion"}),  # a gold positive the text does not support: one false negative
    ])
    assert _load().main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    effusion = next(line.split() for line in out.splitlines() if line.startswith("Effusion"))
    assert effusion[1:] == ["2", "1", "1.000", "0.500", "0.667"]  # support, predicted, P, R, F1
    cardio = next(line.split() for line in out.splitlines() if line.startswith("Cardiomegaly"))
    assert cardio[1:] == ["1", "1", "1.000", "1.000", "1.000"]
    assert "macro-F1 over the 2 labels with gold positives: 0.833" in out


def test_skips_cleanly_without_data(tmp_path, capsys):
    assert _load().main([str(tmp_path / "absent")]) == 0
    assert "skipped:" in capsys.readouterr().out
