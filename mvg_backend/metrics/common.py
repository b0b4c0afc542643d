"""Shared helpers of the metrics: frames and masks as float arrays, masked means, Spearman's ρ."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import MVGInputError
from ..io.images import _to_numpy, _to_unit_float


OUTSIDE_MAX = 0.5 / 255.0
"""A pixel is outside the ROI where the mask is below half an 8-bit level: PIE leaves exactly those pixels
alone (a feathered edge, 0 < mask < 1, may change in proportion to the mask)."""


def outside_roi(mask: np.ndarray) -> np.ndarray:
    """Boolean map of the pixels outside the ROI (mask ≤ :data:`OUTSIDE_MAX`)."""
    return mask <= OUTSIDE_MAX


def as_frames(frames: Any, name: str = "frames") -> np.ndarray:
    """float32 ``[T,H,W,3]`` in 0..1 from a batch ``[T,H,W,C]`` (C = 1, 3 or 4), a list of images, or ``[T,H,W]``."""
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise MVGInputError(f"{name}: no frames.")
        frames = np.stack([as_image(f, f"{name}[{i}]") for i, f in enumerate(frames)])
    arr = _to_unit_float(_to_numpy(frames, name), name)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise MVGInputError(f"{name}: expected a batch [T,H,W,C] with C = 1, 3 or 4, got shape {arr.shape}.")
    return _rgb(arr)


def _rgb(arr: np.ndarray) -> np.ndarray:
    """float32 RGB from 1, 3 or 4 channels in the last axis: gray repeated, alpha dropped."""
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3], dtype=np.float32)


def as_image(image: Any, name: str = "image") -> np.ndarray:
    """float32 ``[H,W,3]`` in 0..1 from gray, RGB, RGBA or a batch of one."""
    arr = _to_unit_float(_to_numpy(image, name), name)
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise MVGInputError(f"{name}: expected one image, got a batch of {arr.shape[0]}.")
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise MVGInputError(f"{name}: expected an image [H,W,C], got shape {arr.shape}.")
    return _rgb(arr)


def as_region(mask: Any, size: tuple[int, int], name: str = "mask") -> np.ndarray:
    """float32 ``[H,W]`` in 0..1 at ``size`` (H, W); ``None`` gives an all-zero mask (no ROI)."""
    if mask is None:
        return np.zeros(size, np.float32)
    arr = _to_unit_float(_to_numpy(mask, name), name)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MVGInputError(f"{name}: expected one mask [H,W], got shape {arr.shape}.")
    if arr.shape != size:
        arr = cv2.resize(arr, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == size:
        return image
    interp = cv2.INTER_AREA if image.shape[0] > size[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (size[1], size[0]), interpolation=interp).astype(np.float32)


def spearman(values: Any) -> float | None:
    """Spearman's ρ of ``values`` against their index (0, 1, 2 …); ``None`` with < 3 values or constant values."""
    y = np.asarray(values, dtype=np.float64)
    if y.size < 3 or not np.isfinite(y).all() or np.ptp(y) == 0:
        return None
    from scipy.stats import spearmanr

    rho = spearmanr(np.arange(y.size), y).statistic
    return None if not np.isfinite(rho) else float(rho)


def finite_list(values: Any) -> list[float | None]:
    """Plain floats for JSON (``None`` for NaN)."""
    return [None if v is None or not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64)]
