"""Temporal smoothness: frame-to-frame differences, a flicker score (second differences) and its spikes.

A frame that jumps away and back (flicker) makes the second difference ``|f[t+1] − 2 f[t] + f[t−1]|`` peak at
``t``, while a steady change (a ramp) leaves it near zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .common import finite_list

SPIKE_FACTOR = 4.0
"""A flicker value is a spike when it exceeds this multiple of the run's median flicker …"""
SPIKE_FLOOR = 2.0 / 255.0
"""… and this absolute floor (mean absolute second difference, 0..1 units)."""


@dataclass
class Smoothness:
    step_change: list[float | None]  # index t: mean |f[t] − f[t−1]|; t = 0 is None
    flicker: list[float | None]  # index t: mean |f[t+1] − 2 f[t] + f[t−1]|; first and last are None
    spikes: list[dict] = field(default_factory=list)  # {"frame", "flicker", "threshold"}
    threshold: float | None = None

    def to_dict(self) -> dict:
        return {"step_change": self.step_change, "flicker": self.flicker, "spikes": self.spikes,
                "spike_threshold": self.threshold}


def smoothness(frames: np.ndarray, *, spike_factor: float = SPIKE_FACTOR,
               spike_floor: float = SPIKE_FLOOR) -> Smoothness:
    """Per-frame step change and flicker; a spike is a local maximum of flicker above
    ``max(spike_floor, spike_factor × median flicker)``. Each spike names the frame where it occurs."""
    t = len(frames)
    step = np.full(t, np.nan)
    flick = np.full(t, np.nan)
    f = frames.astype(np.float32)
    for i in range(1, t):
        step[i] = float(np.abs(f[i] - f[i - 1]).mean())
    for i in range(1, t - 1):
        flick[i] = float(np.abs(f[i + 1] - 2.0 * f[i] + f[i - 1]).mean())
    spikes: list[dict] = []
    threshold = None
    valid = flick[1:-1]
    if valid.size:
        threshold = float(max(spike_floor, spike_factor * float(np.median(valid))))
        for i in range(1, t - 1):
            v = flick[i]
            left = flick[i - 1] if i - 1 >= 1 else -np.inf
            right = flick[i + 1] if i + 1 <= t - 2 else -np.inf
            if v > threshold and v >= left and v > right:
                spikes.append({"frame": i, "flicker": float(v), "threshold": threshold})
    return Smoothness(finite_list(step), finite_list(flick), spikes, threshold)
