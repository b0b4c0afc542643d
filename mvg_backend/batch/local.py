"""The local batch engine: every case through :func:`~mvg_backend.case.run_case`, in this process, one model load.

Resumable: a case whose folder is finished (it holds ``provenance.json``, moved in last-with-the-rest from a
staging folder) is skipped. A failing case is recorded with its error and the others go on. At the end the
summary (case, status, seconds, frames, error) is written as ``summary.csv`` in the output folder.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from ..case import Case, CaseOutcome, is_finished, run_case
from ..errors import MVGInputError
from ..pipeline import LoadedModels, PipelineConfig

SUMMARY_COLUMNS = ("case", "status", "seconds", "frames", "error", "gates", "failed_gates")
SUMMARY_FILE = "summary.csv"


def run_batch(cases: list[Case], config: PipelineConfig, models: LoadedModels, out_root: str | Path, *,
              dicom_out: str | None = None, on_case: Callable[[CaseOutcome], None] | None = None,
              debug: bool = False) -> list[CaseOutcome]:
    """Run ``cases`` into ``out_root/<case name>/``; returns one outcome per case and writes ``summary.csv``."""
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise MVGInputError(f"--out {str(root)!r} is a file; give a folder for the batch.")
    root.mkdir(parents=True, exist_ok=True)
    outcomes: list[CaseOutcome] = []
    for case in cases:
        target = root / case.name
        if is_finished(target):
            outcome = CaseOutcome(case.name, "skipped", 0.0, _frames_of(target), out=target, **_gates_of(target))
        else:
            start = time.perf_counter()
            try:
                outcome = run_case(case, config, models, target, overwrite=True, dicom_out=dicom_out)
            except Exception as exc:  # any failure is this case's; Ctrl-C (KeyboardInterrupt) still stops the batch
                detail = traceback.format_exc() if debug else ""
                outcome = CaseOutcome(case.name, "failed", time.perf_counter() - start, 0,
                                      f"{type(exc).__name__}: {exc}" + (f"\n{detail}" if detail else ""))
        outcomes.append(outcome)
        if on_case is not None:
            on_case(outcome)
    write_summary(root / SUMMARY_FILE, outcomes)
    return outcomes


def _frames_of(folder: Path) -> int:
    import json

    try:
        return int(json.loads((folder / "provenance.json").read_text(encoding="utf-8"))["video"]["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _gates_of(folder: Path) -> dict[str, str]:
    """A finished case's gates, from its ``metrics.json`` (issue 11), for the summary."""
    import json

    try:
        data = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        failed = [g["name"] for g in data["gates"] if g.get("status") == "fail"]
        return {"gates": "pass" if data["passed"] else "fail", "failed_gates": " ".join(failed)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _rows(outcomes: list[CaseOutcome]) -> list[list[str]]:
    return [[o.name, o.status, f"{o.seconds:.2f}", str(o.frames), o.error.splitlines()[0] if o.error else "",
             o.gates, o.failed_gates] for o in outcomes]


def write_summary(path: Path, outcomes: list[CaseOutcome]) -> None:
    """``summary.csv`` written whole (a temporary file renamed into place)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerows(_rows(outcomes))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(buffer.getvalue())
    os.replace(tmp, path)


def format_summary(outcomes: list[CaseOutcome]) -> str:
    """The summary as an aligned text table."""
    rows = [list(SUMMARY_COLUMNS)] + _rows(outcomes)
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + ("  " + r[-1] if r[-1] else "") for r in rows]
    ok = sum(o.status == "ok" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    lines.append(f"{len(outcomes)} case(s): {ok} ok, {skipped} skipped (already finished), {failed} failed")
    return "\n".join(lines)
