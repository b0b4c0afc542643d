"""Which frames are keyframes: from SEINE Transition's summary ("frame 15: keyframe 2") or PIE's records."""

from __future__ import annotations

import re
from typing import Any

_FRAME_KEYFRAME = re.compile(r"^frame (\d+): keyframe (\d+)\b", re.MULTILINE)


def keyframes_from_summary(summary: str | None) -> list[int]:
    """Frame indices marked as keyframes in an MVG SEINE Transition summary (empty if none)."""
    if not summary:
        return []
    return sorted({int(m.group(1)) for m in _FRAME_KEYFRAME.finditer(summary)})


def keyframes_from(value: Any, frames: int) -> list[int]:
    """Keyframe indices from a summary string or a list of indices, kept within ``0..frames-1``."""
    if value is None:
        return []
    if isinstance(value, str):
        found = keyframes_from_summary(value)
    else:
        found = sorted({int(v) for v in value})
    return [k for k in found if 0 <= k < frames]
