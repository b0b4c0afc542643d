"""What an automatic ROI method returns: the mask, its named parts, landmarks and what happened."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class Analysis:
    """One domain's automatic analysis of an image, at the input's size.

    ``parts`` maps region names (e.g. ``left_lung``, ``fov``) to float masks ``[H,W]`` in 0..1;
    ``landmarks`` holds points and sizes in input pixels (e.g. ``disc_x``, ``disc_d``); ``notes`` are
    sentences for the summary; ``fallbacks`` names the parts that came from a documented fallback.
    """

    parts: dict[str, np.ndarray]
    landmarks: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fallbacks: set[str] = field(default_factory=set)


@dataclass
class ROIResult:
    """The final mask of :func:`mvg_backend.roi.segment_detailed` and how it was made."""

    mask: np.ndarray  # float32 [H,W] in 0..1 at the input size
    domain: str
    region: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fallback: bool = False
    analysis: Analysis | None = None

    @property
    def area_fraction(self) -> float:
        return float((self.mask >= 0.5).mean())

    @property
    def components(self) -> int:
        return int(cv2.connectedComponents((self.mask >= 0.5).astype(np.uint8), connectivity=8)[0]) - 1

    def describe(self) -> str:
        """Lines for a summary: size, area, components, notes, then warnings (marked ``WARNING``)."""
        h, w = self.mask.shape
        head = (f"{self.domain} / {self.region}{' (FALLBACK)' if self.fallback else ''}: {w}x{h}, "
                f"{self.area_fraction:.1%} of the image, {self.components} component(s)")
        return "\n".join([head, *(f"  - {n}" for n in self.notes), *(f"  WARNING: {m}" for m in self.warnings)])
