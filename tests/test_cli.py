"""The headless CLI: the demo (whole pipeline) and pie commands, outputs, provenance, and all-or-nothing writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fixtures.tiny_checkpoints import write_tiny_ldm_checkpoint
from mvg_backend.cli import main
from mvg_backend.roi.__main__ import main as roi_main


def test_demo_runs_the_whole_pipeline_to_a_video(tmp_path, capsys):
    from mvg_backend.io.video import read_video

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "64", "--rounds", "3", "--steps", "4", "--seed", "5"]) == 0
    frames = sorted((out / "frames").glob("*.png"))
    # 4 keyframes (original + 3 stages) -> 3 transitions of 16 frames, joined: 3*15 + 1
    assert len(frames) == 46 and len(list((out / "keyframes").glob("*.png"))) == 4
    video, fps, codec = read_video(out / "video.mp4")
    assert video.shape == (46, 64, 64, 3) and fps == pytest.approx(8.0) and codec == "h264"
    first = cv2.imread(str(frames[0]))
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, cv2.imread(str(out / "input.png")))
    prov = json.loads((out / "provenance.json").read_text())
    assert [f["seed"] for f in prov["pie"]["frames"]] == [None, 5, 6, 7]
    assert prov["pie"]["settings"]["stage_rounds"] == [1, 1, 1]
    assert prov["inputs"]["image"]["name"] == "input.png" and len(prov["inputs"]["image"]["sha256"]) == 64
    assert "random-weight tiny" in prov["model_note"]
    assert "random-weight tiny" in (out / "summary.txt").read_text()
    printed = capsys.readouterr().out
    assert "wrote 46 frames (video.mp4 at 8 fps)" in printed
    assert "random-weight tiny model, so the edited region is noise" in printed and "--checkpoint" in printed


def test_pie_command_with_single_file_checkpoint(tmp_path, phantom):
    image, mask = phantom
    cv2.imwrite(str(tmp_path / "cxr.png"), (image[..., ::-1] * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "roi.png"), (mask * 255).astype(np.uint8))
    (tmp_path / "stages.txt").write_text("small effusion {rounds=1}\nlarge effusion | text {rounds=2}\n")
    ckpt, _ = write_tiny_ldm_checkpoint(tmp_path / "tiny.safetensors", config_dir=tmp_path / "cfg")
    out = tmp_path / "run"
    code = main(["pie", "--image", str(tmp_path / "cxr.png"), "--mask", str(tmp_path / "roi.png"),
                 "--prompts", str(tmp_path / "stages.txt"), "--checkpoint", str(ckpt), "--config",
                 str(tmp_path / "cfg"), "--steps", "4", "--out", str(out)])
    assert code == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["models"][0]["name"] == "tiny.safetensors" and len(prov["models"][0]["sha256"]) == 64
    assert prov["settings"]["stages"][1]["negative_prompt"] == "text"
    assert str(tmp_path) not in json.dumps(prov)  # no absolute input paths in the sidecar
    frames = [cv2.imread(str(p)) for p in sorted((out / "frames").glob("*.png"))]
    assert len(frames) == 4
    outside = mask == 0
    for f in frames:
        assert np.array_equal(f[outside], frames[0][outside])


def test_refuses_non_empty_out_and_leaves_nothing_on_failure(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["demo", "--out", str(out), "--size", "64", "--steps", "2"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    fresh = tmp_path / "fresh"
    assert main(["demo", "--out", str(fresh), "--size", "64", "--strength", "0"]) == 2
    assert "strength=0.0" in capsys.readouterr().err
    assert not fresh.exists() and list(tmp_path.iterdir()) == [out]  # no staging folder left behind


def test_overwrite_keeps_other_files(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(out), "--size", "64", "--rounds", "1", "--steps", "2", "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "frames" / "frame_001.png").is_file()


@pytest.mark.parametrize("argv,match", [
    (["pie", "--image", "missing.png", "--prompt", "x"], "image file 'missing.png' does not exist"),
    (["demo", "--unet", "u"], "--unet and --config need a base model"),
    (["demo", "--checkpoint", "nope.safetensors"], "checkpoint 'nope.safetensors' does not exist"),
])
def test_cli_errors(tmp_path, capsys, monkeypatch, argv, match):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--out", str(tmp_path / "x")]) == 2
    assert match in capsys.readouterr().err


# --- interruptions and outputs ---------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
def test_sigterm_leaves_no_staging_folder(tmp_path):
    """SIGTERM (a job scheduler's stop, `kill`) cleans up as Ctrl-C does: no hidden .out.* folder, no --out."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mvg_backend", "demo", "--size", "256", "--rounds", "200",
                             "--steps", "1000", "--out", str(out)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        staged = lambda: any(p.name.startswith(".run.") for p in tmp_path.iterdir())
        assert _wait_for(staged, 120), proc.communicate(timeout=5)
        time.sleep(1.0)  # let it get into the run
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated (SIGTERM): nothing was written" in err
    assert list(tmp_path.iterdir()) == []


def test_roi_mask_writes_nothing_when_an_output_is_unusable(tmp_path, capsys):
    src = tmp_path / "img.png"
    cv2.imwrite(str(src), (np.random.default_rng(0).random((48, 48)) * 255).astype(np.uint8))
    rc = roi_main(["mask", str(src), "--domain", "other", "--out", str(tmp_path / "m.png"),
                   "--overlay", str(tmp_path / "bad" / "dir" / "o.png")])
    assert rc == 2 and "--overlay" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]  # the mask was not left behind
    assert roi_main(["mask", str(src), "--domain", "other", "--out", str(tmp_path / "m.png"),
                     "--overlay", str(tmp_path / "o.png")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png", "m.png", "o.png"]


def test_the_random_model_honours_scheduler_device_and_dtype(tmp_path):
    """Without --checkpoint these options were ignored; now they shape the plumbing-check model too."""
    runs = {}
    for scheduler in ("ddim", "euler"):
        out = tmp_path / scheduler
        assert main(["demo", "--size", "32", "--rounds", "1", "--steps", "4", "--scheduler", scheduler,
                     "--out", str(out)]) == 0
        runs[scheduler] = cv2.imread(str(out / "frames" / "frame_001.png"))
    assert not np.array_equal(runs["ddim"], runs["euler"])
    from mvg_backend.pie.random_model import random_tiny_backend

    backend = random_tiny_backend(scheduler="pndm", dtype=torch.bfloat16)
    assert type(backend.scheduler).__name__ == "PNDMScheduler" and backend.dtype == torch.bfloat16
