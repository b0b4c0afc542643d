"""Score automatic masks against ground truth listed in a CSV manifest (Dice, IoU, failures per task).

Manifest: one row per image. ``image`` is the image path (relative to the data folder; PNG, JPEG, TIFF,
BMP, GIF or DICOM). Each ground-truth column is named after its region (``lungs``, ``left_lung``,
``right_lung``, ``heart``, ``fov``, ``optic_disc``, ``macula``, ``retina``, ``lesion``; also ``fov_mask``,
``od_mask``/``disc_mask``, ``lesion_mask``). ``left_lung`` + ``right_lung`` (the patient's sides) also
give a ``lungs`` task (their union), and a ``mediastinum`` plausibility check (there is no mediastinum
ground truth): the share of the predicted mediastinum that lies between the true lungs (inside their
joint convex hull, outside both) and the share that overlaps a true lung. An optional ``domain`` column
overrides the domain the regions imply.
Ground truth is positive above half its range (above 127 for 8-bit; above 0 for 0/1 masks); the
prediction is resized to the ground truth's size. A failure is an error or a Dice below 0.5.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import MVGInputError
from ..io.files import read_image, read_text
from .api import REGIONS_BY_DOMAIN, segment_detailed

COLUMNS = {
    "lungs": "lungs", "left_lung": "left_lung", "right_lung": "right_lung", "fov": "fov", "fov_mask": "fov",
    "optic_disc": "optic_disc", "od_mask": "optic_disc", "disc_mask": "optic_disc", "macula": "macula",
    "retina": "retina", "lesion": "lesion", "lesion_mask": "lesion", "heart": "heart",
}
FAIL_DICE = 0.5


@dataclass
class TaskScores:
    """Per-image scores of one task."""

    dice: list[float] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    failures: int = 0
    fallbacks: int = 0
    centre_inside: list[bool] = field(default_factory=list)
    between: list[float] = field(default_factory=list)  # mediastinum: share between the true lungs
    overlap: list[float] = field(default_factory=list)  # mediastinum: share inside a true lung
    seconds: list[float] = field(default_factory=list)


def _read(path: Path) -> np.ndarray:
    """An image or mask file; GIF masks (e.g. DRIVE's) through Pillow where OpenCV has no GIF decoder."""
    try:
        return read_image(path)
    except MVGInputError:
        if path.suffix.lower() != ".gif" or not path.is_file():
            raise
        from PIL import Image  # a scikit-image dependency

        with Image.open(path) as im:
            return np.asarray(im.convert("L"))


def binarise_truth(mask: np.ndarray) -> np.ndarray:
    """Ground truth as bool ``[H,W]``: the first channel, positive above half its range."""
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.dtype == np.bool_:
        return mask
    if np.issubdtype(mask.dtype, np.integer):
        top = float(mask.max())
        return mask > (0 if top <= 1 else np.iinfo(mask.dtype).max / 2)
    return mask > (0.5 if float(mask.max()) <= 1.0 else float(mask.max()) / 2)


def dice_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    inter = float(np.logical_and(pred, truth).sum())
    total = float(pred.sum() + truth.sum())
    union = float(np.logical_or(pred, truth).sum())
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / union if union else 1.0


def _tasks(header: list[str]) -> dict[str, list[str]]:
    """task -> the columns whose union is its ground truth."""
    tasks = {COLUMNS[c]: [c] for c in header if c in COLUMNS}
    if "lungs" not in tasks and "left_lung" in tasks and "right_lung" in tasks:
        tasks = {"lungs": tasks["left_lung"] + tasks["right_lung"], **tasks}
    return tasks


def _domain_of(region: str) -> str:
    return next(d for d, regions in REGIONS_BY_DOMAIN.items() if region in regions)


def _resize_to(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if pred.shape == shape:
        return pred >= 0.5
    return cv2.resize(pred.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) >= 0.5


def mediastinum_plausibility(mediastinum: np.ndarray, right: np.ndarray, left: np.ndarray) -> tuple[float, float]:
    """``(share between the lungs, share overlapping a lung)`` of a predicted mediastinum (bool masks, same size).

    Between: inside the convex hull of both true lungs and outside both of them."""
    from skimage.morphology import convex_hull_image

    area = float(mediastinum.sum())
    if area == 0:
        return 0.0, 0.0
    lungs = right | left
    gap = convex_hull_image(lungs) & ~lungs
    return float((mediastinum & gap).sum()) / area, float((mediastinum & lungs).sum()) / area


def evaluate(manifest: str | Path, data_dir: str | Path, limit: int | None = None,
             rows_out: list[dict] | None = None, progress=None) -> dict[str, TaskScores]:
    """Run :func:`segment_detailed` on every image of ``manifest`` and score each task."""
    manifest, data_dir = Path(manifest), Path(data_dir)
    text = read_text(manifest, "manifest")
    if data_dir.is_file():
        raise MVGInputError(f"data folder {str(data_dir)!r} is a file; give the folder the manifest's paths are "
                            "relative to.")
    if not data_dir.is_dir():
        raise MVGInputError(f"data folder {str(data_dir)!r} does not exist.")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or [])
    rows = list(reader)[:limit]
    if "image" not in header:
        raise MVGInputError(f"{manifest.name}: needs an 'image' column (got {', '.join(header)}).")
    tasks = _tasks(header)
    plausibility = "left_lung" in header and "right_lung" in header
    if not tasks:
        raise MVGInputError(f"{manifest.name}: no ground-truth column; name one after a region, e.g. "
                            f"{', '.join(sorted(set(COLUMNS)))}.")
    scores = {task: TaskScores() for task in tasks}
    if plausibility:
        scores["mediastinum"] = TaskScores()
    for n, row in enumerate(rows, start=1):
        first = next(iter(tasks))
        domain = row.get("domain") or _domain_of(first)
        t0 = time.perf_counter()
        try:
            image = _read(data_dir / row["image"])
            result = segment_detailed(image, domain, first)
            error = ""
        except Exception as exc:  # one bad file must not stop the evaluation
            result, error = None, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        for task, columns in tasks.items():
            s = scores[task]
            out = {"id": row.get("id", str(n)), "task": task, "dice": "", "iou": "", "error": error}
            if result is not None:
                try:
                    truth = np.logical_or.reduce([binarise_truth(_read(data_dir / row[c])) for c in columns])
                except Exception as exc:
                    out["error"] = f"ground truth: {type(exc).__name__}: {exc}"
                    truth = None
            if result is None or truth is None:
                s.failures += 1
                rows_out is not None and rows_out.append(out)
                continue
            pred = result.mask if task == result.region else result.analysis.parts[task]
            d, i = dice_iou(_resize_to(pred, truth.shape), truth)
            s.dice.append(d)
            s.iou.append(i)
            s.seconds.append(seconds)
            s.failures += d < FAIL_DICE
            s.fallbacks += task in result.analysis.fallbacks
            if task == "optic_disc":
                sy, sx = truth.shape[0] / pred.shape[0], truth.shape[1] / pred.shape[1]
                lm = result.analysis.landmarks
                y = min(truth.shape[0] - 1, int(lm["disc_y"] * sy))
                x = min(truth.shape[1] - 1, int(lm["disc_x"] * sx))
                s.centre_inside.append(bool(truth[y, x]))
            out.update(dice=f"{d:.4f}", iou=f"{i:.4f}")
            if rows_out is not None:
                rows_out.append(out)
        if plausibility and result is not None and "mediastinum" in result.analysis.parts:
            try:
                right, left = (binarise_truth(_read(data_dir / row[c])) for c in ("right_lung", "left_lung"))
                between, overlap = mediastinum_plausibility(
                    _resize_to(result.analysis.parts["mediastinum"], right.shape), right, left)
                scores["mediastinum"].between.append(between)
                scores["mediastinum"].overlap.append(overlap)
            except Exception:  # counted as a failure of the check, as for the other tasks
                scores["mediastinum"].failures += 1
        if progress:
            progress(n, len(rows))
    return scores


def report(name: str, scores: dict[str, TaskScores]) -> str:
    """A text table: one line per task."""
    lines = [f"{name}", f"  {'task':<11} {'n':>4} {'Dice':>6} {'median':>7} {'min':>6} {'IoU':>6} "
                        f"{'failures':>8} {'fallbacks':>9} {'s/img':>6}  extra"]
    for task, s in scores.items():
        if s.between:
            lines.append(f"  {task:<11} {len(s.between):>4}  plausibility: between the true lungs "
                         f"{np.mean(s.between):.1%} "
                         f"(min {np.min(s.between):.1%}), overlapping a true lung {np.mean(s.overlap):.1%} "
                         f"(max {np.max(s.overlap):.1%})")
            continue
        if not s.dice:
            lines.append(f"  {task:<11} {0:>4} {'-':>6} {'-':>7} {'-':>6} {'-':>6} {s.failures:>8} {s.fallbacks:>9}")
            continue
        extra = f"centre inside the true disc: {np.mean(s.centre_inside):.1%}" if s.centre_inside else ""
        lines.append(f"  {task:<11} {len(s.dice):>4} {np.mean(s.dice):>6.4f} {np.median(s.dice):>7.4f} "
                     f"{np.min(s.dice):>6.3f} {np.mean(s.iou):>6.4f} {s.failures:>8} {s.fallbacks:>9} "
                     f"{np.mean(s.seconds):>6.2f}  {extra}")
    return "\n".join(lines)
