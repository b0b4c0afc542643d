"""A preview of a mask over its image: tinted inside, outline drawn, for checking at a glance."""

from __future__ import annotations

import cv2
import numpy as np

from ..io.images import as_rgb_image

TINT = np.array([1.0, 0.15, 0.1], np.float32)  # red
OUTLINE = (1.0, 0.9, 0.0)  # yellow


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """float32 ``[H,W,3]``: the image, ``alpha`` × mask tinted red, and the 0.5 outline in yellow."""
    rgb, _ = as_rgb_image(image)
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)[..., None]
    out = rgb * (1 - alpha * m) + TINT * (alpha * m)
    thickness = max(1, round(max(rgb.shape[:2]) / 300))
    contours, _ = cv2.findContours((mask >= 0.5).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    out = np.ascontiguousarray(out, dtype=np.float32)
    cv2.drawContours(out, contours, -1, OUTLINE, thickness, lineType=cv2.LINE_AA)
    return np.clip(out, 0.0, 1.0)
