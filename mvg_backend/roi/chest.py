"""Lung fields on a frontal (PA/AP) chest X-ray, by marker-controlled watershed (no learned weights).

Radiological convention: the patient's right lung is on the image's left. All sizes are fractions of
the working image (longest side ``WORK`` px), so any input size behaves the same.

1. Uniform borders (padding, flat collimation bands) are trimmed, so the priors below refer to the
   radiograph itself.
2. Normalise (1st..99th percentile) and fix polarity: lungs hold air, so in a normal display they are
   darker than the mediastinum; if the two lung-field priors are brighter than the midline strip the
   image is inverted (MONOCHROME1-style export) and gets flipped.
3. CLAHE equalises washed-out or low-contrast exports.
4. Seeds: Otsu splits the torso into dark (air) and bright; the dark part, eroded so that thin bridges
   to the outside air break, and lying inside a generous per-side envelope, seeds each lung. Background
   seeds: bright tissue, the midline (spine/mediastinum, found as the brightest central column), the top
   and bottom bands (neck, abdomen) and a small disc where the heart always is (the patient's left of
   the midline, low). The sides are left free, so lungs that touch a tightly cropped edge still grow.
5. Watershed on the gradient puts each lung's edge on the strongest edge between seeds (ribcage,
   diaphragm, heart border). Per side: largest piece, holes filled, and the lateral concavities filled up
   to the convex hull (the costophrenic angle stays; the heart's concavity is medial and is kept out).
6. A side with no lung-like region (no seed, or an implausible area) falls back to its prior ellipse; so do
   both sides of an image with almost no contrast (nothing to segment: a blank or failed export).

An image more than 4 times as long as it is wide (or the reverse), or under 32 px, stops with an error
(:func:`.prep.check_analysable`: a strip is too thin for the seeds and the watershed).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage import filters, morphology, segmentation

from .prep import (MAX_ASPECT, check_analysable, clahe, content_box, disk, ellipse_mask, normalise, resize_longest,
                   to_gray, upsample_mask)
from .types import Analysis

WORK = 256
# anatomical priors, as fractions of the image (x from the image's left, y from the top)
PRIOR_CX, PRIOR_CY, PRIOR_AX, PRIOR_AY = 0.30, 0.45, 0.13, 0.27  # right lung (image left); mirrored
ENVELOPE_AX, ENVELOPE_AY, ENVELOPE_CY = 0.17, 0.38, 0.48  # where seeds may lie (apex to bases)
HEART = (0.10, 0.70, 0.04, 0.08)  # offset from the midline (patient's left), y, semi-axes
SEED_EROSION = 0.02  # seeds: dark region eroded by 2% of the width
BORDER_BAND = 0.03
BRIGHT_QUANTILE = 0.6  # of the non-dark torso: sure background
SIDE_AREA = (0.02, 0.35)  # plausible area of one lung, fraction of the image
MIN_BOX = 0.25  # trimmed content narrower than this fraction of the image (either side): trimming is not trusted
MIN_CONTRAST = 0.02  # 1st..99th percentile range (0..1 scale) below this: nothing to segment


def _polarity(g: np.ndarray) -> tuple[np.ndarray, bool]:
    h, w = g.shape
    prior = ellipse_mask(g.shape, PRIOR_CX * w, PRIOR_CY * h, PRIOR_AX * w, PRIOR_AY * h)
    prior |= ellipse_mask(g.shape, (1 - PRIOR_CX) * w, PRIOR_CY * h, PRIOR_AX * w, PRIOR_AY * h)
    strip = np.zeros_like(prior)
    strip[int(0.2 * h) : int(0.8 * h), int(0.46 * w) : int(0.54 * w) + 1] = True
    inverted = bool(g[prior].mean() > g[strip].mean())
    return (1.0 - g if inverted else g), inverted


def _midline(c: np.ndarray) -> int:
    """The brightest column (spine and mediastinum) within the central 30% of the width."""
    h, w = c.shape
    profile = c[int(0.2 * h) : int(0.7 * h)].mean(axis=0)
    x0, x1 = int(0.35 * w), int(0.65 * w)
    return x0 + int(np.argmax(profile[x0:x1]))


def _lateral_hull(side: np.ndarray, lateral_is_left: bool) -> np.ndarray:
    """Fill each row from the convex hull's lateral edge to the region (lateral concavities only)."""
    hull = morphology.convex_hull_image(side)
    out = side.copy()
    for y in np.flatnonzero(side.any(axis=1)):
        xs = np.flatnonzero(side[y])
        hs = np.flatnonzero(hull[y])
        if lateral_is_left:
            out[y, hs[0] : xs[0] + 1] = True
        else:
            out[y, xs[-1] : hs[-1] + 1] = True
    return out


def _prior(shape: tuple[int, int], right_lung: bool) -> np.ndarray:
    h, w = shape
    cx = PRIOR_CX if right_lung else 1 - PRIOR_CX
    return ellipse_mask(shape, cx * w, PRIOR_CY * h, PRIOR_AX * w, PRIOR_AY * h)


def _priors(shape: tuple[int, int], notes: list[str]) -> Analysis:
    parts = {name: _prior(shape, right_lung=(name == "right_lung")).astype(np.float32)
             for name in ("right_lung", "left_lung")}
    parts["lungs"] = np.maximum(parts["right_lung"], parts["left_lung"])
    return Analysis(parts=parts, notes=notes, fallbacks={"right_lung", "left_lung", "lungs"})


def lung_fields(rgb: np.ndarray) -> Analysis:
    """Right and left lung fields (``right_lung``, ``left_lung``, ``lungs``) at the input size."""
    check_analysable(rgb, "chest_xray")  # a strip has too few rows for the seeds (an IndexError in scikit-image)
    gray = to_gray(rgb)
    h0, w0 = gray.shape
    rows, cols = content_box(gray)
    notes: list[str] = []
    box = (rows.stop - rows.start, cols.stop - cols.start)
    if box[0] < MIN_BOX * h0 or box[1] < MIN_BOX * w0 or max(box) > MAX_ASPECT * min(box):
        notes.append(f"chest: the varying part of the image is only {box[1]}x{box[0]} px of {w0}x{h0}; too small or "
                     "thin to be the radiograph, so the whole image is searched.")
        rows, cols, box = slice(0, h0), slice(0, w0), (h0, w0)
    elif box != gray.shape:
        notes.append(f"chest: uniform borders trimmed; lungs searched in rows {rows.start}..{rows.stop - 1}, "
                     f"columns {cols.start}..{cols.stop - 1}.")
    size = box
    lo, hi = np.percentile(gray[rows, cols], [1, 99])
    if hi - lo < MIN_CONTRAST:
        notes.append(f"chest: the image has almost no contrast (1st..99th percentile range {hi - lo:.3f}), so there "
                     "are no lung fields to find; using the anatomical prior ellipses. Check the image (a blank or "
                     "failed export?).")
        return _priors(gray.shape, notes)
    g = resize_longest(gray[rows, cols], WORK)
    h, w = g.shape
    g, inverted = _polarity(normalise(g))
    if inverted:
        notes.append("chest: inverted polarity (MONOCHROME1-style, lungs bright) detected and corrected.")
    c = cv2.GaussianBlur(clahe(g), (0, 0), 1.5 * max(h, w) / WORK)

    markers = _markers(c)
    gradient = filters.sobel(cv2.GaussianBlur(c, (0, 0), 1.0))
    labels = segmentation.watershed(gradient, markers)

    parts: dict[str, np.ndarray] = {}
    fallbacks: set[str] = set()
    for label, name in ((2, "right_lung"), (3, "left_lung")):
        side = labels == label
        if side.any():
            lab, _ = ndi.label(side)
            side = lab == np.argmax(np.bincount(lab[lab > 0])[1:]) + 1
            side = _lateral_hull(ndi.binary_fill_holes(side), lateral_is_left=(name == "right_lung"))
            side = ndi.binary_fill_holes(side)  # the lateral fill can close a bay into a hole
        area = side.mean()
        if not SIDE_AREA[0] <= area <= SIDE_AREA[1]:
            why = "no lung-like dark region" if area < SIDE_AREA[0] else f"an implausibly large region ({area:.0%})"
            notes.append(f"chest: {name.replace('_', ' ')}: found {why}; using the anatomical prior ellipse instead.")
            side = _prior((h, w), right_lung=(name == "right_lung"))
            fallbacks.add(name)
        parts[name] = np.zeros(gray.shape, np.float32)
        parts[name][rows, cols] = upsample_mask(side, size)
    parts["lungs"] = np.maximum(parts["right_lung"], parts["left_lung"])
    if fallbacks:
        fallbacks.add("lungs")
    return Analysis(parts=parts, notes=notes, fallbacks=fallbacks)


def _markers(c: np.ndarray) -> np.ndarray:
    """Watershed seeds: 1 = background, 2 = right lung, 3 = left lung, 0 = to be decided."""
    h, w = c.shape
    yy, xx = np.mgrid[0:h, 0:w]
    torso = (xx > 0.1 * w) & (xx < 0.9 * w) & (yy > 0.05 * h) & (yy < 0.9 * h)
    dark = c < filters.threshold_otsu(c[torso])
    mid = _midline(c)
    markers = np.zeros((h, w), np.int32)
    bright = c[torso & ~dark]
    markers[c > (np.quantile(bright, BRIGHT_QUANTILE) if bright.size else c.max())] = 1
    k = max(1, round(0.01 * w))
    markers[:, mid - k : mid + k + 1] = 1
    hx, hy, hax, hay = HEART
    markers[ellipse_mask((h, w), mid + hx * w, hy * h, hax * w, hay * h)] = 1
    b = max(1, round(BORDER_BAND * w))
    markers[:b] = 1
    markers[-b:] = 1
    seeds = cv2.erode(dark.astype(np.uint8), disk(max(1, round(SEED_EROSION * w)))) > 0
    centres = {"right_lung": 0.6 * mid, "left_lung": mid + 0.4 * (w - mid)}
    for label, name in ((2, "right_lung"), (3, "left_lung")):
        env = ellipse_mask((h, w), centres[name], ENVELOPE_CY * h, ENVELOPE_AX * w, ENVELOPE_AY * h)
        markers[seeds & env & (markers == 0)] = label
    return markers

