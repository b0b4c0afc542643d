"""Where a batch's cases come from: a CSV, or a folder of cases.

CSV: columns ``image`` and ``report`` (files; relative paths are relative to the CSV's folder), optional
``mask``, ``keep_mask`` (never edited) and ``case`` (the output folder's name; default: the image's stem), and any
:class:`~mvg_backend.pipeline.PipelineConfig` field as a column (``rounds``, ``domain``, ``transition`` ...):
a non-empty cell overrides that parameter for that row.

Folder: every sub-folder is a case, named after it, holding ``report.txt`` (or exactly one ``.txt``), an image
``image.*`` (or exactly one image file that is not a mask), optionally ``mask.*`` and ``params.json``
(overrides). A flat folder of ``NAME.png`` + ``NAME.txt`` pairs works too (``NAME_mask.png`` optional).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from ..case import Case
from ..errors import MVGInputError
from ..pipeline import config_fields

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".dcm", ".dicom")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    name = _SAFE.sub("_", text).strip("._") or "case"
    return name[:100]


def _unique(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    for case in cases:
        base = case.name
        if base in seen:
            seen[base] += 1
            case.name = f"{base}_{seen[base]}"
        else:
            seen[base] = 1
    return cases


def cases_from_csv(path: str | Path) -> list[Case]:
    p = Path(path)
    if not p.is_file():
        raise MVGInputError(f"batch CSV {str(p)!r} does not exist.")
    known = {f.name for f in config_fields()}
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("image", "report") if c not in columns]
        if missing:
            raise MVGInputError(f"batch CSV {p.name!r} lacks the column(s) {', '.join(missing)}; it needs image and "
                                "report (files), optionally mask, case and any parameter (e.g. rounds).")
        unknown = [c for c in columns if c not in known | {"image", "report", "mask", "keep_mask", "case"}]
        if unknown:
            raise MVGInputError(f"batch CSV {p.name!r}: unknown column(s) {', '.join(unknown)}; parameter columns "
                                f"must be one of: {', '.join(sorted(known))}.")
        cases = []
        for row_number, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            if not row.get("image"):
                raise MVGInputError(f"batch CSV {p.name!r} line {row_number}: the image cell is empty.")
            image = p.parent / row["image"]
            report = p.parent / row["report"] if row.get("report") else None
            mask = p.parent / row["mask"] if row.get("mask") else None
            keep = p.parent / row["keep_mask"] if row.get("keep_mask") else None
            overrides = {k: v for k, v in row.items() if k in known and v != ""}
            name = safe_name(row.get("case") or Path(row["image"]).stem)
            cases.append(Case(image=image, report=report, mask=mask, keep_mask=keep, name=name, overrides=overrides))
    if not cases:
        raise MVGInputError(f"batch CSV {p.name!r} has no rows.")
    return _unique(cases)


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _case_from_subfolder(folder: Path) -> Case:
    images = _images(folder)
    masks = [f for f in images if f.stem.lower() in ("mask", "roi")]
    named = [f for f in images if f.stem.lower() == "image"]
    others = [f for f in images if f not in masks]
    image = named[0] if named else (others[0] if len(others) == 1 else None)
    reports = [folder / "report.txt"] if (folder / "report.txt").is_file() else sorted(folder.glob("*.txt"))
    overrides = {}
    if (folder / "params.json").is_file():
        try:
            overrides = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MVGInputError(f"case {folder.name}: params.json is not valid JSON ({exc}).") from None
        if not isinstance(overrides, dict):
            raise MVGInputError(f"case {folder.name}: params.json must be an object of parameter: value.")
    return Case(image=image if image is not None else folder / "image.png",
                report=reports[0] if len(reports) == 1 else folder / "report.txt",
                mask=masks[0] if masks else None, name=safe_name(folder.name), overrides=overrides)


def cases_from_folder(path: str | Path) -> list[Case]:
    root = Path(path)
    if not root.is_dir():
        raise MVGInputError(f"batch folder {str(root)!r} does not exist.")
    subfolders = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subfolders:
        cases = [_case_from_subfolder(d) for d in subfolders]
    else:
        cases = []
        for image in _images(root):
            if image.stem.lower().endswith("_mask"):
                continue
            masks = [m for m in _images(root) if m.stem == f"{image.stem}_mask"]
            cases.append(Case(image=image, report=image.with_suffix(".txt"), mask=masks[0] if masks else None,
                              name=safe_name(image.stem)))
    if not cases:
        raise MVGInputError(f"batch folder {root.name!r} holds no cases: give one sub-folder per case (image.png + "
                            "report.txt), or NAME.png + NAME.txt pairs, or a CSV.")
    return _unique(cases)


def load_cases(source: str | Path) -> list[Case]:
    """Cases from a ``.csv`` file or a folder."""
    p = Path(source)
    if p.is_dir():
        return cases_from_folder(p)
    if p.suffix.lower() == ".csv" or p.is_file():
        return cases_from_csv(p)
    raise MVGInputError(f"batch input {str(p)!r} does not exist; give a CSV (image, report, ...) or a folder of cases.")
