"""Transitions without a SEINE model: optical-flow morphing and a cross-dissolve.

Both return ``frames`` images from ``start`` to ``end`` (float32 ``[H,W,3]`` in 0..1); the first and last
are the keyframes themselves, bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np

FALLBACK_METHODS = ("optical_flow", "crossfade")


def crossfade(start: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    """Linear blend ``(1−t)·start + t·end`` at ``t = i/(frames−1)``."""
    t = np.linspace(0.0, 1.0, frames, dtype=np.float32)[:, None, None, None]
    out = (1.0 - t) * start[None] + t * end[None]
    out[0], out[-1] = start, end
    return out.astype(np.float32)


def _gray_u8(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def dense_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """DIS optical flow ``[H,W,2]`` (dx, dy): the pixel at ``p`` in ``source`` moves to ``p + flow(p)`` in ``target``."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray_u8(source), _gray_u8(target), None)


def _warp(image: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Backward warp: output(p) = image(p + displacement(p)), bilinear, borders replicated."""
    h, w = image.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x + displacement[..., 0], grid_y + displacement[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def optical_flow_morph(start: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    """Flow-based morph: at time t, ``start`` pushed t of the way along its flow to ``end`` and ``end`` pulled
    back (1−t) along its flow to ``start``, blended ``(1−t)·warped_start + t·warped_end``.

    Flow is DIS (OpenCV), computed in both directions on the luminance; the warps approximate the moving
    point's flow by the flow at the output pixel, which is fine for the smooth changes between disease stages.
    """
    forward, backward = dense_flow(start, end), dense_flow(end, start)
    out = np.empty((frames, *start.shape), np.float32)
    out[0], out[-1] = start, end
    for i in range(1, frames - 1):
        t = i / (frames - 1)
        warped_start = _warp(start, -t * forward)
        warped_end = _warp(end, -(1.0 - t) * backward)
        out[i] = np.clip((1.0 - t) * warped_start + t * warped_end, 0.0, 1.0)
    return out


def interpolate(start: np.ndarray, end: np.ndarray, frames: int, method: str) -> np.ndarray:
    """``frames`` images from ``start`` to ``end`` by ``method`` (one of :data:`FALLBACK_METHODS`)."""
    return optical_flow_morph(start, end, frames) if method == "optical_flow" else crossfade(start, end, frames)
