"""Heart (cardiac silhouette) and mediastinum on a frontal chest X-ray, from the lung fields' geometry.

Classical and weight-free, like the lungs (``chest.lung_fields``), and it runs on their result. Sizes are
fractions of the lung fields' width ``W`` (both lungs together), so any image size behaves the same.

- Heart: an ellipse whose box follows the anatomy of a PA film: from ``HEART_X`` of the lung fields' width
  (the right heart border lies a little medial of the right lung's midpoint, the apex near the left lung's
  midpoint), from ``HEART_TOP`` below the lung apices down to the diaphragm. The diaphragm under the heart
  is found from the right cardiophrenic angle (the right lung's lowest medial corner, the point that
  maximises ``x + y``), ``HEART_BELOW_ANGLE`` below it, because the heart's lower border itself has no edge.
  In the rows where both lungs are present the heart fills the gap between their medial borders (within the
  ellipse grown by ``HEART_GROW``), so it follows the real heart borders; it never overlaps a lung.
- Mediastinum: the gap between the two lungs' medial borders from the apices down to the heart's lower
  border, plus the heart (the heart lies in the middle mediastinum). It never overlaps a lung.

On the JSRT development split (SCR masks) the heart scores a mean Dice of about 0.86 (bench/eval_roi.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from .prep import resize_longest, upsample_mask
from .types import Analysis

WORK = 256
HEART_X = (0.349, 0.822)  # heart's right and left borders, fractions of the lung fields' width from their right edge
HEART_TOP = 0.465  # heart's upper border below the apices, fraction of the lung fields' width
HEART_BELOW_ANGLE = 0.09  # heart's lower border below the right cardiophrenic angle, fraction of the width
HEART_GROW = 0.15  # how far the heart may follow the lungs' medial borders beyond the ellipse
ENLARGE = 0.2  # cardiomegaly: the heart dilated into the adjacent lungs by this fraction of its width


def _ellipse(shape: tuple[int, int], cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (int(round(cx)), int(round(cy))), (max(1, int(round(ax))), max(1, int(round(ay)))), 0, 0, 360, 1, -1)
    return m > 0


def _medial_gap(right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the right lung's medial (largest) x and the left lung's medial (smallest) x; -1 if absent."""
    h, w = right.shape
    cols = np.arange(w)
    r_any, l_any = right.any(axis=1), left.any(axis=1)
    xr = np.where(r_any, np.where(right, cols, -1).max(axis=1), -1)
    xl = np.where(l_any, np.where(left, cols, w).min(axis=1), -1)
    return xr, xl


def heart_and_mediastinum(right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(heart, mediastinum)`` bool masks at the lungs' size, from the right and left lung fields (bool)."""
    h, w = right.shape
    lungs = right | left
    if not right.any() or not left.any():
        return np.zeros((h, w), bool), np.zeros((h, w), bool)
    ys, xs = np.flatnonzero(lungs.any(axis=1)), np.flatnonzero(lungs.any(axis=0))
    y0, x0, width = ys[0], xs[0], max(1, xs[-1] - xs[0])
    ry, rx = np.nonzero(right)
    corner = int(np.argmax(ry + rx))  # right cardiophrenic angle: the right lung's lowest medial corner
    top, bottom = y0 + HEART_TOP * width, ry[corner] + HEART_BELOW_ANGLE * width
    bottom = max(bottom, top + 0.2 * width)
    cx, cy = x0 + sum(HEART_X) / 2 * width, (top + bottom) / 2
    ax, ay = (HEART_X[1] - HEART_X[0]) / 2 * width, (bottom - top) / 2
    core = _ellipse((h, w), cx, cy, ax, ay)
    grown = _ellipse((h, w), cx, cy, ax * (1 + HEART_GROW), ay * (1 + HEART_GROW))
    xr, xl = _medial_gap(right, left)
    heart = core.copy()
    cols = np.arange(w)[None, :]
    both = (xr >= 0) & (xl >= 0) & (np.arange(h) <= bottom)
    between = (cols > xr[:, None]) & (cols < xl[:, None])
    heart[both] = (grown & between)[both]
    heart &= ~lungs
    gap = both[:, None] & between & (np.arange(h)[:, None] >= y0) & (np.arange(h)[:, None] <= bottom)
    mediastinum = (gap | heart) & ~lungs
    return heart, mediastinum


def add_heart_and_mediastinum(analysis: Analysis) -> Analysis:
    """Add ``heart`` and ``mediastinum`` parts (input size) to a chest analysis that has the two lungs."""
    right, left = analysis.parts["right_lung"], analysis.parts["left_lung"]
    size = right.shape
    r_small = resize_longest(right.astype(np.float32), WORK) >= 0.5
    l_small = resize_longest(left.astype(np.float32), WORK) >= 0.5
    heart, mediastinum = heart_and_mediastinum(r_small, l_small)
    lungs = analysis.parts["lungs"] >= 0.5
    analysis.parts["heart"] = upsample_mask(heart, size) * ~lungs
    analysis.parts["mediastinum"] = upsample_mask(mediastinum, size) * ~lungs
    heart_px = analysis.parts["heart"] >= 0.5
    if heart_px.any():
        ys, xs = np.nonzero(heart_px)
        analysis.landmarks.update(heart_x=float(xs.mean()), heart_y=float(ys.mean()),
                                  heart_width=float(xs.max() - xs.min() + 1))
    if {"right_lung", "left_lung"} & analysis.fallbacks:
        analysis.fallbacks |= {"heart", "mediastinum"}
        analysis.notes.append("chest: heart and mediastinum placed from the lungs' prior ellipses (a lung fell back).")
    return analysis


def enlarged_heart(analysis: Analysis, fraction: float = ENLARGE) -> np.ndarray:
    """Cardiomegaly's edit region: the heart dilated into the adjacent lung fields (by ``fraction`` of its width),
    so that the silhouette can grow; it stays inside the thorax (heart, mediastinum and lungs)."""
    heart = analysis.parts["heart"] >= 0.5
    if not heart.any():
        return heart
    radius = max(1, int(round(fraction * analysis.landmarks.get("heart_width", heart.shape[1] / 3))))
    grown = cv2.dilate(heart.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)) > 0
    thorax = heart | (analysis.parts["lungs"] >= 0.5) | (analysis.parts["mediastinum"] >= 0.5)
    return heart | (grown & thorax)
