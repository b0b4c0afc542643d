"""Provenance sidecars: prompts, seeds, parameters, library versions and model file hashes.

Never holds report text or absolute input paths (they can carry patient identifiers): inputs are named by
file name and content hash only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import __version__
from .pie.engine import PIEResult

_CHUNK = 8 << 20


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    out = {}
    for name in ("torch", "diffusers", "transformers", "numpy", "opencv-python-headless"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def pie_provenance(result: PIEResult, *, model_files: list[str], inputs: dict[str, str | Path],
                   model_note: str = "") -> dict[str, Any]:
    """The sidecar for a PIE run. ``inputs`` maps a role ("image", "mask") to a file path."""
    return {
        "generator": f"ComfyUI-MVG {__version__}",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "stage": "ProgressiveEdit (PIE)",
        "settings": result.settings,
        "frames": [asdict(r) for r in result.records],
        "notes": result.notes,
        "inputs": {role: {"name": Path(p).name, "sha256": file_sha256(p)} for role, p in inputs.items()},
        "models": [{"name": Path(f).name, "bytes": Path(f).stat().st_size, "sha256": file_sha256(f)}
                   for f in model_files],
        "model_note": model_note,
        "versions": _versions(),
    }
