"""Change inside the ROI: the mean absolute change per frame against the original, and how monotonic it is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import finite_list, spearman


@dataclass
class InsideChange:
    mean_abs_change: list[float | None]
    rho: float | None  # Spearman's ρ against the frame index
    pixels: int

    def to_dict(self) -> dict:
        return {"mean_abs_change": self.mean_abs_change, "spearman_rho": self.rho, "pixels": self.pixels}


def inside_change(frames: np.ndarray, original: np.ndarray, mask: np.ndarray) -> InsideChange:
    """Mean |frame − original| over ``mask ≥ 0.5`` (the ROI's core; all channels) per frame, and its Spearman ρ
    against frame order."""
    inside = mask >= 0.5
    n = int(inside.sum())
    if n == 0:
        values = np.full(len(frames), np.nan)
    else:
        values = np.array([float(np.abs(f - original)[inside].mean()) for f in frames])
    return InsideChange(finite_list(values), spearman(values) if n else None, n)
