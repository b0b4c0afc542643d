"""Fundus photographs: field of view, optic disc, macula and "retina without disc" (no learned weights).

Sizes scale with the field of view (FOV): the optic disc is about 1/7 of a 45° FOV's diameter (1/5 on
narrower films), so every kernel is a fraction of the FOV diameter.

- FOV: Otsu on the brightest channel separates the retina from the black surround; the largest region,
  holes filled. An image without a dark surround (a crop) is all FOV.
- Optic disc: the brightest blob. Vessels are removed by a morphological closing, the image is blurred
  at the disc's scale, and the maximum inside the eroded FOV is the disc centre. Its rim: on 72 rays from
  the centre, the strongest bright-to-dark step of the vessel-free red channel (where the rim shows best);
  outliers are dropped and an ellipse is fitted, then refitted once from the new centre. An implausible
  outline (size or elongation) falls back to a circle of the expected diameter at the found centre.
- Macula: the spot darkest relative to its surroundings (difference of Gaussians) about 1–3.5 disc
  diameters temporal to the disc, slightly below it. The eye
  decides "temporal": the disc lies nasally, so for a disc right of the FOV centre (a right eye) the
  macula is to its left. ``eye="left"/"right"`` overrides; a centred disc searches both sides.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage import filters

from .prep import disk, ellipse_mask, largest_components, resize_longest, upsample_mask
from .types import Analysis

WORK = 512
DISC_FRACTION = 0.16  # expected disc diameter / FOV diameter
DISC_RANGE = (0.08, 0.32)  # plausible disc diameter / FOV diameter
MIN_FOV = 0.1  # a field of view smaller than this fraction of the image is implausible (a bright speck)
MIN_CONTRAST = 0.02  # 1st..99th percentile range of the luminance (0..1) below this: nothing can be found
MACULA_DISTANCE = 2.25  # disc diameters from the disc centre
MACULA_RADIUS = 1.0  # disc diameters (the macula region, about 2 DD across)
EYES = ("auto", "left", "right")


def field_of_view(rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(bool FOV mask, found_surround)`` at the given size."""
    v = cv2.medianBlur((rgb.max(axis=2) * 255).astype(np.uint8), 5).astype(np.float32) / 255.0
    t = filters.threshold_otsu(v)
    inside, outside = v[v > t], v[v <= t]
    border = np.concatenate([v[0], v[-1], v[:, 0], v[:, -1]])
    if inside.size == 0 or outside.size == 0 or outside.mean() > 0.25 * inside.mean() or (border <= t).mean() < 0.2:
        return np.ones(v.shape, bool), False
    fov = largest_components(v > t)
    r = max(1, round(0.01 * max(v.shape)))
    fov = cv2.morphologyEx(fov.astype(np.uint8), cv2.MORPH_OPEN, disk(r)) > 0
    return ndi.binary_fill_holes(largest_components(fov)), True


def _fov_geometry(fov: np.ndarray) -> tuple[float, float, float]:
    """Centre and diameter of the FOV (diameter = the wider of its width and height)."""
    ys, xs = np.nonzero(fov)
    diameter = float(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
    return float((xs.min() + xs.max()) / 2), float((ys.min() + ys.max()) / 2), diameter


def _vessel_free(channel: np.ndarray, fov: np.ndarray, d_exp: float) -> np.ndarray:
    """Close out the (dark) vessels; fill outside the FOV with the FOV's median to avoid a rim edge."""
    filled = np.where(fov, channel, np.median(channel[fov])).astype(np.float32)
    return cv2.morphologyEx(filled, cv2.MORPH_CLOSE, disk(max(1, round(d_exp / 8))))


RAYS = 72
RADII = (0.25, 1.0)  # rim search range, in expected disc diameters


def _radial_outline(channel: np.ndarray, cx: float, cy: float, d_exp: float) -> tuple | None:
    """The disc rim: on rays from the centre, the strongest bright-to-dark step; ellipse fit to the inliers."""
    smooth = cv2.GaussianBlur(channel, (0, 0), max(1.0, d_exp / 25))
    radii = np.linspace(RADII[0] * d_exp, RADII[1] * d_exp, 48)
    angles = np.linspace(0, 2 * np.pi, RAYS, endpoint=False)
    xs = cx + np.cos(angles)[:, None] * radii[None]
    ys = cy + np.sin(angles)[:, None] * radii[None]
    profiles = ndi.map_coordinates(smooth, [ys, xs], order=1, mode="nearest")
    step = np.diff(profiles, axis=1)
    edge = np.argmin(step, axis=1)
    r = radii[edge] + (radii[1] - radii[0]) / 2
    r_med = ndi.median_filter(r, size=9, mode="wrap")
    keep = np.abs(r - r_med) < 0.15 * np.median(r)
    if keep.sum() < RAYS // 3:
        return None
    points = np.stack([cx + np.cos(angles[keep]) * r[keep], cy + np.sin(angles[keep]) * r[keep]], axis=1)
    (ex, ey), (a, b), angle = cv2.fitEllipse(points.astype(np.float32))
    fov_d = d_exp / DISC_FRACTION
    if not (DISC_RANGE[0] * fov_d <= min(a, b) and max(a, b) <= DISC_RANGE[1] * fov_d and max(a, b) < 1.6 * min(a, b)):
        return None
    return (ex, ey), (a, b), angle


def _disc(rgb: np.ndarray, fov: np.ndarray, d_exp: float) -> tuple[float, float, np.ndarray | None, float]:
    """Disc centre ``(x, y)``, its mask (None if the outline was implausible) and the peak contrast."""
    lum = _vessel_free(rgb[..., :2].mean(axis=2), fov, d_exp)
    blurred = cv2.GaussianBlur(lum, (0, 0), d_exp / 4)
    inner = cv2.erode(fov.astype(np.uint8), disk(round(d_exp / 3))) > 0
    if not inner.any():
        inner = fov
    score = np.where(inner, blurred, -np.inf)
    cy, cx = np.unravel_index(int(np.argmax(score)), score.shape)
    contrast = float((blurred[cy, cx] - np.median(blurred[fov])) / (np.std(blurred[fov]) + 1e-6))
    red = _vessel_free(rgb[..., 0], fov, d_exp)
    outline = _radial_outline(red, cx, cy, d_exp)
    if outline is not None:  # once more from the fitted centre: rays from the true centre meet the rim squarely
        outline = _radial_outline(red, outline[0][0], outline[0][1], d_exp)
    if outline is None:
        return float(cx), float(cy), None, contrast
    (ex, ey), (a, b), angle = outline
    mask = np.zeros(fov.shape, np.uint8)
    cv2.ellipse(mask, ((ex, ey), (a, b), angle), 1, thickness=-1)
    return float(ex), float(ey), mask > 0, contrast


def _masked_blur(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur that averages over ``mask`` only (normalised convolution)."""
    weight = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    return cv2.GaussianBlur(values * mask, (0, 0), sigma) / np.maximum(weight, 1e-6)


def _macula(rgb: np.ndarray, fov: np.ndarray, disc_x: float, disc_y: float, d: float, eye: str,
            fov_cx: float, fov_d: float, search: bool = True) -> tuple[float, float, str, bool]:
    """Macula centre ``(x, y)``, the eye used, and whether a dark spot was found (else geometric; always
    geometric without ``search``)."""
    if eye == "auto":
        offset = (disc_x - fov_cx) / fov_d
        eye = "right" if offset > 0.05 else "left" if offset < -0.05 else "auto"
    directions = {"right": [-1.0], "left": [1.0], "auto": [-1.0, 1.0]}[eye]
    if not search:
        return disc_x + directions[0] * MACULA_DISTANCE * d, disc_y + 0.25 * d, eye, False
    green = _vessel_free(rgb[..., 1], fov, d)
    # darkness relative to the surroundings (difference of Gaussians), so uneven illumination cancels
    local = _masked_blur(green, fov, d / 3) - _masked_blur(green, fov, 1.5 * d)
    inner = cv2.erode(fov.astype(np.uint8), disk(round(d / 3))) > 0
    spread = float(np.std(local[inner])) if inner.any() else 0.0
    best: tuple[float, float, float, float] | None = None
    for sign in directions:
        ex, ey = disc_x + sign * MACULA_DISTANCE * d, disc_y + 0.25 * d
        window = ellipse_mask(fov.shape, ex, ey, 1.25 * d, 0.75 * d) & inner
        if not window.any():
            continue
        values = np.where(window, local, np.inf)
        my, mx = np.unravel_index(int(np.argmin(values)), values.shape)
        depth = -float(local[my, mx])
        if best is None or depth > best[2]:
            best = (float(mx), float(my), depth, sign)
    if best is None or best[2] < 0.5 * spread or best[2] <= 0:
        sign = directions[0] if best is None else best[3]
        return disc_x + sign * MACULA_DISTANCE * d, disc_y + 0.25 * d, eye, False
    eye = eye if eye != "auto" else ("right" if best[3] < 0 else "left")
    return best[0], best[1], eye, True


def analyse_fundus(rgb: np.ndarray, eye: str = "auto") -> Analysis:
    """``fov``, ``optic_disc``, ``macula`` and ``retina`` masks at the input size, plus landmarks."""
    size = rgb.shape[:2]
    small = resize_longest(rgb, WORK)
    scale = size[1] / small.shape[1]
    notes: list[str] = []
    fallbacks: set[str] = set()
    lo, hi = np.percentile(small.mean(axis=2), [1, 99])
    blank = hi - lo < MIN_CONTRAST
    fov, surround = field_of_view(small)
    if blank:
        notes.append(f"fundus: the image has almost no contrast (1st..99th percentile range {hi - lo:.3f}), so nothing "
                     "can be found: the field of view is the whole image, the disc a circle of the expected size at "
                     "the brightest spot, the macula placed from it. Check the image (a blank or failed export?).")
        fov = np.ones(fov.shape, bool)
        fallbacks |= {"fov", "retina"}
    elif not surround:
        notes.append("fundus: no dark surround found; the field of view is the whole image.")
    elif fov.mean() < MIN_FOV:
        notes.append(f"fundus: the bright region is only {fov.mean():.1%} of the image, too small for a field of view "
                     "(a dark image with a bright speck?); using the whole image. Check the image.")
        fov = np.ones(fov.shape, bool)
        fallbacks |= {"fov", "retina"}
    fov_cx, fov_cy, fov_d = _fov_geometry(fov)
    d_exp = DISC_FRACTION * fov_d
    disc_x, disc_y, disc, contrast = _disc(small, fov, d_exp)
    if contrast < 1.5 and not blank:
        notes.append(f"fundus: the optic disc is faint (contrast {contrast:.1f} SD); check its position in the overlay.")
    if blank:
        disc = None
    elif disc is None:
        notes.append("fundus: the optic disc outline was implausible; using a circle of the expected size at the "
                     "brightest spot.")
    if disc is None:
        disc = ellipse_mask(fov.shape, disc_x, disc_y, d_exp / 2, d_exp / 2)
        fallbacks.add("optic_disc")
    ys, xs = np.nonzero(disc)
    d = float(max(xs.max() - xs.min(), ys.max() - ys.min()) + 1)
    mac_x, mac_y, eye_used, found = _macula(small, fov, disc_x, disc_y, d, eye, fov_cx, fov_d, search=not blank)
    if not found:
        notes.append(f"fundus: no dark macula found; placed {MACULA_DISTANCE} disc diameters temporal to the disc.")
        fallbacks.add("macula")
    macula = ellipse_mask(fov.shape, mac_x, mac_y, MACULA_RADIUS * d, MACULA_RADIUS * d) & fov
    if not macula.any():
        notes.append("fundus: the macula lies outside the field of view.")
    retina = fov & ~(cv2.dilate(disc.astype(np.uint8), disk(max(1, round(0.1 * d)))) > 0)
    parts = {name: upsample_mask(m, size) for name, m in
             (("fov", fov), ("optic_disc", disc), ("macula", macula), ("retina", retina))}
    landmarks = {"disc_x": disc_x * scale, "disc_y": disc_y * scale, "disc_d": d * scale,
                 "macula_x": mac_x * scale, "macula_y": mac_y * scale, "fov_d": fov_d * scale,
                 "eye_right": float(eye_used == "right")}
    notes.append(f"fundus: disc at ({disc_x * scale:.0f}, {disc_y * scale:.0f}) px, diameter {d * scale:.0f} px; "
                 f"macula at ({mac_x * scale:.0f}, {mac_y * scale:.0f}) px; eye: {eye_used}.")
    return Analysis(parts=parts, landmarks=landmarks, notes=notes, fallbacks=fallbacks)
