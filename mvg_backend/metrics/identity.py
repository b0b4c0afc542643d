"""Identity outside the ROI: SSIM, PSNR and the largest absolute change between each frame and the original,
over the pixels the mask leaves alone (mask 0; a feathered edge counts as inside)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import finite_list, outside_roi

PSNR_CAP = 100.0
"""PSNR (dB) reported for identical regions (MSE 0), instead of infinity."""


@dataclass
class OutsideIdentity:
    ssim: list[float | None]
    psnr: list[float | None]
    max_abs_change: list[float | None]
    mean_abs_change: list[float | None]
    pixels: int

    def to_dict(self) -> dict:
        return {"ssim": self.ssim, "psnr_db": self.psnr, "max_abs_change": self.max_abs_change,
                "mean_abs_change": self.mean_abs_change, "pixels": self.pixels}


def outside_identity(frames: np.ndarray, original: np.ndarray, mask: np.ndarray) -> OutsideIdentity:
    """Per frame, against ``original`` where the mask is 0 (:func:`outside_roi`): SSIM (mean of SSIM's local map
    over the pixels whose 7x7 window lies wholly outside the ROI, data range 1), PSNR in dB (capped at
    :data:`PSNR_CAP`) and the max/mean absolute change (0..1 units)."""
    from skimage.metrics import structural_similarity

    outside = outside_roi(mask)
    n = int(outside.sum())
    win = min(7, *original.shape[:2])
    win -= 1 - win % 2  # odd
    # SSIM's windows must lie wholly outside the ROI, or a change inside leaks into the score
    from scipy.ndimage import binary_erosion

    core = binary_erosion(outside, np.ones((win, win), bool), border_value=1) if win >= 3 else outside
    if not core.any():
        core = outside
    ssim, psnr, peak, mean = [], [], [], []
    for frame in frames:
        if n == 0:
            ssim.append(np.nan), psnr.append(np.nan), peak.append(np.nan), mean.append(np.nan)
            continue
        diff = np.abs(frame - original)[outside]
        peak.append(float(diff.max()))
        mean.append(float(diff.mean()))
        mse = float((diff.astype(np.float64) ** 2).mean())
        psnr.append(PSNR_CAP if mse == 0 else min(PSNR_CAP, 10.0 * np.log10(1.0 / mse)))
        if win >= 3:
            _, smap = structural_similarity(original, frame, data_range=1.0, channel_axis=-1, full=True, win_size=win)
            ssim.append(float(smap.mean(axis=-1)[core].mean()))
        else:
            ssim.append(np.nan)
    return OutsideIdentity(finite_list(ssim), finite_list(psnr), finite_list(peak), finite_list(mean), n)
