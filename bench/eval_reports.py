"""Evaluate the chest X-ray finding extractor on labelled Open-i reports.

    PYTHONPATH=. python bench/eval_reports.py DATA_DIR [--errors LABEL]      (from the repository root)

DATA_DIR holds ``reports/indiana_reports_dev.csv`` (report text: ``uid``, ``findings``, ``impression``) and
``reports_openi.csv`` (``id`` = "CXR<uid>", one 0/1 column per label; 1 = a positive, certain mention), as
extracted by ``shared/data/get_dev_data.sh``. Only the findings and impression sections are read. A label
is predicted when the extractor calls it ``positive``. Prints per-label precision, recall and F1, and the
macro-F1 over the labels that have gold positives. Exits 0 with a message when DATA_DIR is absent.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from mvg_backend.prompts import CXR_LABELS, extract_findings


def load(data_dir: Path) -> list[tuple[str, str, set[str]]]:
    """``[(id, report text, gold positive labels)]`` for every labelled report with text."""
    texts = {}
    with open(data_dir / "reports" / "indiana_reports_dev.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            texts["CXR" + row["uid"]] = f"{row.get('findings') or ''}\n{row.get('impression') or ''}"
    out = []
    with open(data_dir / "reports_openi.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["id"] in texts:
                out.append((row["id"], texts[row["id"]], {k for k in CXR_LABELS if row.get(k) == "1"}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--errors", metavar="LABEL", help="list the ids of false positives/negatives of LABEL")
    args = parser.parse_args(argv)
    if not (args.data_dir / "reports_openi.csv").is_file():
        print(f"skipped: {args.data_dir} has no reports_openi.csv (see shared/data/README.md to get the data)")
        return 0
    rows = load(args.data_dir)
    t0 = time.perf_counter()
    predicted = [{f.name for f in extract_findings(text, "chest_xray") if f.certainty == "positive"}
                 for _, text, _ in rows]
    seconds = time.perf_counter() - t0
    print(f"{len(rows)} reports, {seconds:.2f} s ({1000 * seconds / max(1, len(rows)):.2f} ms/report)\n")
    print(f"{'label':<20}{'support':>8}{'pred':>6}{'P':>8}{'R':>8}{'F1':>8}")
    f1s, unlabelled = [], []
    for label in CXR_LABELS:
        tp = sum(label in p and label in g for p, (_, _, g) in zip(predicted, rows, strict=True))
        fp = sum(label in p and label not in g for p, (_, _, g) in zip(predicted, rows, strict=True))
        fn = sum(label not in p and label in g for p, (_, _, g) in zip(predicted, rows, strict=True))
        support = tp + fn
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / support if support else float("nan")
        f1 = 2 * tp / (2 * tp + fp + fn) if support else float("nan")
        if support:
            f1s.append(f1)
        else:
            unlabelled.append(f"{label} ({tp + fp} predicted)")
        print(f"{label:<20}{support:>8}{tp + fp:>6}{precision:>8.3f}{recall:>8.3f}{f1:>8.3f}")
        if args.errors == label:
            for p, (rid, _, g) in zip(predicted, rows, strict=True):
                if (label in p) != (label in g):
                    print(f"    {'FP' if label in p else 'FN'} {rid}")
    print(f"\nmacro-F1 over the {len(f1s)} labels with gold positives: {sum(f1s) / len(f1s):.3f}")
    if unlabelled:
        print(f"no gold positives (left out of the macro-F1; every prediction counts as a false positive): "
              f"{', '.join(unlabelled)}; macro-F1 counting them as 0: {sum(f1s) / len(CXR_LABELS):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
