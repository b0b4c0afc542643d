"""Masks that need no image analysis: the full image, a rectangle, and combining with a user mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MVGInputError
from ..io.images import as_mask

COMBINE_MODES = ("replace", "union", "intersect", "subtract")


def full(size: tuple[int, int]) -> np.ndarray:
    return np.ones(size, np.float32)


def parse_rect(rect: Any) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` as fractions 0..1 from a 4-sequence or a ``"l, t, r, b"`` string."""
    if isinstance(rect, str):
        parts = [p for p in rect.replace(";", ",").split(",") if p.strip()]
    else:
        parts = list(rect) if rect is not None else []
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4:
        raise MVGInputError(
            f"rectangle {rect!r}: give four numbers 'left, top, right, bottom' as fractions of the image "
            "(0..1), e.g. '0.25, 0.25, 0.75, 0.75'."
        )
    left, top, right, bottom = values
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise MVGInputError(
            f"rectangle {rect!r}: need 0 <= left < right <= 1 and 0 <= top < bottom <= 1 (fractions of the image)."
        )
    return left, top, right, bottom


def rectangle(size: tuple[int, int], rect: Any) -> np.ndarray:
    """A hard rectangle; pixel ``(x, y)`` is inside when its centre lies in the fractional box."""
    left, top, right, bottom = parse_rect(rect)
    h, w = size
    xs = (np.arange(w) + 0.5) / w
    ys = (np.arange(h) + 0.5) / h
    inside = ((ys >= top) & (ys <= bottom))[:, None] & ((xs >= left) & (xs <= right))[None, :]
    if not inside.any():
        cx, cy = min(w - 1, int((left + right) / 2 * w)), min(h - 1, int((top + bottom) / 2 * h))
        inside[cy, cx] = True
    return inside.astype(np.float32)


def combine(auto: np.ndarray | None, user: Any, mode: str, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Combine the automatic mask with a user mask (resized to ``size=(H, W)``): ``replace``, ``union``
    (max), ``intersect`` (min) or ``subtract`` (``auto * (1 - user)``: the user mask is kept out of the
    region). ``auto`` may be None only for ``replace``."""
    if mode not in COMBINE_MODES:
        raise MVGInputError(f"combine={mode!r}: use one of {', '.join(COMBINE_MODES)}.")
    user_mask, notes = as_mask(user, size, name="user mask")
    if mode == "replace" or auto is None:
        return user_mask, notes
    if mode == "union":
        return np.maximum(auto, user_mask), notes
    if mode == "subtract":
        return (auto * (1.0 - user_mask)).astype(np.float32), notes
    return np.minimum(auto, user_mask), notes


def as_user_mask(user: Any, size: tuple[int, int], name: str = "user mask") -> tuple[np.ndarray, list[str]]:
    """A user-drawn mask as float ``[H,W]`` in 0..1 at ``size`` (see ``io.images.as_mask``)."""
    return as_mask(user, size, name=name)
