"""Several trajectories of one case (different seeds): where they disagree, and how much each metric varies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .common import resize_image


@dataclass
class Spread:
    runs: int
    std_map: np.ndarray  # float32 [H,W]: per-pixel standard deviation (mean over channels) of the final frames
    metrics: dict[str, dict[str, float]]  # metric -> {"mean", "std", "min", "max"} over runs

    def to_dict(self) -> dict:
        return {"runs": self.runs, "final_frame_std": {"mean": float(self.std_map.mean()),
                                                        "max": float(self.std_map.max())},
                "metrics": self.metrics}


def final_frame_std(runs: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel standard deviation (over runs, mean over channels) of each run's final keyframe (its last frame)."""
    size = runs[0].shape[1:3]
    finals = np.stack([resize_image(r[-1], size) for r in runs]).astype(np.float64)
    return finals.std(axis=0).mean(axis=-1).astype(np.float32)


def metric_spread(summaries: Sequence[dict[str, float | None]]) -> dict[str, dict[str, float]]:
    """``{metric: {mean, std, min, max, n}}`` over runs, for every scalar a run summary holds."""
    out: dict[str, dict[str, float]] = {}
    keys = dict.fromkeys(k for s in summaries for k in s)
    for key in keys:
        vals = np.array([s[key] for s in summaries if s.get(key) is not None], dtype=np.float64)
        if vals.size:
            out[key] = {"mean": float(vals.mean()), "std": float(vals.std()), "min": float(vals.min()),
                        "max": float(vals.max()), "n": int(vals.size)}
    return out


def std_map_image(std_map: np.ndarray) -> np.ndarray:
    """The std map as an RGB image in 0..1 (magma colour map, scaled to its maximum)."""
    import matplotlib

    peak = float(std_map.max()) or 1.0
    return matplotlib.colormaps["magma"](std_map / peak)[..., :3].astype(np.float32)
