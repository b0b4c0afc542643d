"""Anatomy consistency, as RadEdit (ECCV 2024) checks its edits with a segmentation model: the pack's own ROI
segmentation (:mod:`mvg_backend.roi`) of every frame against the original's, as Dice, outside the region where
the disease is expected to change the anatomy (an effusion may shrink the lung field). A drop flags broken
anatomy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from .common import finite_list, outside_roi, resize_image

WORK_SIZE = 256
"""Frames are segmented with their longer side at most this many pixels (the classical segmentation is slow at
full size; Dice compares masks at that scale)."""
ANATOMY_REGIONS = {"chest_xray": ("lungs",), "fundus": ("fov", "optic_disc"), "skin": ("lesion",)}
"""The structures checked per domain (regions of :func:`mvg_backend.roi.segment`)."""


@dataclass
class Anatomy:
    dice: dict[str, list[float | None]]  # region -> per frame
    min_dice: float | None
    excluded_pixels: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"dice": self.dice, "min_dice": self.min_dice, "excluded_pixels": self.excluded_pixels,
                "notes": self.notes}


def dice(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Dice of two boolean masks over ``where``; 1.0 when both are empty there."""
    a, b = a[where], b[where]
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def _segment(segment_detailed, image, domain, regions) -> tuple[dict[str, np.ndarray], set[str]]:
    """Each region's mask (one domain analysis serves all regions), and the regions that fell back."""
    first = segment_detailed(image, domain, regions[0])
    masks, fallbacks = {regions[0]: first.mask >= 0.5}, set()
    analysis = first.analysis
    for region in regions[1:]:
        if analysis is not None and region in analysis.parts:
            masks[region] = analysis.parts[region] >= 0.5
        else:
            masks[region] = segment_detailed(image, domain, region).mask >= 0.5
    if analysis is not None:
        fallbacks = {r for r in regions if r in analysis.fallbacks}
    return masks, fallbacks


def anatomy_consistency(frames: np.ndarray, original: np.ndarray, domain: str, exclude: np.ndarray | None = None,
                        *, regions: tuple[str, ...] | None = None,
                        progress: Callable[[int, int], None] | None = None) -> Anatomy | None:
    """Dice of each anatomy region of every frame against the original's, outside ``exclude`` (where it is above 0:
    the ROI, feathered edge included).

    Returns ``None`` for a domain with no anatomy regions (``other``).
    """
    from ..roi import segment_detailed

    regions = regions or ANATOMY_REGIONS.get(domain, ())
    if not regions:
        return None
    scale = WORK_SIZE / max(original.shape[:2])
    if scale < 1:
        size = (max(8, round(original.shape[0] * scale)), max(8, round(original.shape[1] * scale)))
        original = resize_image(original, size)
        frames = [resize_image(f, size) for f in frames]
        exclude = None if exclude is None else cv2.resize(exclude, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    size = original.shape[:2]
    keep = np.ones(size, bool) if exclude is None else outside_roi(exclude)
    notes: list[str] = [f"segmented at {size[1]}x{size[0]}"] if scale < 1 else []
    refs, fallbacks = _segment(segment_detailed, original, domain, regions)
    for region in regions:
        if region in fallbacks:
            notes.append(f"{region}: the original's segmentation fell back to a prior shape; Dice is less telling.")
        inside = int((refs[region] & keep).sum())
        if inside < 0.05 * max(1, int(refs[region].sum())):
            notes.append(f"{region}: less than 5% of it lies outside the expected disease region; its Dice covers "
                         f"{inside} pixels only.")
    out: dict[str, list[float]] = {r: [] for r in regions}
    for i, frame in enumerate(frames):
        segs, _ = _segment(segment_detailed, frame, domain, regions)
        for region in regions:
            out[region].append(dice(segs[region], refs[region], keep))
        if progress:
            progress(i + 1, len(frames))
    values = [v for vs in out.values() for v in vs]
    return Anatomy({r: finite_list(v) for r, v in out.items()}, float(min(values)) if values else None,
                   int((~keep).sum()), notes)
