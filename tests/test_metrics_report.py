"""Gates, the spread over several runs (uncertainty map), the plot, the JSON report and the evaluate command."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fixtures.metrics_sequences import ROI, T, base_image, ramp, roi_mask, write_tiny_clip_vision, \
    write_tiny_torchscript_classifier
from mvg_backend.cli import main
from mvg_backend.errors import MVGInputError
from mvg_backend.metrics import Thresholds, evaluate_trajectory
from mvg_backend.metrics.gates import evaluate_gates
from mvg_backend.metrics.keyframes import keyframes_from_summary


def test_default_thresholds_are_the_papers():
    th = Thresholds()
    assert (th.clip_i_min, th.outside_max_change, th.confidence_rho_min, th.anatomy_dice_min,
            th.flicker_spikes_max) == (0.75, 2 / 255, 0.8, 0.9, 0)
    with pytest.raises(MVGInputError, match="unknown gate threshold"):
        Thresholds.from_dict({"clip_min": 0.5})


def test_gates_pass_fail_and_why():
    metrics = {
        "clip_i": {"values": [1.0, 0.8, 0.7]},
        "outside_roi": {"max_abs_change": [0.0, 0.001, 0.002], "pixels": 10},
        "confidence": {"label": "Effusion", "signed_rho": 0.9, "expected_sign": 1},
        "anatomy": {"dice": {"lungs": [1.0, 0.95, 0.92]}},
        "smoothness": {"flicker": [None, 0.01, None], "spikes": []},
    }
    gates = {g.name: g for g in evaluate_gates(metrics, Thresholds())}
    assert not gates["clip_i"].passed and "0.7 (frame 2)" in gates["clip_i"].reason
    assert gates["clip_i"].reason.startswith("FAIL")
    assert all(gates[n].passed for n in ("outside_roi_max_change", "confidence_rho", "anatomy_dice", "flicker_spikes"))
    loose = {g.name: g for g in evaluate_gates(metrics, Thresholds(clip_i_min=0.6, anatomy_dice_min=0.95))}
    assert loose["clip_i"].passed and not loose["anatomy_dice"].passed and "frame 2" in loose["anatomy_dice"].reason
    constant = dict(metrics, confidence={"label": "Effusion", "signed_rho": None, "expected_sign": 1})
    g = {g.name: g for g in evaluate_gates(constant, Thresholds())}["confidence_rho"]
    assert not g.passed and "constant" in g.reason


def test_several_runs_give_a_std_map_and_the_spread():
    runs = [ramp(step=0.03), ramp(step=0.03), ramp(step=0.03)]
    runs[1][-1][ROI] = np.clip(runs[1][-1][ROI] + 0.1, 0, 1)
    runs[2][-1][ROI] = np.clip(runs[2][-1][ROI] - 0.1, 0, 1)
    result = evaluate_trajectory(runs[0], base_image(), roi_mask(), anatomy=False, runs=runs[1:])
    std = result.std_map
    assert std.shape == roi_mask().shape
    assert std[roi_mask() < 0.5].max() == 0.0 and std[ROI].min() > 0.05  # the runs disagree inside the ROI only
    spread = result.to_dict()["spread"]
    assert spread["runs"] == 3
    final = spread["metrics"]["inside_final_change"]
    assert final["max"] > final["min"] and final["std"] > 0 and final["n"] == 3
    assert spread["metrics"]["outside_max_change"]["max"] == 0.0


def test_plot_has_the_curves_thresholds_and_keyframes():
    frames = ramp()
    frames[5, 2:4, 2:4] += 0.2
    result = evaluate_trajectory(frames, base_image(), roi_mask(), anatomy=False, keyframes=[0, 4, 8],
                                 runs=[ramp()])
    img = result.plot()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[1] == 1000 and img.shape[0] > 800
    assert img.std() > 10  # not blank
    blue = np.all(np.abs(img.astype(int) - [0x1f, 0x77, 0xb4]) < 30, axis=-1).sum()  # matplotlib's first curve
    threshold = np.all(np.abs(img.astype(int) - [0x9a, 0x67, 0x00]) < 60, axis=-1).sum()  # gate thresholds
    fail = np.all(np.abs(img.astype(int) - [0xcf, 0x22, 0x2e]) < 30, axis=-1).sum()  # the failed gate's title
    assert blue > 2000 and threshold > 500 and fail > 50
    data = json.loads(result.to_json())
    assert data["passed"] is False and data["keyframes"] == [0, 4, 8]
    assert [g["name"] for g in data["gates"]] == ["clip_i", "outside_roi_max_change", "confidence_rho",
                                                  "anatomy_dice", "flicker_spikes"]
    assert all(isinstance(g["passed"], bool) for g in data["gates"])
    assert len(data["metrics"]["outside_roi"]["ssim"]) == T


def test_keyframes_from_a_transition_summary():
    summary = ("transitions: 3 keyframes -> 2 transition(s) x 4 frames = 7 frames, by optical_flow\nimage 64x64\n"
               "frame 0: keyframe 1\nframe 1: interpolated (optical_flow), keyframe 1 -> 2, 1/2\n"
               "frame 3: keyframe 2\nframe 6: keyframe 3")
    assert keyframes_from_summary(summary) == [0, 3, 6]
    assert evaluate_trajectory(ramp(7), anatomy=False, keyframes=summary).keyframes == [0, 3, 6]


def _write_frames(folder, frames):
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), cv2.cvtColor((f * 255 + 0.5).astype(np.uint8),
                                                                     cv2.COLOR_RGB2BGR))


def _write_mp4(path, frames):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"crf": "0"}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray((f * 255 + 0.5).astype(np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_evaluate_command_passes_and_fails(tmp_path, capsys):
    frames = ramp()
    _write_frames(tmp_path / "frames", frames)
    cv2.imwrite(str(tmp_path / "original.png"), cv2.cvtColor((base_image() * 255 + 0.5).astype(np.uint8),
                                                             cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), (roi_mask() * 255).astype(np.uint8))
    clip = write_tiny_clip_vision(tmp_path / "clip")
    clf = write_tiny_torchscript_classifier(tmp_path / "centre.pt")
    common = ["--original", str(tmp_path / "original.png"), "--mask", str(tmp_path / "mask.png"), "--clip",
              str(clip), "--classifier", str(clf), "--label", "Effusion", "--no-anatomy", "--clip-i-min", "0.0"]
    code = main(["evaluate", str(tmp_path / "frames"), *common, "--keyframes", "0,4,8", "--out",
                 str(tmp_path / "ok")])
    assert code == 0, capsys.readouterr()
    data = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert data["passed"] is True and all(g["passed"] is True for g in data["gates"])
    assert data["thresholds"]["clip_i_min"] == 0.0 and data["metrics"]["confidence"]["label"] == "Effusion"
    png = cv2.imread(str(tmp_path / "ok" / "metrics.png"))
    assert png is not None and png.shape[1] == 1000 and png.std() > 10
    # a leak outside the ROI: exit 1, the gate says where
    leaky = frames.copy()
    leaky[3, :4, :4] += 20 / 255
    _write_frames(tmp_path / "leaky", leaky)
    code = main(["evaluate", str(tmp_path / "leaky"), *common, "--out", str(tmp_path / "bad")])
    assert code == 1
    data = json.loads((tmp_path / "bad" / "metrics.json").read_text())
    gate = next(g for g in data["gates"] if g["name"] == "outside_roi_max_change")
    assert data["passed"] is False and gate["passed"] is False and "frame 3" in gate["reason"]
    assert "FAIL" in capsys.readouterr().out


def test_evaluate_command_reads_mp4_and_several_runs(tmp_path):
    frames = ramp(step=0.05)
    _write_mp4(tmp_path / "run1.mp4", frames)
    _write_mp4(tmp_path / "run2.mp4", ramp(step=0.04))
    cv2.imwrite(str(tmp_path / "mask.png"), (roi_mask() * 255).astype(np.uint8))
    code = main(["evaluate", str(tmp_path / "run1.mp4"), str(tmp_path / "run2.mp4"), "--mask",
                 str(tmp_path / "mask.png"), "--no-anatomy", "--outside-max-change", "0.05", "--flicker-spikes-max",
                 "5", "--out", str(tmp_path / "out")])
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert code == 0 and data["frames"] == T and data["spread"]["runs"] == 2
    assert data["metrics"]["inside_roi"]["spearman_rho"] > 0.95
    assert (tmp_path / "out" / "final_frame_std.png").is_file()


def test_evaluate_command_bad_input(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_summary_row_and_write_for_run_and_batch(tmp_path):
    frames = ramp()
    frames[2, :3, :3] += 0.1
    result = evaluate_trajectory(frames, base_image(), roi_mask(), anatomy=False, runs=[ramp()])
    row = result.summary_row()
    assert row["passed"] is False and row["failed_gates"] == ["outside_roi_max_change"]
    assert set(row["skipped_gates"]) == {"clip_i", "confidence_rho", "anatomy_dice"}
    assert row["outside_max_change"] == pytest.approx(0.1, abs=1e-6)
    paths = result.write(tmp_path / "case01")
    assert [p.name for p in paths] == ["metrics.json", "metrics.png", "final_frame_std.png"]
    assert json.loads(paths[0].read_text())["passed"] is False


def test_evaluate_command_takes_the_label_from_a_report_or_prompts(tmp_path):
    from mvg_backend.prompts import plan

    _write_frames(tmp_path / "frames", ramp())
    cv2.imwrite(str(tmp_path / "mask.png"), (roi_mask() * 255).astype(np.uint8))
    clf = write_tiny_torchscript_classifier(tmp_path / "centre.pt")
    (tmp_path / "report.txt").write_text("Moderate left pleural effusion. No pneumothorax.")
    stages = plan((tmp_path / "report.txt").read_text(), "chest_xray", stages=2, direction="regression")
    (tmp_path / "prompts.json").write_text(json.dumps(stages.to_dict()))
    common = ["--mask", str(tmp_path / "mask.png"), "--classifier", str(clf), "--no-anatomy"]
    assert main(["evaluate", str(tmp_path / "frames"), *common, "--report", str(tmp_path / "report.txt"),
                 "--domain", "chest_xray", "--out", str(tmp_path / "a")]) == 0
    conf = json.loads((tmp_path / "a" / "metrics.json").read_text())["metrics"]["confidence"]
    assert conf["label"] == "Effusion" and conf["expected_sign"] == 1
    # the saved MVG_PROMPTS says regression: the rising confidence now fails
    assert main(["evaluate", str(tmp_path / "frames"), *common, "--prompts", str(tmp_path / "prompts.json"),
                 "--out", str(tmp_path / "b")]) == 1
    data = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert data["metrics"]["confidence"]["expected_sign"] == -1 and data["passed"] is False
