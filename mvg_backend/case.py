"""One case from files to a finished output folder: the function ``run``, ``batch`` and ``demo`` share.

``run_case(case, config, models, out_dir)`` reads the inputs, runs :func:`~mvg_backend.pipeline.run_pipeline`
and writes, into a hidden staging folder that is moved into place only when everything succeeded:

- ``video.mp4`` (H.264 at ``config.fps``), ``frames/`` (the video's frames), ``keyframes/``;
- ``mask.png`` and ``roi_overlay.png``; ``plan.txt``; ``summary.txt``;
- ``provenance.json``: settings, the plan, for every frame whether it is the original, a PIE round, a
  keyframe or an interpolated frame and by which method, inputs and models by name and sha256, timings.
  The report appears only as its sha256 unless ``config.keep_report_in_metadata``;
- with ``dicom_out``, the frames as one multi-frame DICOM Secondary Capture (cine at the video's fps).

A batch engine (local or Ray, :mod:`mvg_backend.batch`) only needs :func:`run_case`, a :class:`Case` and the loaded models.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import MVGInputError
from .io.files import OutputDir, read_image, write_frame_folders, write_png
from .pipeline import LoadedModels, PipelineConfig, PipelineResult, StageProgress, run_pipeline

MAX_REPORT_BYTES = 1 << 20
FINISHED_MARKER = "provenance.json"
"""A case folder holding this file is finished (it is written last, once everything else is in place)."""


@dataclass
class Case:
    """One case's inputs. ``image``/``mask``: a file or an array; ``report``: a file, ``"-"`` (standard
    input) or None with ``report_text``; ``overrides``: per-case parameters (by :class:`PipelineConfig` name)."""

    image: Any
    report: str | Path | None = None
    mask: Any = None
    name: str = "case"
    report_text: str | None = None
    keep_mask: Any = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseOutcome:
    name: str
    status: str  # "ok", "skipped" (already finished) or "failed"
    seconds: float = 0.0
    frames: int = 0
    error: str = ""
    out: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    gates: str = ""  # "pass" / "fail": the evaluation gates (metrics.json), "" when not evaluated
    failed_gates: str = ""  # their names, space-separated
    worker: str = ""  # the batch worker that ran it ("local" for the local engine)
    load_seconds: float = 0.0  # that worker's model load
    attempts: int = 0  # runs started (more than 1 after a worker died and the case was retried)


def read_report(source: str | Path) -> str:
    """The report from a file, or from standard input for ``"-"`` (never from the command line itself)."""
    if str(source) == "-":
        text = sys.stdin.read(MAX_REPORT_BYTES + 1)
        where = "standard input"
    else:
        p = Path(source)
        if not p.is_file():
            raise MVGInputError(f"--report {str(p)!r} does not exist; give the report as a text file, or - to read "
                                "it from standard input.")
        if p.stat().st_size > MAX_REPORT_BYTES:
            raise MVGInputError(f"--report {p.name!r} is larger than 1 MB; give the report text only.")
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise MVGInputError(f"--report {p.name!r} is not UTF-8 text; save the report as plain UTF-8 text.") from None
        where = repr(p.name)
    if len(text.encode("utf-8")) > MAX_REPORT_BYTES:
        raise MVGInputError(f"--report from {where} is larger than 1 MB; give the report text only.")
    if not text.strip():
        raise MVGInputError(f"--report from {where} is empty; give the clinical report text.")
    return text


def _image(value: Any, what: str) -> tuple[Any, Path | None]:
    if value is None or isinstance(value, np.ndarray) or hasattr(value, "detach"):
        return value, None
    p = Path(value)
    if not p.is_file():
        raise MVGInputError(f"--{what} {str(p)!r} does not exist; give an image file (PNG, JPEG, 16-bit PNG, TIFF "
                            "or DICOM).")
    return read_image(p), p


def is_finished(out_dir: str | Path) -> bool:
    return (Path(out_dir) / FINISHED_MARKER).is_file()


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def case_provenance(result: PipelineResult, config: PipelineConfig, models: LoadedModels, *,
                    inputs: dict[str, Path], report: str | None, extra_notes: list[str]) -> dict[str, Any]:
    from .provenance import _versions, file_sha256

    plan = result.plan
    report_entry: dict[str, Any] = {"sha256": plan.report_sha256 or (_sha256_text(report) if report else None)}
    if config.keep_report_in_metadata and report:
        report_entry["text"] = report
    pie_settings = dict(result.pie.settings)
    return {
        "generator": f"ComfyUI-MVG {__version__}",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pipeline": "ReportToPrompts -> ROIMask -> ProgressiveEdit (PIE) -> "
                    + ("frames (no transition)" if result.transition is None else "SEINETransition") + " -> video",
        "config": config.to_dict(),
        "report": report_entry,
        "plan": plan.to_dict(),
        "roi": {"summary": result.roi.describe(), "area_fraction": result.roi.area_fraction,
                "fallback": result.roi.fallback},
        "frames": result.frame_records,
        "video": {"frames": int(len(result.frames)), "fps": config.fps, "width": int(result.frames.shape[2]),
                  "height": int(result.frames.shape[1])},
        "pie": {"settings": pie_settings, "frames": [asdict(r) for r in result.pie.records],
                "keyframe_indices": result.pie.keyframe_indices, "notes": result.pie.notes},
        "transition": None if result.transition is None else {
            "settings": result.transition.settings, "notes": result.transition.notes},
        "notes": result.notes + extra_notes,
        "inputs": {role: {"name": p.name, "sha256": file_sha256(p)} for role, p in inputs.items()},
        "models": models.file_records(),
        "model_note": models.note,
        "timings_s": {k: round(v, 4) for k, v in result.timings.items()},
        "versions": _versions(),
    }


def write_outputs(out: Path, result: PipelineResult, config: PipelineConfig, *, dicom_out: str | None, dicom_source: Path | None, timings: dict[str, float]) -> list[str]:
    """Everything but ``provenance.json`` into ``out`` (a staging folder); returns notes."""
    from .io.video import write_mp4

    start = time.perf_counter()
    notes = write_mp4(out / "video.mp4", result.frames, config.fps)
    timings["video"] = time.perf_counter() - start
    start = time.perf_counter()
    write_frame_folders(out, result.frames, result.keyframes)
    write_png(out / "mask.png", result.mask)
    write_png(out / "roi_overlay.png", result.overlay)
    (out / "plan.txt").write_text(result.plan.describe() + "\n", encoding="utf-8")
    (out / "summary.txt").write_text(result.summary + "\n", encoding="utf-8")
    if dicom_out:
        from .io.dicom_write import color_mode_for, write_multiframe_sc

        write_multiframe_sc(out / dicom_out, result.frames, config.fps, color=color_mode_for(config.domain,
                                                                                        config.dicom_color),
                            source=dicom_source, copy_patient=config.dicom_copy_patient,
                            description=f"{len(result.frames)} frames, {config.domain}",
                            software_version=f"ComfyUI-MVG {__version__}")
    timings["write"] = time.perf_counter() - start
    return notes


def run_case(case: Case, config: PipelineConfig, models: LoadedModels, out_dir: str | Path, *,
             overwrite: bool = False, dicom_out: str | None = None, progress: StageProgress | None = None,
             extra_inputs: dict[str, Path] | None = None) -> CaseOutcome:
    """Run one case into ``out_dir`` (all or nothing). Raises :class:`MVGInputError` and friends on failure."""
    start = time.perf_counter()
    config = config.with_overrides(case.overrides, where=f"case {case.name}: ") if case.overrides else config
    config.check()
    report = case.report_text if case.report_text is not None else (
        read_report(case.report) if case.report is not None else None)
    if report is None:
        raise MVGInputError("--report is missing: give the report as a text file, or - to read standard input.")
    image, image_path = _image(case.image, "image")
    mask, mask_path = _image(case.mask, "mask")
    keep_mask, keep_path = _image(case.keep_mask, "keep-mask")
    check_output_args(config, dicom_out, image_path)
    inputs = {**(extra_inputs or {}), **({"image": image_path} if image_path else {}),
              **({"mask": mask_path} if mask_path else {}), **({"keep_mask": keep_path} if keep_path else {})}
    with OutputDir(out_dir, overwrite=overwrite) as out:
        if image_path is None:  # an array (the demo's photo): saved, so provenance can name and hash it
            from .io import as_rgb_image

            write_png(out / "input.png", as_rgb_image(image)[0])
            inputs["image"] = out / "input.png"
        result = run_pipeline(image, report, config, models, mask=mask, keep_mask=keep_mask, progress=progress)
        timings = result.timings
        notes = write_outputs(out, result, config, dicom_out=dicom_out, dicom_source=image_path,
                              timings=timings)
        gates = evaluate_case(out, result, image, notes, timings)
        provenance = case_provenance(result, config, models, inputs=inputs, report=report, extra_notes=notes)
        (Path(out_dir) / FINISHED_MARKER).unlink(missing_ok=True)  # an overwritten case is unfinished until the end
    _write_marker(Path(out_dir), json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    return CaseOutcome(case.name, "ok", time.perf_counter() - start, int(len(result.frames)), out=Path(out_dir),
                       timings=dict(timings), **gates)


def _write_marker(out_dir: Path, text: str) -> None:
    """``provenance.json`` after everything else is in place, atomically: a folder holding it is whole, even if
    the process was killed while the rest moved in."""
    fd, tmp = tempfile.mkstemp(prefix=f".{FINISHED_MARKER}.", dir=out_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, out_dir / FINISHED_MARKER)


def evaluate_case(out: Path, result: PipelineResult, image: Any, notes: list[str],
                  timings: dict[str, float]) -> dict[str, str]:
    """The evaluation (issue 11) of the case's video: ``metrics.json`` and ``metrics.png`` into ``out``, and the
    gates for the summary. CLIP-I and the classifier need models the pipeline does not load (``python -m
    mvg_backend evaluate`` adds them); a failure here is noted and never fails the case."""
    from .metrics import evaluate_trajectory

    start = time.perf_counter()
    try:
        keyframes = [r["index"] for r in result.frame_records if r.get("keyframe") is not None]
        evaluation = evaluate_trajectory(result.frames, image, result.mask, prompts=result.plan, keyframes=keyframes)
        evaluation.write(out)
    except Exception as exc:  # the metrics are a report on the case, not part of making it
        notes.append(f"evaluation failed: {type(exc).__name__}: {exc}")
        return {}
    finally:
        timings["evaluate"] = time.perf_counter() - start
    failed = [g.name for g in evaluation.gates if g.status == "fail"]
    return {"gates": "pass" if evaluation.passed else "fail", "failed_gates": " ".join(failed)}


def check_output_args(config: PipelineConfig, dicom_out: str | None, image: Any) -> None:
    """Early checks of the DICOM output options (before any model loads)."""
    if dicom_out is not None:
        name = Path(dicom_out).name
        if name != str(dicom_out) or not name or name.startswith(".") or name in ("video.mp4", FINISHED_MARKER):
            raise MVGInputError(f"--dicom-out {dicom_out!r}: give a file name (it is written in the output folder), "
                                "e.g. sequence.dcm.")
    if config.dicom_copy_patient and not dicom_out:
        raise MVGInputError("--dicom-copy-patient only applies with --dicom-out; add --dicom-out sequence.dcm.")
    is_path = isinstance(image, (str, Path))
    if config.dicom_copy_patient and not (is_path and Path(image).is_file() and _is_dicom(Path(image))):
        raise MVGInputError("--dicom-copy-patient copies identifiers from a DICOM --image; the image is not DICOM "
                            "(leave it off for an anonymous DICOM).")


def _is_dicom(path: Path) -> bool:
    from .io.dicom import is_dicom

    return is_dicom(path)
