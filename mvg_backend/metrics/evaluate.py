"""One call for the whole evaluation of a trajectory: every metric, the gates, the plot data.

``evaluate_trajectory(frames, original, mask, ...)`` is what the ComfyUI node, the ``evaluate`` command and the
headless ``run``/``batch`` call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MVGInputError
from .anatomy import ANATOMY_REGIONS, anatomy_consistency
from .classifier import confidence, label_from_prompts, resolve_label
from .clip_i import TransformersCLIPEmbedder, clip_i
from .common import as_frames, as_image, as_region, resize_image
from .gates import Gate, Thresholds, evaluate_gates
from .identity import outside_identity
from .keyframes import keyframes_from
from .roi_change import inside_change
from .smoothness import smoothness
from .uncertainty import Spread, final_frame_std, metric_spread

SCHEMA = "mvg-metrics/1"


@dataclass
class Evaluation:
    """The result: ``passed`` (every evaluated gate passed), the gate rows, every metric per frame, notes, and
    (with several runs) the spread. ``to_dict()``/``to_json()`` give the report; ``plot()`` the figure."""

    passed: bool
    gates: list[Gate]
    metrics: dict[str, Any]
    thresholds: Thresholds
    frames: int
    keyframes: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    spread: Spread | None = None
    std_map: np.ndarray | None = None

    def gate(self, name: str) -> Gate:
        return next(g for g in self.gates if g.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "passed": self.passed, "frames": self.frames, "keyframes": self.keyframes,
                "gates": [g.to_dict() for g in self.gates], "thresholds": self.thresholds.to_dict(),
                "summary": scalar_summary(self.metrics), "metrics": self.metrics, "notes": self.notes,
                "spread": self.spread.to_dict() if self.spread else None}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot(self, **kwargs: Any) -> np.ndarray:
        """The metric curves as an RGB uint8 image (see :func:`mvg_backend.metrics.plot.plot_report`)."""
        from .plot import plot_report

        return plot_report(self.to_dict(), self.std_map, **kwargs)

    def summary_row(self) -> dict[str, Any]:
        """One flat row for a batch summary: ``passed``, the failed and skipped gates, and the headline scalars."""
        return {"passed": self.passed, "failed_gates": [g.name for g in self.gates if g.status == "fail"],
                "skipped_gates": [g.name for g in self.gates if g.status == "skipped"], **scalar_summary(self.metrics)}

    def write(self, folder: str | Path) -> list[Path]:
        """Write ``metrics.json``, ``metrics.png`` (and ``final_frame_std.png`` with several runs) into ``folder``."""
        import cv2

        from ..io.files import write_png
        from .uncertainty import std_map_image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "metrics.json", folder / "metrics.png"]
        paths[0].write_text(self.to_json() + "\n", encoding="utf-8")
        cv2.imwrite(str(paths[1]), cv2.cvtColor(self.plot(), cv2.COLOR_RGB2BGR))
        if self.std_map is not None:
            paths.append(folder / "final_frame_std.png")
            write_png(paths[-1], std_map_image(self.std_map))
        return paths

    def describe(self) -> str:
        lines = [f"MVG evaluation: {'PASS' if self.passed else 'FAIL'} ({self.frames} frames)"]
        lines += [f"  {g.name}: {g.reason}" for g in self.gates]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def scalar_summary(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The headline scalars of one run (what the spread over runs is computed on)."""

    def pick(values, fn):
        vals = [v for v in values if v is not None]
        return float(fn(vals)) if vals else None

    s: dict[str, float | None] = {}
    if metrics.get("clip_i"):
        s["clip_i_min"] = pick(metrics["clip_i"]["values"], min)
        s["clip_i_mean"] = pick(metrics["clip_i"]["values"], np.mean)
    out = metrics["outside_roi"]
    s["outside_max_change"] = pick(out["max_abs_change"], max)
    s["outside_ssim_min"] = pick(out["ssim"], min)
    s["outside_psnr_min_db"] = pick(out["psnr_db"], min)
    inside = metrics["inside_roi"]
    s["inside_final_change"] = inside["mean_abs_change"][-1]
    s["inside_rho"] = inside["spearman_rho"]
    if metrics.get("confidence"):
        c = metrics["confidence"]
        s["confidence_first"], s["confidence_last"] = c["values"][0], c["values"][-1]
        s["confidence_rho"] = c["spearman_rho"]
    sm = metrics["smoothness"]
    s["step_change_max"] = pick(sm["step_change"], max)
    s["flicker_max"] = pick(sm["flicker"], max)
    s["flicker_spikes"] = float(len(sm["spikes"]))
    if metrics.get("anatomy"):
        s["anatomy_min_dice"] = metrics["anatomy"]["min_dice"]
    return s


def _embedder(clip: Any) -> tuple[Callable | None, str]:
    if clip is None:
        return None, ""
    if isinstance(clip, (str, Path)):
        emb = TransformersCLIPEmbedder(clip)
        return emb, emb.name
    return clip, getattr(clip, "name", type(clip).__name__)


def _metrics(frames: np.ndarray, original: np.ndarray, region: np.ndarray, *, embed, embed_name: str,
             classifier: Any, label: str | None, direction: str, domain: str, anatomy: bool,
             label_note: str, progress) -> dict[str, Any]:
    m: dict[str, Any] = {}
    m["clip_i"] = clip_i(frames, original, embed, model=embed_name).to_dict() if embed is not None else None
    m["outside_roi"] = outside_identity(frames, original, region).to_dict()
    m["inside_roi"] = inside_change(frames, original, region).to_dict()
    m["smoothness"] = smoothness(frames).to_dict()
    m["confidence"] = None
    if classifier is not None:
        if label is None:
            m["confidence_skipped"] = (f"no label: {label_note}; set the label "
                                       f"(one of {', '.join(x for x in classifier.labels if x)})")
        else:
            m["confidence"] = confidence(frames, classifier, label, direction=direction,
                                         notes=[label_note] if label_note else []).to_dict()
    m["anatomy"] = None
    if not anatomy:
        m["anatomy_skipped"] = "anatomy check turned off"
    elif domain not in ANATOMY_REGIONS:
        m["anatomy_skipped"] = f"no anatomy regions for domain {domain!r} (chest_xray, fundus or skin)"
    else:
        res = anatomy_consistency(frames, original, domain, region, progress=progress)
        m["anatomy"] = res.to_dict() if res else None
    return m


def evaluate_trajectory(frames: Any, original: Any = None, mask: Any = None, *, clip: Any = None,
                        classifier: Any = None, label: str | None = None, prompts: Any = None,
                        domain: str | None = None, direction: str | None = None,
                        thresholds: Thresholds | dict | None = None, keyframes: Any = None,
                        anatomy: bool = True, runs: Sequence[Any] = (),
                        progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Evaluate one trajectory (and optionally more runs of the same case).

    ``frames``: ``[T,H,W,C]`` in 0..1 (a batch, list or tensor). ``original``: the unedited image (default:
    frame 0); resized to the frames if needed. ``mask``: the ROI, 1 = may change (default: none).
    ``clip``: an embedder ``f(images [N,H,W,3]) -> [N,D]`` or a local transformers CLIP folder.
    ``classifier``: see :mod:`mvg_backend.metrics.classifier`; ``label``: which of its labels (default: from
    ``prompts``' findings). ``prompts``: ``MVG_PROMPTS`` (gives label, domain and direction).
    ``direction``: progression (confidence should rise) or regression (fall). ``keyframes``: indices or a SEINE
    Transition summary. ``runs``: other runs of the same case (each like ``frames``) for the spread and the
    per-pixel std map of the final frame.
    """
    arr = as_frames(frames)
    notes: list[str] = []
    if original is None:
        ref = arr[0]
        notes.append("no original given: frame 0 is the reference.")
    else:
        ref = as_image(original, "original")
        if ref.shape[:2] != arr.shape[1:3]:
            notes.append(f"original {ref.shape[1]}x{ref.shape[0]} resized to the frames' "
                         f"{arr.shape[2]}x{arr.shape[1]}.")
            ref = resize_image(ref, arr.shape[1:3])
    region = as_region(mask, arr.shape[1:3])
    if mask is None:
        notes.append("no mask given: the whole image counts as outside the ROI.")
    th = thresholds if isinstance(thresholds, Thresholds) else Thresholds.from_dict(thresholds)
    domain = domain or getattr(prompts, "domain", None) or "other"
    direction = direction or getattr(prompts, "direction", None) or "progression"
    if direction not in ("progression", "regression"):
        raise MVGInputError(f"direction {direction!r}: use progression or regression.")
    embed, embed_name = _embedder(clip)
    label_note = ""
    if classifier is not None:
        if label:
            resolved = resolve_label(label, classifier.labels)
            if resolved is None:
                raise MVGInputError(f"label {label!r} is not one of the classifier's labels: "
                                    f"{', '.join(x for x in classifier.labels if x)}.")
            label_note = f"label {resolved!r} as given"
            label = resolved
        elif prompts is not None:
            label, label_note = label_from_prompts(prompts, classifier.labels)
        else:
            label_note = "no label given and no MVG_PROMPTS connected"
    kw = dict(embed=embed, embed_name=embed_name, classifier=classifier, label=label, direction=direction,
              domain=domain, anatomy=anatomy, label_note=label_note)
    metrics = _metrics(arr, ref, region, progress=progress, **kw)
    gates = evaluate_gates(metrics, th)
    passed = all(g.passed for g in gates)
    spread = std_map = None
    if runs:
        others = [as_frames(r, f"run {i + 2}") for i, r in enumerate(runs)]
        all_runs = [arr, *others]
        summaries = [scalar_summary(metrics)]
        for other in others:
            o = resize_image_batch(other, arr.shape[1:3])
            summaries.append(scalar_summary(_metrics(o, ref, region, progress=None, **kw)))
        std_map = final_frame_std(all_runs)
        spread = Spread(len(all_runs), std_map, metric_spread(summaries))
    return Evaluation(passed, gates, metrics, th, len(arr), keyframes_from(keyframes, len(arr)), notes, spread,
                      std_map)


def resize_image_batch(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frames.shape[1:3] == size:
        return frames
    return np.stack([resize_image(f, size) for f in frames])
