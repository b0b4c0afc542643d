"""The local batch engine, and what every engine shares: the resume rule, the per-case run and the summary.

Every case goes through :func:`~mvg_backend.case.run_case` into ``out_root/<case>/`` (staged, the marker
``provenance.json`` written last). Resumable: a case whose folder is finished is skipped; a staging folder
left by a killed run is removed before the case runs again. A failing case is recorded with its error and the
others go on. ``summary.csv`` gets each case's row as it ends (a killed run leaves a usable summary) and is
written whole, in case order, at the end.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import Callable

from ..case import Case, CaseOutcome, is_finished, run_case
from ..errors import MVGInputError
from ..pipeline import LoadedModels, PipelineConfig, StageProgress

SUMMARY_COLUMNS = ("case", "status", "seconds", "frames", "error", "gates", "failed_gates", "worker",
                   "load_seconds", "attempts")
"""``seconds``: the case's wall time on its worker; ``worker``: who ran it (``local``, or a Ray worker
``w<i>@<host>:<pid>``); ``load_seconds``: that worker's model load; ``attempts``: runs started (a worker that
died mid-case makes it more than 1)."""
SUMMARY_FILE = "summary.csv"


def run_batch(cases: list[Case], config: PipelineConfig, models: LoadedModels, out_root: str | Path, *,
              dicom_out: str | None = None, on_case: Callable[[CaseOutcome], None] | None = None,
              debug: bool = False) -> list[CaseOutcome]:
    """Run ``cases`` into ``out_root/<case name>/``; returns one outcome per case and writes ``summary.csv``."""
    root = prepare_root(out_root)
    outcomes: list[CaseOutcome] = []
    with SummaryWriter(root) as summary:
        for case in cases:
            outcome = finished_outcome(case, root) or run_one(case, config, models, root, dicom_out=dicom_out,
                                                              debug=debug, worker="local")
            outcomes.append(outcome)
            summary.add(outcome)
            if on_case is not None:
                on_case(outcome)
        summary.finish(outcomes)
    return outcomes


def prepare_root(out_root: str | Path) -> Path:
    """The batch's output folder, created."""
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise MVGInputError(f"--out {str(root)!r} is a file; give a folder for the batch.")
    root.mkdir(parents=True, exist_ok=True)
    return root


def finished_outcome(case: Case, root: Path) -> CaseOutcome | None:
    """The resume rule: a ``skipped`` outcome if the case's folder is finished, else None."""
    target = root / case.name
    if not is_finished(target):
        return None
    return CaseOutcome(case.name, "skipped", 0.0, _frames_of(target), out=target, **_gates_of(target))


def run_one(case: Case, config: PipelineConfig, models: LoadedModels, root: Path, *, dicom_out: str | None,
            debug: bool, worker: str, progress: StageProgress | None = None) -> CaseOutcome:
    """One case into ``root/<case>/``; any failure becomes a ``failed`` outcome (Ctrl-C still stops)."""
    clear_staging(root, case.name)
    start = time.perf_counter()
    try:
        outcome = run_case(case, config, models, root / case.name, overwrite=True, dicom_out=dicom_out,
                           progress=progress)
    except Exception as exc:  # any failure is this case's
        detail = traceback.format_exc() if debug else ""
        outcome = CaseOutcome(case.name, "failed", time.perf_counter() - start, 0,
                              f"{type(exc).__name__}: {exc}" + (f"\n{detail}" if detail else ""))
    outcome.worker, outcome.load_seconds, outcome.attempts = worker, models.load_seconds, 1
    return outcome


def clear_staging(root: Path, name: str) -> None:
    """Remove the staging folders (``.<case>.<8 characters>``, see :class:`~mvg_backend.io.files.OutputDir`)
    that a killed run of this case left behind. Only one process runs a case at a time."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}")
    for entry in root.iterdir():
        if entry.is_dir() and pattern.fullmatch(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _frames_of(folder: Path) -> int:
    try:
        return int(json.loads((folder / "provenance.json").read_text(encoding="utf-8"))["video"]["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _gates_of(folder: Path) -> dict[str, str]:
    """A finished case's gates, from its ``metrics.json`` (issue 11), for the summary."""
    try:
        data = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        failed = [g["name"] for g in data["gates"] if g.get("status") == "fail"]
        return {"gates": "pass" if data["passed"] else "fail", "failed_gates": " ".join(failed)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _row(o: CaseOutcome) -> list[str]:
    return [o.name, o.status, f"{o.seconds:.2f}", str(o.frames), o.error.splitlines()[0] if o.error else "",
            o.gates, o.failed_gates, o.worker, f"{o.load_seconds:.2f}" if o.worker else "",
            str(o.attempts) if o.attempts else ""]


class SummaryWriter:
    """``summary.csv``: each row appended (and flushed) as its case ends, then :meth:`finish` writes the whole
    table in case order."""

    def __init__(self, root: Path) -> None:
        self.path = root / SUMMARY_FILE
        self._fh = open(self.path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(SUMMARY_COLUMNS)
        self._fh.flush()

    def add(self, outcome: CaseOutcome) -> None:
        self._writer.writerow(_row(outcome))
        self._fh.flush()

    def finish(self, outcomes: list[CaseOutcome]) -> None:
        self._fh.close()
        write_summary(self.path, outcomes)

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._fh.close()


def write_summary(path: Path, outcomes: list[CaseOutcome]) -> None:
    """``summary.csv`` written whole (a temporary file renamed into place)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUMMARY_COLUMNS)
    writer.writerows(_row(o) for o in outcomes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(buffer.getvalue())
    os.replace(tmp, path)


def format_summary(outcomes: list[CaseOutcome]) -> str:
    """The summary as an aligned text table (without the load column: one line per worker after it)."""
    shown = [i for i, c in enumerate(SUMMARY_COLUMNS) if c not in ("load_seconds", "failed_gates")]
    rows = [[SUMMARY_COLUMNS[i] for i in shown]] + [[r[i] for i in shown] for r in map(_row, outcomes)]
    failed_gates = ["failed_gates"] + [o.failed_gates for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(shown))]
    lines = [("  ".join(c.ljust(w) for c, w in zip(r, widths)) + f"  {g}").rstrip()
             for r, g in zip(rows, failed_gates)]
    loads = {o.worker: o.load_seconds for o in outcomes if o.worker}
    if loads:
        lines.append("model load per worker: " + ", ".join(f"{w} {s:.1f}s" for w, s in sorted(loads.items())))
    ok = sum(o.status == "ok" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    lines.append(f"{len(outcomes)} case(s): {ok} ok, {skipped} skipped (already finished), {failed} failed")
    return "\n".join(lines)
