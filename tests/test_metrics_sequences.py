"""Each metric on constructed sequences with known answers: identical frames, a pure in-ROI ramp, a leak
outside the ROI, a flicker spike."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.metrics_sequences import ROI, T, base_image, identical, ramp, roi_mask
from mvg_backend.metrics import evaluate_trajectory
from mvg_backend.metrics.common import spearman
from mvg_backend.metrics.identity import PSNR_CAP, outside_identity
from mvg_backend.metrics.roi_change import inside_change
from mvg_backend.metrics.smoothness import smoothness


def test_identical_frames_are_perfect():
    frames, mask = identical(), roi_mask()
    out = outside_identity(frames, frames[0], mask)
    assert out.ssim == pytest.approx([1.0] * T) and out.psnr == [PSNR_CAP] * T
    assert out.max_abs_change == [0.0] * T and out.pixels == int((mask < 0.5).sum())
    inside = inside_change(frames, frames[0], mask)
    assert inside.mean_abs_change == [0.0] * T and inside.rho is None  # no trend at all
    sm = smoothness(frames)
    assert sm.step_change[0] is None and sm.step_change[1:] == [0.0] * (T - 1)
    assert sm.flicker[0] is None and sm.flicker[-1] is None and sm.flicker[1:-1] == [0.0] * (T - 2)
    assert sm.spikes == []
    result = evaluate_trajectory(frames, frames[0], mask, anatomy=False)
    by = {g.name: g for g in result.gates}
    assert by["outside_roi_max_change"].passed and by["outside_roi_max_change"].value == 0.0
    assert by["flicker_spikes"].passed and by["flicker_spikes"].value == 0
    assert by["clip_i"].status == "skipped" and by["confidence_rho"].status == "skipped"
    assert result.passed


def test_pure_in_roi_ramp():
    frames, mask = ramp(step=0.03), roi_mask()
    out = outside_identity(frames, frames[0], mask)
    assert out.max_abs_change == [0.0] * T and out.ssim == pytest.approx([1.0] * T)  # SSIM windows stay outside
    inside = inside_change(frames, frames[0], mask)
    assert inside.mean_abs_change == pytest.approx([0.03 * i for i in range(T)], abs=1e-6)
    assert inside.rho == pytest.approx(1.0)
    sm = smoothness(frames)
    share = mask.mean()
    assert sm.step_change[1:] == pytest.approx([0.03 * share] * (T - 1), abs=1e-6)
    assert max(sm.flicker[1:-1]) < 1e-6 and sm.spikes == []
    result = evaluate_trajectory(frames, base_image(), mask, anatomy=False, keyframes=[0, 4, 8])
    assert result.passed and result.keyframes == [0, 4, 8]
    assert result.metrics["inside_roi"]["spearman_rho"] == pytest.approx(1.0)


def test_leak_outside_the_roi_fails_its_gate_and_names_the_frame():
    frames, mask = ramp(), roi_mask()
    frames[5, 2:6, 2:6] += 10 / 255  # outside the ROI
    out = outside_identity(frames, frames[0], mask)
    assert out.max_abs_change[5] == pytest.approx(10 / 255, abs=1e-6)
    assert out.max_abs_change[:5] == [0.0] * 5 and out.ssim[5] < 1.0 and out.psnr[5] < PSNR_CAP
    result = evaluate_trajectory(frames, frames[0], mask, anatomy=False)
    gate = result.gate("outside_roi_max_change")
    assert not gate.passed and not result.passed
    assert "frame 5" in gate.reason and gate.value == pytest.approx(10 / 255, abs=1e-6)
    # a looser threshold lets it pass
    assert evaluate_trajectory(frames, frames[0], mask, anatomy=False,
                               thresholds={"outside_max_change": 11 / 255}).passed


def test_flicker_spike_is_flagged_at_its_frame():
    frames, mask = ramp(t=12, step=0.02), roi_mask()
    frames[7][ROI] = np.clip(frames[7][ROI] + 0.25, 0, 1)  # one frame jumps away and back
    sm = smoothness(frames)
    assert [s["frame"] for s in sm.spikes] == [7]  # the neighbours' smaller peaks are not spikes of their own
    assert sm.flicker[7] == pytest.approx(2 * 0.25 * mask.mean(), rel=0.05)
    result = evaluate_trajectory(frames, frames[0], mask, anatomy=False)
    gate = result.gate("flicker_spikes")
    assert not gate.passed and gate.value == 1 and "frame 7" in gate.reason
    assert evaluate_trajectory(frames, frames[0], mask, anatomy=False, thresholds={"flicker_spikes_max": 1}).passed


def test_spearman_against_frame_order():
    assert spearman([0, 1, 2, 3]) == pytest.approx(1.0)
    assert spearman([3, 2, 1, 0]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1]) is None and spearman([1, 2]) is None


def test_anatomy_consistency_on_a_chest_phantom():
    from fixtures.roi_phantoms import chest_phantom

    from mvg_backend.metrics.anatomy import anatomy_consistency

    ph = chest_phantom(128)
    image = np.repeat(ph["image"][..., None], 3, axis=-1)
    lungs = ph["right_lung"] | ph["left_lung"]
    roi = np.zeros(lungs.shape, np.float32)
    roi[80:105, 20:55] = 1  # the expected effusion region (right base)
    frames = np.repeat(image[None], 3, axis=0).copy()
    frames[1][80:105, 20:55] = 0.9  # the effusion whitens the base: excluded, so no drop
    frames[2][lungs & (roi < 0.5)] = 0.85  # the lungs vanish outside the expected region: broken anatomy
    res = anatomy_consistency(frames, image, "chest_xray", roi)
    dice = res.dice["lungs"]
    assert dice[0] == pytest.approx(1.0) and dice[1] > 0.9 and dice[2] < 0.8
    assert res.excluded_pixels == int(roi.sum())
    result = evaluate_trajectory(frames, image, roi, domain="chest_xray")
    gate = result.gate("anatomy_dice")
    assert not gate.passed and "frame 2" in gate.reason and "lungs" in gate.reason


def test_a_feathered_edge_counts_as_inside():
    frames, mask = ramp(), roi_mask()
    soft = mask.copy()
    soft[10:12, 12:36] = 0.25  # a feathered rim above the ROI: PIE may change it in proportion
    frames[:, 10:12, 12:36] += 0.25 * np.linspace(0, 0.2, T)[:, None, None, None]
    out = outside_identity(frames, frames[0], soft)
    assert out.max_abs_change == [0.0] * T and out.pixels == int((soft == 0).sum())
    assert outside_identity(frames, frames[0], mask).max_abs_change[-1] == pytest.approx(0.05, abs=1e-6)


def test_anatomy_of_large_frames_is_segmented_at_the_working_size():
    from fixtures.roi_phantoms import fundus_phantom

    from mvg_backend.metrics.anatomy import WORK_SIZE, anatomy_consistency

    image = fundus_phantom(384)["image"]
    frames = np.repeat(image[None], 2, axis=0)
    res = anatomy_consistency(frames, image, "fundus")
    assert set(res.dice) == {"fov", "optic_disc"} and res.min_dice == pytest.approx(1.0)
    assert f"segmented at {WORK_SIZE}x{WORK_SIZE}" in res.notes
