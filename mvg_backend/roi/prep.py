"""Input checks and the small image helpers every ROI method shares (working size, gray, resampling)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import MVGInputError
from ..io.images import as_rgb_image


def as_roi_image(image: Any, name: str = "image", *, need_content: bool = True) -> tuple[np.ndarray, list[str]]:
    """``(float32 [H,W,3] in 0..1, notes)`` for ROI work; clear errors for unusable images.

    ``need_content``: automatic methods need an image that is not one value everywhere.
    """
    shape = getattr(image, "shape", None)
    if shape is not None and len(shape) == 4 and shape[0] != 1:
        raise MVGInputError(
            f"{name}: got a batch of {shape[0]} images; segment() takes one image [H,W] or [H,W,3]. "
            "Call it once per image (the MVG_ROIMask node does this for a batch)."
        )
    if shape is not None and 0 in tuple(shape):
        raise MVGInputError(f"{name} is empty (shape {tuple(shape)}); connect or load a real image.")
    rgb, notes = as_rgb_image(image, name)
    if need_content and float(rgb.max() - rgb.min()) < 1e-6:
        raise MVGInputError(
            f"{name} is constant (every pixel is {float(rgb.flat[0]):.3g}), so there is nothing to segment. "
            "Check the upstream image (a blank or failed load?), or use region 'full' or 'rectangle', or a user mask."
        )
    return rgb, notes


MIN_ANALYSIS_SIDE = 32
"""Automatic analysis needs at least this many pixels on the shorter side (an 8x8 image has no lungs to find)."""
MAX_ASPECT = 4.0
"""... and an aspect ratio within 1:4..4:1 (a strip is no radiograph, fundus or skin photo; chest seeds crash on it)."""


def check_analysable(rgb: np.ndarray, domain: str, name: str = "image") -> None:
    """``MVGInputError`` for an image that automatic analysis cannot read: too small, or a strip."""
    h, w = rgb.shape[:2]
    fix = "Pass the whole image, or use region 'full' or 'rectangle', or a user mask."
    if max(h, w) > MAX_ASPECT * min(h, w):
        what = "a frontal chest radiograph" if domain == "chest_xray" else f"a {domain} image"
        raise MVGInputError(f"{name} is {w}x{h} px: a strip, not {what} (automatic analysis needs an aspect ratio "
                            f"within 1:{MAX_ASPECT:g} to {MAX_ASPECT:g}:1). {fix}")
    if min(h, w) < MIN_ANALYSIS_SIDE:
        raise MVGInputError(f"{name} is {w}x{h} px: too small for automatic {domain} analysis (it needs at least "
                            f"{MIN_ANALYSIS_SIDE} px on the shorter side). {fix}")


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Luminance (BT.601) of a float RGB image."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    """Resize so that the longer side is ``longest`` px (area averaging when shrinking)."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image.copy()
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def upsample_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A working-size mask back at ``size=(H, W)``: linear interpolation, then a 0.5 cut (smooth edges)."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(np.float32)
    up = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return (up >= 0.5).astype(np.float32)


def normalise(gray: np.ndarray, region: np.ndarray | None = None, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch the ``low``..``high`` percentiles (of ``region`` if given) to 0..1."""
    values = gray[region] if region is not None and region.any() else gray
    lo, hi = np.percentile(values, [low, high])
    if hi - lo < 1e-6:
        lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-6:
        return np.zeros_like(gray, dtype=np.float32)
    return np.clip((gray - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def clahe(gray: np.ndarray, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a 0..1 image (OpenCV, 8-bit)."""
    eq = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(
        (np.clip(gray, 0, 1) * 255 + 0.5).astype(np.uint8)
    )
    return eq.astype(np.float32) / 255.0


def disk(radius: int) -> np.ndarray:
    """An elliptical (disk) structuring element of the given radius in pixels."""
    r = max(0, int(round(radius)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def ellipse_mask(shape: tuple[int, int], cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    """Bool mask of the ellipse centred at pixel ``(cx, cy)`` with semi-axes ``ax``, ``ay`` (pixels)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return ((xx - cx) / max(ax, 1e-6)) ** 2 + ((yy - cy) / max(ay, 1e-6)) ** 2 <= 1.0


def largest_components(mask: np.ndarray, n: int = 1) -> np.ndarray:
    """The ``n`` largest 8-connected components of a bool mask."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    order = np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1][:n] + 1
    return np.isin(labels, order)


def content_box(gray: np.ndarray, rel: float = 0.1) -> tuple[slice, slice]:
    """Rows and columns between the first and last that vary: trims uniform padding and flat bands.

    A row/column counts as content when its standard deviation exceeds ``rel`` times the median one.
    """
    small = resize_longest(gray, 256)
    sy, sx = gray.shape[0] / small.shape[0], gray.shape[1] / small.shape[1]
    box = []
    for axis, scale, n in ((1, sy, gray.shape[0]), (0, sx, gray.shape[1])):
        spread = small.std(axis=axis)
        keep = np.flatnonzero(spread > rel * max(float(np.median(spread)), 1e-6))
        if keep.size == 0:
            box.append(slice(0, n))
            continue
        box.append(slice(int(keep[0] * scale), min(n, int(np.ceil((keep[-1] + 1) * scale)))))
    return box[0], box[1]
