"""The evaluation plot: every metric curve over the frames, keyframes marked, gate thresholds drawn."""

from __future__ import annotations

from typing import Any

import numpy as np

PASS_COLOUR, FAIL_COLOUR, THRESHOLD_COLOUR = "#1a7f37", "#cf222e", "#9a6700"


def _series(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_report(report: dict[str, Any], std_map: np.ndarray | None = None, *, width: float = 10.0,
                dpi: int = 100) -> np.ndarray:
    """Render :meth:`Evaluation.to_dict`'s data as an RGB uint8 image ``[H,W,3]`` (matplotlib, Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = report["metrics"]
    gates = {g["name"]: g for g in report["gates"]}
    th = report["thresholds"]
    keyframes = report.get("keyframes", [])
    n = report["frames"]
    x = np.arange(n)
    panels = []
    if metrics.get("clip_i"):
        panels.append(("CLIP-I vs original", [("CLIP-I", metrics["clip_i"]["values"], None)],
                       th["clip_i_min"], "clip_i"))
    out = metrics["outside_roi"]
    if out["pixels"]:
        panels.append(("change outside the ROI (8-bit levels)",
                       [("max |Δ|", [None if v is None else v * 255 for v in out["max_abs_change"]], None),
                        ("mean |Δ|", [None if v is None else v * 255 for v in out["mean_abs_change"]], None)],
                       th["outside_max_change"] * 255, "outside_roi_max_change"))
        panels.append(("SSIM outside the ROI", [("SSIM", out["ssim"], None)], None, None))
    inside = metrics["inside_roi"]
    if inside["pixels"]:
        rho = inside["spearman_rho"]
        panels.append((f"mean change inside the ROI (ρ {rho:.2f})" if rho is not None else
                       "mean change inside the ROI", [("mean |Δ|", inside["mean_abs_change"], None)], None, None))
    if metrics.get("confidence"):
        c = metrics["confidence"]
        rho = c["spearman_rho"]
        title = f"{c['label']} confidence ({c['classifier']})" + (f", ρ {rho:.2f}" if rho is not None else "")
        panels.append((title, [(c["label"], c["values"], None)], None, "confidence_rho"))
    sm = metrics["smoothness"]
    spikes = [s["frame"] for s in sm["spikes"]]
    panels.append(("temporal smoothness", [("step |Δ|", sm["step_change"], None), ("flicker", sm["flicker"], spikes)],
                   sm["spike_threshold"], "flicker_spikes"))
    if metrics.get("anatomy"):
        panels.append(("anatomy consistency (Dice vs original)",
                       [(f"Dice {r}", v, None) for r, v in metrics["anatomy"]["dice"].items()],
                       th["anatomy_dice_min"], "anatomy_dice"))
    extra = 1 if std_map is not None else 0
    rows = len(panels) + extra
    fig = Figure(figsize=(width, 2.1 * rows + 0.8), dpi=dpi)
    FigureCanvasAgg(fig)
    verdict = "PASS" if report["passed"] else "FAIL"
    failed = [g["name"] for g in report["gates"] if g["status"] == "fail"]
    fig.suptitle(f"MVG evaluation: {verdict}" + (f" ({', '.join(failed)})" if failed else "") + f", {n} frames",
                 color=PASS_COLOUR if report["passed"] else FAIL_COLOUR, fontsize=12)
    for row, (title, curves, threshold, gate_name) in enumerate(panels):
        ax = fig.add_subplot(rows, 1, row + 1)
        for label, values, marks in curves:
            y = _series(values)
            (line,) = ax.plot(x, y, marker="o", markersize=2.5, linewidth=1.4, label=label)
            if marks:
                ax.scatter(marks, y[marks], s=60, facecolors="none", edgecolors=FAIL_COLOUR, linewidths=1.5,
                           zorder=5, label="flicker spike")
        if threshold is not None:
            ax.axhline(threshold, color=THRESHOLD_COLOUR, linestyle="--", linewidth=1.5, label="threshold")
        for k in keyframes:
            ax.axvline(k, color="#6e7781", linestyle=":", linewidth=1.0)
        gate = gates.get(gate_name) if gate_name else None
        if gate and gate["status"] != "skipped":
            title += f"  [{gate['status'].upper()}]"
            ax.set_title(title, fontsize=9, loc="left", color=PASS_COLOUR if gate["passed"] else FAIL_COLOUR)
        else:
            ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlim(-0.5, max(n - 0.5, 0.5))
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best")
        if row == len(panels) - 1:
            ax.set_xlabel("frame (dotted: keyframes)", fontsize=8)
    if std_map is not None:
        ax = fig.add_subplot(rows, 1, rows)
        im = ax.imshow(std_map, cmap="magma", vmin=0.0, vmax=max(float(std_map.max()), 1e-6))
        ax.set_anchor("W")
        ax.set_title(f"per-pixel std of the final frame over {report['spread']['runs']} runs", fontsize=9, loc="left")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.03, panchor=(0.0, 0.5))
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])
