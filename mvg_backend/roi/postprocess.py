"""Mask post-processing in pixels of the input: fill holes, keep the largest N, dilate/erode, feather."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..errors import MVGInputError
from .prep import disk, largest_components


def feather_edge(hard: np.ndarray, width: float) -> np.ndarray:
    """Soft edge: the value ramps linearly from 0 to 1 over ``width`` px centred on the hard edge.

    A pixel ``d`` px inside the edge gets ``0.5 + d / width`` (clipped), one outside ``0.5 - d / width``;
    distances are measured from pixel centres to the nearest pixel of the other side, minus half a pixel.
    """
    inside = hard.astype(np.uint8)
    if width <= 0 or inside.all() or not inside.any():
        return inside.astype(np.float32)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - 0.5
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - 0.5
    signed = np.where(inside > 0, d_in, -d_out)
    return np.clip(0.5 + signed / float(width), 0.0, 1.0).astype(np.float32)


KERNEL_RADIUS = 32
"""Up to this radius dilate/erode use OpenCV's elliptical kernel; beyond it a Euclidean distance transform,
whose cost does not grow with the radius (a 256 px kernel on a 1024² image takes 2 s; the transform 15 ms)."""


def grow(hard: np.ndarray, radius: int) -> np.ndarray:
    """Dilate (``radius`` > 0) or erode (< 0) a bool mask by a disk of ``|radius|`` px. The image border does not
    erode the mask."""
    r = abs(int(radius))
    if r == 0:
        return hard
    inside = hard.astype(np.uint8)
    if r <= KERNEL_RADIUS:
        # OpenCV pads with "inside" for erosion: the image border itself does not erode the mask
        return (cv2.dilate(inside, disk(r)) if radius > 0 else cv2.erode(inside, disk(r))) > 0
    if radius > 0:
        return cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= r
    if inside.all():  # no background pixel: nothing erodes it (as with the kernel)
        return hard
    return cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > r


def cap_dilate(dilate: int, shape: tuple[int, int], warnings: list[str] | None) -> int:
    """``dilate`` limited to the image's diagonal (a larger disk changes nothing more), with a warning."""
    limit = int(np.ceil(np.hypot(*shape)))
    if abs(dilate) <= limit:
        return int(dilate)
    if warnings is not None:
        warnings.append(f"dilate={dilate} px is more than the image's diagonal ({limit} px); capped to "
                        f"{int(np.sign(dilate)) * limit} (the result is the same).")
    return int(np.sign(dilate)) * limit


def cap_feather(hard: np.ndarray, feather: float, warnings: list[str] | None) -> float:
    """``feather`` limited so that the mask keeps a fully editable core.

    The ramp reaches 1 at ``feather / 2`` px inside the edge, so a feather wider than the mask's thickest part
    would leave every pixel partly editable (and a mask of 0.3..0.5 edits almost nothing). It is capped at the
    mask's largest inside distance (half its thickest width): the deeper half of the mask stays fully editable.
    """
    inside = hard.astype(np.uint8)
    if feather <= 0 or inside.all() or not inside.any():
        return feather
    depth = float(cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).max()) - 0.5
    limit = max(1.0, depth)
    if feather <= limit:
        return feather
    if warnings is not None:
        warnings.append(f"feather={feather:g} px is wider than the mask allows (its thickest part is about "
                        f"{2 * depth + 1:.0f} px across), so no pixel would stay fully editable; capped to {limit:.0f} px.")
    return limit


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and bool(np.isfinite(value))


def postprocess(mask: np.ndarray, *, dilate: int = 0, feather: float = 0.0, fill_holes: bool = False,
                keep_largest: int = 0, warnings: list[str] | None = None) -> np.ndarray:
    """Apply, in this order: fill holes, keep the ``keep_largest`` largest components (0 = all),
    dilate (``dilate`` > 0) or erode (< 0) by that many pixels (disk), then feather the edge.

    Without any of these the mask is returned unchanged (a soft user mask stays soft). Otherwise the
    mask is first cut at 0.5. ``dilate`` is capped at the image's diagonal and ``feather`` at what keeps a
    fully editable core (see :func:`cap_feather`); each cap appends a sentence to ``warnings`` if given.
    """
    for name, value in (("dilate", dilate), ("feather", feather), ("keep_largest", keep_largest)):
        if not _is_number(value):
            raise MVGInputError(f"{name}={value!r}: use a number of pixels.")
    dilate, keep_largest = int(round(dilate)), int(keep_largest)
    if keep_largest < 0:
        raise MVGInputError(f"keep_largest={keep_largest}: use 0 (keep all components) or a positive count.")
    if feather < 0:
        raise MVGInputError(f"feather={feather}: use 0 (hard edge) or a width in pixels.")
    if not (dilate or feather or fill_holes or keep_largest):
        return mask.astype(np.float32)
    hard = mask >= 0.5
    if fill_holes:
        hard = ndi.binary_fill_holes(hard)
    if keep_largest:
        hard = largest_components(hard, keep_largest)
    hard = grow(hard, cap_dilate(dilate, hard.shape, warnings))
    if feather > 0:
        return feather_edge(hard, cap_feather(hard, float(feather), warnings))
    return hard.astype(np.float32)
