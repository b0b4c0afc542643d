"""Disk cache of LLM plans, keyed by (report hash, endpoint, model, parameters).

Files hold the validated plan only (``PromptPlan.to_dict()``: the report's hash, never its text, and
never a key). Inside ComfyUI the node passes a folder under ComfyUI's user directory; headless the default
is ``$MVG_CACHE_DIR``, else ``$XDG_CACHE_HOME/comfyui-mvg/prompts`` (``~/.cache/...``; ``%LOCALAPPDATA%``
on Windows).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from .types import PromptPlan

log = logging.getLogger("mvg.prompts")
MAX_ENTRY_BYTES = 1 << 20  # a plan is a few kB; anything much larger is not ours


def default_cache_dir() -> Path:
    if os.environ.get("MVG_CACHE_DIR"):
        return Path(os.environ["MVG_CACHE_DIR"])
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "comfyui-mvg" / "prompts"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "comfyui-mvg" / "prompts"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (report hash, base URL, model, parameters, prompt version)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class PlanCache:
    """One JSON file per key. Unreadable or invalid entries count as misses and are replaced."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> PromptPlan | None:
        path = self._path(key)
        try:
            if not path.is_file():
                return None
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise ValueError("entry too large")
            return PromptPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except Exception as exc:  # a damaged, outdated or unreadable entry: a miss (it will be rewritten)
            log.warning("MVG prompt cache: ignoring unreadable entry %s (%s)", path.name, type(exc).__name__)
            return None

    def put(self, key: str, plan: PromptPlan) -> bool:
        """Store ``plan``; False (and a warning) when the folder cannot be written: losing the cache must never
        lose the plan."""
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(plan.to_dict(), fh, indent=1)
            os.replace(tmp, self._path(key))
            return True
        except OSError as exc:
            log.warning("MVG prompt cache: cannot write to %s (%s: %s); the plan is not cached, set MVG_CACHE_DIR "
                        "(or fix the folder's permissions) to cache it.", self.folder, type(exc).__name__,
                        exc.strerror or exc)
            return False
        finally:
            if tmp is not None and Path(tmp).exists():
                Path(tmp).unlink(missing_ok=True)
