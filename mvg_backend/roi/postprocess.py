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


def postprocess(mask: np.ndarray, *, dilate: int = 0, feather: float = 0.0, fill_holes: bool = False,
                keep_largest: int = 0) -> np.ndarray:
    """Apply, in this order: fill holes, keep the ``keep_largest`` largest components (0 = all),
    dilate (``dilate`` > 0) or erode (< 0) by that many pixels (disk), then feather the edge.

    Without any of these the mask is returned unchanged (a soft user mask stays soft). Otherwise the
    mask is first cut at 0.5.
    """
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
    if dilate > 0:
        hard = cv2.dilate(hard.astype(np.uint8), disk(dilate)) > 0
    elif dilate < 0:  # OpenCV pads with "inside": the image border itself does not erode the mask
        hard = cv2.erode(hard.astype(np.uint8), disk(-dilate)) > 0
    return feather_edge(hard, feather) if feather > 0 else hard.astype(np.float32)
