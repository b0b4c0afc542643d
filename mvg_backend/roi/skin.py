"""Skin lesion on a dermoscopy or clinical photo (no learned weights).

1. Hair removal: hairs are thin dark lines, so a morphological black-hat (closing minus image) with a
   kernel wider than a hair finds them; Otsu on the black-hat response marks them and OpenCV inpainting
   (Telea) paints them over with the surrounding skin.
2. Vignetting: the dark circle or corners of a dermoscope are near-black regions touching the border;
   they are excluded from the statistics. Slow illumination fall-off is divided out with a heavily
   blurred estimate of the skin brightness.
3. Lesion: pigmented lesions are darker, above all in the blue channel; Otsu inside the usable area
   splits lesion from skin. Components are smoothed, and the one nearest the image centre (ties: the
   larger) is kept, holes filled.
4. Nothing lesion-like (no component of at least 0.5% of the image) falls back to a centred ellipse
   over the middle half of the image.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage import filters

from .prep import disk, ellipse_mask, resize_longest, upsample_mask
from .types import Analysis

WORK = 512
HAIR_KERNEL = 0.03  # black-hat kernel, fraction of the shorter side (wider than a hair)
MIN_AREA = 0.005


def remove_hair(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """``(rgb with hairs inpainted, hair area fraction)``; works on float RGB 0..1."""
    u8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    gray = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    k = max(3, round(HAIR_KERNEL * min(gray.shape)) | 1)
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    blackhat = cv2.GaussianBlur(blackhat, (3, 3), 0)
    t = max(filters.threshold_otsu(blackhat), 10)
    hair = blackhat > t
    # a hair is long and thin: keep components that are elongated or large, drop specks (pigment dots)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hair.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    for i in range(1, count):
        w, h, area = stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT], stats[i, cv2.CC_STAT_AREA]
        keep[i] = max(w, h) >= 0.5 * k and area < 0.6 * w * h
    hair = keep[labels]
    hair = cv2.dilate(hair.astype(np.uint8), disk(1))
    if not hair.any():
        return rgb, 0.0
    out = cv2.inpaint(u8, hair, max(3, k // 3), cv2.INPAINT_TELEA)
    return out.astype(np.float32) / 255.0, float(hair.mean())


def _usable(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are not the dermoscope's black surround (near-black regions touching the border)."""
    v = rgb.max(axis=2)
    dark = v < 0.25 * np.median(v)
    lab, _ = ndi.label(dark)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    surround = np.isin(lab, border[border > 0])
    return ~surround


def analyse_skin(rgb: np.ndarray) -> Analysis:
    """The ``lesion`` mask at the input size."""
    size = rgb.shape[:2]
    small = resize_longest(rgb, WORK)
    h, w = small.shape[:2]
    notes: list[str] = []
    clean, hair = remove_hair(small)
    if hair > 0.002:
        notes.append(f"skin: hair removed by black-hat + inpainting ({hair:.1%} of the image).")
    usable = _usable(clean)
    if usable.mean() < 0.99:
        notes.append(f"skin: dark surround/corners excluded ({1 - usable.mean():.0%} of the image).")
    blue = clean[..., 2].astype(np.float32)
    skin_level = np.where(usable, blue, np.median(blue[usable]))
    illumination = cv2.GaussianBlur(skin_level, (0, 0), 0.25 * max(h, w))
    flat = blue / np.maximum(illumination, 1e-3)
    flat = cv2.GaussianBlur(flat, (0, 0), 0.005 * max(h, w) + 0.5)
    t = filters.threshold_otsu(flat[usable])
    lesion = (flat < t) & usable
    r = max(1, round(0.01 * max(h, w)))
    lesion = cv2.morphologyEx(lesion.astype(np.uint8), cv2.MORPH_OPEN, disk(r))
    lesion = cv2.morphologyEx(lesion, cv2.MORPH_CLOSE, disk(2 * r)) > 0
    lab, n = ndi.label(lesion)
    fallback = True
    if n:
        areas = np.bincount(lab.ravel())[1:]
        yy, xx = np.mgrid[0:h, 0:w]
        dist = np.hypot(xx - (w - 1) / 2, yy - (h - 1) / 2)
        candidates = [i + 1 for i in range(n) if areas[i] >= MIN_AREA * h * w]
        if candidates:
            best = min(candidates, key=lambda i: (float(dist[lab == i].min()), -areas[i - 1]))
            lesion = ndi.binary_fill_holes(lab == best)
            fallback = False
    fallbacks: set[str] = set()
    if fallback:
        notes.append("skin: no lesion-like dark region found; using a centred ellipse over the middle half.")
        lesion = ellipse_mask((h, w), (w - 1) / 2, (h - 1) / 2, w / 4, h / 4)
        fallbacks.add("lesion")
    return Analysis(parts={"lesion": upsample_mask(lesion, size)}, notes=notes, fallbacks=fallbacks)
