"""Turn what users pass (arrays, tensors, PIL images; gray, RGBA, batches) into float arrays in 0..1."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import MVGInputError

MIN_SIDE = 8


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    elif hasattr(value, "getbands"):  # PIL.Image
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise MVGInputError(f"{name}: expected an array, tensor or PIL image, got {type(value).__name__}.")
    if value.dtype.kind not in "biuf":  # bool, signed/unsigned integer, float
        raise MVGInputError(
            f"{name}: data type {value.dtype} is not image data; pass numbers (uint8, uint16, or float in 0..1), "
            "e.g. np.asarray(image, dtype=np.float32)."
        )
    if value.size == 0:
        raise MVGInputError(f"{name} is empty (shape {value.shape}).")
    return value


def _to_unit_float(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.min < 0:
            raise MVGInputError(f"{name}: signed integer data ({arr.dtype}); convert it to uint8/uint16 or float 0..1.")
        return arr.astype(np.float32) / float(info.max)
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise MVGInputError(f"{name} contains NaN or infinite values; fix the upstream node or file.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise MVGInputError(
            f"{name}: float values must lie in 0..1, got {lo:.4g}..{hi:.4g}. "
            "Divide 8-bit data by 255 (16-bit by 65535) or normalise it first."
        )
    return np.clip(arr, 0.0, 1.0)


def as_rgb_image(image: Any, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """Return ``(float32 [H,W,3] in 0..1, notes)`` from gray, RGB, RGBA or a batch of one."""
    arr = _to_numpy(image, name)
    notes: list[str] = []
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise MVGInputError(
                f"{name}: got a batch of {arr.shape[0]} images; progressive editing takes one image. "
                "Pick one (e.g. ComfyUI's 'ImageFromBatch') and run once per image."
            )
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
        notes.append(f"{name}: channels-first layout moved to [H,W,C].")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise MVGInputError(f"{name}: expected [H,W], [H,W,C] or [1,H,W,C] with C in 1..4, got shape {tuple(arr.shape)}.")
    arr = _to_unit_float(arr, name)
    channels = arr.shape[-1]
    if channels in (2, 4):
        arr = arr[..., : channels - 1]
        notes.append(f"{name}: alpha channel dropped.")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
        notes.append(f"{name}: grayscale expanded to RGB.")
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise MVGInputError(f"{name} is {w}x{h} pixels; it must be at least {MIN_SIDE}x{MIN_SIDE}.")
    if float(arr.max() - arr.min()) == 0.0:
        notes.append(f"{name}: the image is constant (one value everywhere).")
    return np.ascontiguousarray(arr), notes


def as_mask(mask: Any, size: tuple[int, int], name: str = "mask") -> tuple[np.ndarray, list[str]]:
    """Return ``(float32 [H,W] in 0..1, notes)`` at ``size=(H, W)``, resizing (bilinear) if needed."""
    notes: list[str] = []
    if mask is None:
        notes.append(f"no {name} given: the whole image is editable.")
        return np.ones(size, np.float32), notes
    arr = _to_numpy(mask, name)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    elif arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        notes.append(f"{name}: multi-channel mask image; using its first channel.")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MVGInputError(
            f"{name}: expected [H,W] (or a batch of one), got shape {tuple(arr.shape)}. "
            "Pass one mask per image."
        )
    arr = _to_unit_float(arr, name)
    if arr.shape != tuple(size):
        notes.append(f"{name} {arr.shape[1]}x{arr.shape[0]} resized to the image size {size[1]}x{size[0]}.")
        arr = np.clip(cv2.resize(arr, (size[1], size[0]), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    return np.ascontiguousarray(arr, dtype=np.float32), notes


def pad_to_multiple(
    image: np.ndarray, mask: np.ndarray, multiple: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Edge-pad image and mask at the bottom/right to a multiple of ``multiple``; returns them and the pad.

    The mask is edge-replicated too, so a region that touches the border stays editable up to it."""
    h, w = mask.shape
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return image, mask, (0, 0)
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    mask = np.pad(mask, ((0, pad_h), (0, pad_w)), mode="edge")
    return image, mask, (pad_h, pad_w)
