"""Evaluate the chest X-ray finding extractor on labelled Open-i reports.

    PYTHONPATH=. python bench/eval_reports.py DATA_DIR [--errors LABEL]      (from the repository root)

DATA_DIR holds ``reports/indiana_reports_dev.csv`` (report text: ``uid``, ``findings``, ``impression``) and
``reports_openi.csv`` (``id`` = "CXR<uid>", one 0/1 column per label; 1 = a positive, certain mention), as
extracted by ``shared/data/get_dev_data.sh``. Only the findings and impression sections are read. A label
is predicted when the extractor calls it ``positive``. Prints per-label precision, recall and F1, and the
macro-F1 over the labels that have gold positives. Exits 0 with a message when DATA_DIR is absent.

Then the rule engine's plans over the same reports, at each ``--stages`` count (default 3, 4 and 6): among
the plans that stage a disease, the share that repeat a stage prompt word for word, the stages per plan,
the severity steps between consecutive stages (and stage 1 against the reported severity), and the share
of the stages' ROI hints that fall back or are ignored by ROIMask (each distinct hint is resolved once with
``segment_detailed(region="auto")`` on a chest image: the first JSRT image of ``cxr_jsrt.csv`` in DATA_DIR
when present, else a synthetic chest phantom; a hint that gives a warning counts as a fallback).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from mvg_backend.prompts import CXR_LABELS, extract_findings, plan
from mvg_backend.prompts.rules import aggregate, mentions
from mvg_backend.prompts.vocab import get_vocab


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


def chest_image(data_dir: Path) -> tuple[np.ndarray, str]:
    """A chest X-ray to resolve the hints on: the first JSRT image in ``data_dir``, else a drawn phantom."""
    manifest = data_dir / "cxr_jsrt.csv"
    if manifest.is_file():
        from mvg_backend.io.files import read_image

        with open(manifest, newline="") as fh:
            row = next(csv.DictReader(fh), None)
        if row and (data_dir / row["image"]).is_file():
            return read_image(data_dir / row["image"]), row["image"].rsplit("/", 1)[-1]
    h = w = 256
    img = np.full((h, w), 0.75, np.float32)
    for cx in (0.3, 0.7):  # two dark lung fields, a bright mediastinum and heart between them
        yy, xx = np.mgrid[0:h, 0:w]
        img[((xx - cx * w) / (0.13 * w)) ** 2 + ((yy - 0.45 * h) / (0.28 * h)) ** 2 <= 1] = 0.3
    return img, "a synthetic chest phantom"


class HintResolver:
    """Whether ROIMask resolves a hint (``region="auto"``) to a non-empty mask without a warning, cached per
    place (a hint may name several, separated by ';'). The image is shrunk to 512 px first (speed)."""

    def __init__(self, image: np.ndarray, domain: str = "chest_xray"):
        import cv2

        scale = 512 / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        self.image, self.domain, self.cache = image, domain, {}

    def _place(self, place: str) -> bool:
        if place not in self.cache:
            from mvg_backend.roi import segment_detailed

            result = segment_detailed(self.image, self.domain, "auto", hint=place)
            self.cache[place] = not result.warnings and bool((result.mask >= 0.5).any())
        return self.cache[place]

    def __call__(self, hint: str) -> bool:
        try:
            from mvg_backend.roi.hints import split_hints
        except ImportError:  # before issue 13 a hint named one place
            return self._place(hint)
        return all(self._place(p) for p in split_hints(hint))


def plan_statistics(texts: list[str], stages: int, resolves=None, domain: str = "chest_xray") -> dict:
    """Statistics of the rule engine's plans of ``stages`` stages over ``texts`` (see the module docstring)."""
    vocab = get_vocab(domain)
    staged = repeated = not_beyond = 0
    lengths, steps, hints, fewer = [], [], [], 0
    non_increasing = at_cap = 0
    for text in texts:
        if not text.strip():
            continue
        result = plan(text, domain, stages=stages)
        found = [s for f, s in aggregate(mentions(text, vocab))
                 if f.certainty == "positive" and vocab.concept(f.name).kind != "feature"]
        if not found:
            continue
        staged += 1
        prompts = [s.prompt for s in result.stages]
        repeated += len(set(prompts)) < len(prompts)
        lengths.append(len(prompts))
        fewer += len(prompts) < stages
        sev = [s.severity for s in result.stages]
        diffs = [b - a for a, b in zip(sev, sev[1:])]
        steps.extend(diffs)
        non_increasing += any(d <= 0 for d in diffs)
        not_beyond += sev[0] <= max(found)
        at_cap += any("already at max_severity" in n for n in result.notes)
        hints.extend(s.roi_hint for s in result.stages if s.roi_hint)
    failed = Counter(h for h in hints if resolves is not None and not resolves(h))
    return {"stages": stages, "plans": staged, "repeated": repeated, "fewer": fewer, "lengths": lengths,
            "steps": steps, "non_increasing": non_increasing, "not_beyond": not_beyond, "at_cap": at_cap,
            "hints": len(hints),
            "hint_failures": failed}


def print_plan_statistics(stats: dict) -> None:
    n = max(1, stats["plans"])
    lengths, steps = stats["lengths"], stats["steps"]
    failures = sum(stats["hint_failures"].values())
    print(f"\nplans of {stats['stages']} stages: {stats['plans']} stage a disease")
    print(f"  repeated stage prompt: {stats['repeated']} ({stats['repeated'] / n:.1%} of the plans)")
    if lengths:
        print(f"  stages per plan: mean {statistics.mean(lengths):.2f}, min {min(lengths)}, max {max(lengths)}; "
              f"{stats['fewer']} plans ({stats['fewer'] / n:.1%}) give fewer than {stats['stages']}")
    if steps:
        print(f"  severity steps: mean {statistics.mean(steps):.3f}, min {min(steps):.3f}, max {max(steps):.3f}; "
              f"{stats['non_increasing']} plans ({stats['non_increasing'] / n:.1%}) with a step <= 0; "
              f"stage 1 not beyond the report's most severe finding in {stats['not_beyond']} plans "
              f"({stats['not_beyond'] / n:.1%}; {stats['at_cap']} of them already at max_severity: one stage, the "
              "reported state; the rest stage a milder finding that can still progress)")
    print(f"  ROI hints that fall back or are ignored: {failures} of {stats['hints']} "
          f"({failures / max(1, stats['hints']):.1%})")
    for hint, count in stats["hint_failures"].most_common():
        print(f"    {count:>5}  {hint!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--errors", metavar="LABEL", help="list the ids of false positives/negatives of LABEL")
    parser.add_argument("--stages", default="3,4,6", help="stage counts of the plan statistics (comma-separated; "
                        "empty: skip them)")
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
    counts = [int(c) for c in args.stages.split(",") if c.strip()]
    if counts:
        image, source = chest_image(args.data_dir)
        print(f"\nplan statistics (rule engine, chest_xray); hints resolved on {source}")
        resolves = HintResolver(image)
        for count in counts:
            print_plan_statistics(plan_statistics([text for _, text, _ in rows], count, resolves))
    return 0


if __name__ == "__main__":
    sys.exit(main())
