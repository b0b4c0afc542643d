"""Gates: user-set thresholds on the metrics, each with pass/fail and why. Defaults are the paper's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Thresholds:
    """Gate thresholds. Defaults: the MVG paper's CLIP-I ≥ 0.75; no change outside the ROI beyond 8-bit
    rounding (2/255); the classifier's confidence rising with the frames (Spearman ρ ≥ 0.8, sign flipped for
    regression); anatomy Dice ≥ 0.9; no flicker spike."""

    clip_i_min: float = 0.75
    outside_max_change: float = 2.0 / 255.0
    confidence_rho_min: float = 0.8
    anatomy_dice_min: float = 0.9
    flicker_spikes_max: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Thresholds:
        data = data or {}
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            from ..errors import MVGInputError

            raise MVGInputError(f"unknown gate threshold(s) {sorted(unknown)}; use {sorted(names)}.")
        return cls(**{k: (int(v) if k == "flicker_spikes_max" else float(v)) for k, v in data.items()})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Gate:
    """One gate: its measured value, the threshold, pass/fail, and why (or why it was not evaluated)."""

    name: str
    value: float | int | None
    threshold: float | int
    comparison: str  # ">=" or "<="
    passed: bool
    evaluated: bool
    reason: str

    @property
    def status(self) -> str:
        return "skipped" if not self.evaluated else "pass" if self.passed else "fail"

    def to_dict(self) -> dict:
        return {**asdict(self), "status": self.status}


def _gate(name: str, value: float | None, threshold: float, comparison: str, what: str, frame: int | None = None,
          missing: str = "") -> Gate:
    if value is None:
        return Gate(name, None, threshold, comparison, True, False, f"not evaluated: {missing}")
    ok = value >= threshold if comparison == ">=" else value <= threshold
    at = f" (frame {frame})" if frame is not None else ""
    verdict = "pass" if ok else "FAIL"
    return Gate(name, value, threshold, comparison, ok, True,
                f"{verdict}: {what} {value:.4g}{at} {'meets' if ok else 'misses'} {comparison} {threshold:.4g}")


def _argext(values: list, pick) -> tuple[float | None, int | None]:
    pairs = [(v, i) for i, v in enumerate(values) if v is not None]
    if not pairs:
        return None, None
    v, i = pick(pairs, key=lambda p: p[0])
    return v, i


def evaluate_gates(metrics: dict, thresholds: Thresholds) -> list[Gate]:
    """Gates over the metric dict built by :func:`mvg_backend.metrics.evaluate_trajectory`."""
    gates = []
    clip = metrics.get("clip_i")
    v, i = _argext(clip["values"], min) if clip else (None, None)
    gates.append(_gate("clip_i", v, thresholds.clip_i_min, ">=", "lowest CLIP-I", i,
                       "no CLIP vision model given (connect Load CLIP Vision, or --clip DIR)"))
    out = metrics.get("outside_roi")
    v, i = _argext(out["max_abs_change"], max) if out and out["pixels"] else (None, None)
    gates.append(_gate("outside_roi_max_change", v, thresholds.outside_max_change, "<=",
                       "largest change outside the ROI", i, "the mask covers the whole image"))
    conf = metrics.get("confidence")
    if conf:
        signed = conf["signed_rho"]
        direction = "falls" if conf["expected_sign"] < 0 else "rises"
        g = _gate("confidence_rho", signed, thresholds.confidence_rho_min, ">=",
                  f"{conf['label']} confidence {direction} with the frames: signed Spearman ρ", None,
                  f"{conf['label']} confidence is constant over the frames")
        if signed is None:
            g = Gate("confidence_rho", None, thresholds.confidence_rho_min, ">=", False, True,
                     f"FAIL: {conf['label']} confidence is constant over the frames (no trend)")
        gates.append(g)
    else:
        gates.append(_gate("confidence_rho", None, thresholds.confidence_rho_min, ">=", "", None,
                           metrics.get("confidence_skipped") or "no classifier given"))
    anat = metrics.get("anatomy")
    if anat:
        worst, where = None, None
        for region, values in anat["dice"].items():
            v, i = _argext(values, min)
            if v is not None and (worst is None or v < worst):
                worst, where = v, (region, i)
        g = _gate("anatomy_dice", worst, thresholds.anatomy_dice_min, ">=",
                  f"lowest anatomy Dice ({where[0]})" if where else "", where[1] if where else None, "no frames")
    else:
        g = _gate("anatomy_dice", None, thresholds.anatomy_dice_min, ">=", "", None,
                  metrics.get("anatomy_skipped") or "no anatomy model for this domain")
    gates.append(g)
    smooth = metrics.get("smoothness")
    if smooth and smooth["flicker"] and any(x is not None for x in smooth["flicker"]):
        spikes = smooth["spikes"]
        n = len(spikes)
        ok = n <= thresholds.flicker_spikes_max
        frames = ", ".join(f"frame {s['frame']} ({s['flicker']:.3g} > {s['threshold']:.3g})" for s in spikes)
        reason = (f"{'pass' if ok else 'FAIL'}: {n} flicker spike(s)" + (f" at {frames}" if frames else "")
                  + f"; at most {thresholds.flicker_spikes_max} allowed")
        gates.append(Gate("flicker_spikes", n, thresholds.flicker_spikes_max, "<=", ok, True, reason))
    else:
        gates.append(_gate("flicker_spikes", None, thresholds.flicker_spikes_max, "<=", "", None,
                           "fewer than 3 frames"))
    return gates
