"""Bad inputs across the CLI and engine surfaces: each gives a clear error naming the input and the fix.

One row per case: an id, the input, and a fragment the message must contain. Command-line cases must exit
with status 2 (argparse's own refusals also exit 2), print no traceback, and leave nothing behind in the
working folder (no ``--out``, no hidden staging folder, no partial file). Engine cases must raise
``MVGInputError``. Cases found by the issue 9 fault-injection campaign are marked ``# issue 9``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest
import torch

from mvg_backend.cli import main as cli
from mvg_backend.errors import MVGInputError
from mvg_backend.io.dicom import read_dicom
from mvg_backend.io.files import read_image
from mvg_backend.pie import progressive_edit
from mvg_backend.pie.loading import load_pretrained, load_single_file
from mvg_backend.roi import postprocess, segment
from mvg_backend.roi.__main__ import main as roi_cli
from mvg_backend.seine import DiffusersSEINEBackend, load_seine_unet, transition_frames
from mvg_backend.seine.cli import main as seine_cli


@dataclass(frozen=True)
class Case:
    id: str
    input: str  # what the user gave, as they would write it
    run: Callable[[Path], Any]  # gets the case's working folder (see `workdir`)
    expect: str  # a fragment of the message


def _image(path: Path, size=(48, 48)) -> Path:
    cv2.imwrite(str(path), (np.random.default_rng(0).random((*size, 3)) * 255).astype(np.uint8))
    return path


def _pickled_list(d: Path) -> Path:
    torch.save([1, 2, 3], str(d / "list.ckpt"))
    return d / "list.ckpt"


def _int8_seine(d: Path) -> Path:
    from fixtures.tiny_seine import make_tiny_seine
    from safetensors.torch import save_file

    state = {k: (v * 100).to(torch.int8) for k, v in make_tiny_seine(3).state_dict().items()}
    save_file(state, str(d / "seine_int8.safetensors"))
    return d / "seine_int8.safetensors"


def _edit(**kw):
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    from fixtures.backends import FakeBackend

    args = dict(rounds=1, steps=4, mask=np.ones((32, 32), np.float32))
    args.update(kw)
    return progressive_edit(FakeBackend(), args.pop("image", image), args.pop("mask"),
                            args.pop("prompts", "a chest x-ray"), **args)


DEMO = ["demo", "--size", "32", "--rounds", "1", "--steps", "2"]
PIE = lambda d, *more: ["pie", "--image", str(d / "img.png"), "--prompt", "x", *more, "--out", str(d / "out")]  # noqa: E731
ROI = lambda d, *more: ["mask", str(d / "img.png"), "--domain", "other", *more]  # noqa: E731
SEINE = lambda d, *more: ["transition", "--keyframes", str(d / "img.png"), str(d / "img.png"), *more,  # noqa: E731
                          "--out", str(d / "out")]

CASES = [
    # --- python -m mvg_backend ---------------------------------------------------------------------------
    Case("device-unknown", "demo --device banana", lambda d: cli([*DEMO, "--device", "banana", "--out", str(d / "out")]),
         "--device 'banana' is not a torch device; use cpu, cuda"),  # issue 9: was ignored, exit 0
    Case("device-meta", "demo --device meta", lambda d: cli([*DEMO, "--device", "meta", "--out", str(d / "out")]),
         "'meta' holds no data"),
    Case("scheduler-unknown", "demo --scheduler lms",
         lambda d: cli([*DEMO, "--scheduler", "lms", "--out", str(d / "out")]), "invalid choice: 'lms'"),
    Case("steps-too-many", "demo --steps 5000", lambda d: cli([*DEMO[:-1], "5000", "--out", str(d / "out")]),
         "steps=5000 (--steps): use a whole number from 1 to 1000"),  # issue 9: diffusers ValueError traceback
    Case("rounds-too-many", "pie --rounds 100000", lambda d: cli(PIE(d, "--rounds", "100000")),
         "rounds=100000: use an integer in 1..200"),
    Case("demo-size-0", "demo --size 0", lambda d: cli(["demo", "--size", "0", "--out", str(d / "out")]),
         "--size 0: use 32..2048 pixels"),  # issue 9: cv2.error traceback
    Case("prompts-not-utf8", "pie --prompts latin1.txt", lambda d: cli(PIE(d)[:3] + [
        "--prompts", str(d / "latin1.txt"), "--out", str(d / "out")]),
         "is not UTF-8 text (byte 0xe9 at position 3); save it as UTF-8"),  # issue 9: UnicodeDecodeError
    Case("prompts-folder", "pie --prompts DIR", lambda d: cli(PIE(d)[:3] + [
        "--prompts", str(d / "adir"), "--out", str(d / "out")]), "is a folder; give a text file"),
    Case("image-folder", "pie --image DIR", lambda d: cli(["pie", "--image", str(d / "adir"), "--prompt", "x",
                                                           "--out", str(d / "out")]),
         "image file '{d}/adir' is a folder; give an image file"),  # issue 9: "does not exist"
    Case("checkpoint-folder", "pie --checkpoint DIR", lambda d: cli(PIE(d, "--checkpoint", str(d / "adir"))),
         "is a folder; pass a diffusers model folder as --model-dir"),
    Case("model-dir-file", "pie --model-dir FILE", lambda d: cli(PIE(d, "--model-dir", str(d / "img.png"))),
         "is a file; pass a single-file checkpoint as --checkpoint"),
    Case("seed-huge", "demo --seed 2**70", lambda d: cli([*DEMO, "--seed", str(2**70), "--out", str(d / "out")]),
         "seed=1180591620717411303424 (--seed): use an integer in 0..2**64-1"),  # campaign: OverflowError traceback
    Case("checkpoint-not-a-state-dict", "pie --checkpoint list.ckpt (a pickled list)", lambda d: cli(PIE(
        d, "--checkpoint", str(_pickled_list(d)))), "could not be loaded as an SD 1.x single file"),  # campaign
    Case("config-file", "pie --checkpoint X --config FILE", lambda d: cli(PIE(
        d, "--checkpoint", str(d / "x.safetensors"), "--config", str(d / "img.png"))), "config folder"),
    Case("convert-untrusted", "convert a.ckpt a.safetensors",
         lambda d: cli(["convert", str(d / "latin1.txt"), str(d / "a.safetensors")]), "Pass --trust-pickle"),
    Case("convert-folder", "convert DIR a.safetensors --trust-pickle",
         lambda d: cli(["convert", str(d / "adir"), str(d / "a.safetensors"), "--trust-pickle"]), "is a folder"),
    # --- python -m mvg_backend.roi -------------------------------------------------------------------------
    Case("roi-out-no-extension", "roi mask --out noext", lambda d: roi_cli(ROI(d, "--out", str(d / "noext"))),
         "has no extension; end it in .png"),  # issue 9: cv2.error traceback
    Case("roi-out-missing-folder", "roi mask --out missing/m.png",
         lambda d: roi_cli(ROI(d, "--out", str(d / "missing" / "m.png"))),
         "the folder '{d}/missing' does not exist; create it first"),  # issue 9: OSError traceback
    Case("roi-out-folder", "roi mask --out DIR", lambda d: roi_cli(ROI(d, "--out", str(d / "adir"))),
         "is a folder; give a file name, e.g."),  # issue 9: cv2.error traceback
    Case("roi-overlay-missing-folder", "roi mask --out m.png --overlay bad/dir/o.png",
         lambda d: roi_cli(ROI(d, "--out", str(d / "m.png"), "--overlay", str(d / "bad" / "dir" / "o.png"))),
         "--overlay"),  # issue 9: the mask was left behind
    Case("roi-overlay-same-file", "roi mask --out m.png --overlay m.png",
         lambda d: roi_cli(ROI(d, "--out", str(d / "m.png"), "--overlay", str(d / "m.png"))), "same file as --out"),
    Case("roi-chest-strip", "roi mask strip.png --domain chest_xray (8x2000 px)", lambda d: roi_cli([
        "mask", str(_image(d / "strip.png", (8, 2000))), "--domain", "chest_xray", "--out", str(d / "m.png")]),
         "a strip, not a frontal chest radiograph"),  # issue 9: IndexError inside scikit-image
    Case("roi-manifest-not-utf8", "roi eval latin1.csv DIR", lambda d: roi_cli(["eval", str(d / "latin1.csv"), str(d)]),
         "manifest '{d}/latin1.csv' is not UTF-8 text"),  # issue 9: UnicodeDecodeError
    Case("roi-eval-csv-suffix", "roi eval m.csv DIR --csv scores.txt",
         lambda d: roi_cli(["eval", str(d / "latin1.csv"), str(d), "--csv", str(d / "scores.txt")]),
         "--csv '{d}/scores.txt' ends in '.txt'; end it in .csv"),
    Case("roi-eval-limit", "roi eval m.csv DIR --limit 0",
         lambda d: roi_cli(["eval", str(d / "latin1.csv"), str(d), "--limit", "0"]), "--limit 0"),
    Case("roi-eval-data-file", "roi eval m.csv FILE", lambda d: roi_cli(["eval", str(d / "m.csv"), str(d / "img.png")]),
         "is a file; give the folder"),
    # --- python -m mvg_backend.seine -----------------------------------------------------------------------
    Case("seine-device-unknown", "transition --device banana",
         lambda d: seine_cli(SEINE(d, "--device", "banana")), "--device 'banana' is not a torch device"),
    Case("seine-steps", "transition --steps 5000", lambda d: seine_cli(SEINE(d, "--steps", "5000")),
         "steps=5000: use 1..1000"),
    Case("seine-frames", "transition --frames 100000 --method crossfade",
         lambda d: seine_cli(SEINE(d, "--frames", "100000", "--method", "crossfade")),
         "frames=100000: use 3..64 frames per transition"),  # campaign: ran out of time (memory grows with frames)
    Case("seine-checkpoint-folder", "transition --seine DIR --sd DIR",
         lambda d: seine_cli(SEINE(d, "--seine", str(d / "adir"), "--sd", str(d / "adir"))),
         "is a folder; give the checkpoint file in it"),  # issue 9: "does not exist"
    Case("seine-keyframe-folder", "transition --keyframes DIR img.png",
         lambda d: seine_cli(["transition", "--keyframes", str(d / "adir"), str(d / "img.png"), "--out", str(d / "out")]),
         "is a folder; give an image file"),
    Case("seine-int8", "transition --seine int8.safetensors", lambda d: seine_cli(SEINE(
        d, "--seine", str(_int8_seine(d)), "--sd", str(d / "adir"))), "holds int8 tensors"),  # issue 9
    # --- engine API ----------------------------------------------------------------------------------------
    Case("pie-strength-text", 'progressive_edit(strength="0.5")', lambda d: _edit(strength="0.5"),
         "strength='0.5': γ must be a number in 0.01..1"),  # issue 9: TypeError
    Case("pie-strength-tiny", "progressive_edit(strength=0.005)", lambda d: _edit(strength=0.005),
         "strength=0.005: γ must be a number in 0.01..1"),
    Case("pie-steps", "progressive_edit(steps=2000)", lambda d: _edit(steps=2000),
         "steps=2000: use an integer in 1..1000"),  # issue 9: ran 2000 steps per round
    Case("pie-guidance-nan", "progressive_edit(guidance=nan)", lambda d: _edit(guidance=float("nan")), "guidance"),
    Case("pie-rounds-bool", "progressive_edit(rounds=True)", lambda d: _edit(rounds=True), "rounds=True"),
    Case("pie-seed-float", "progressive_edit(seed=1.5)", lambda d: _edit(seed=1.5), "seed=1.5: use an integer"),
    Case("pie-too-many-stages", "progressive_edit(<a plan of 500 stages>, rounds=10)",
         lambda d: _edit(prompts=[f"stage {i}" for i in range(500)]),
         "500 stage(s) need 500 rounds in all"),  # campaign: ran 500 rounds (the cap is 200)
    Case("pie-image-object", "progressive_edit(image=<object array>)",
         lambda d: _edit(image=np.empty((32, 32, 3), dtype=object)), "data type object is not image data"),  # issue 9
    Case("pie-device", 'load_single_file(..., device="banana")',
         lambda d: load_single_file(d / "x.safetensors", device="banana"), "device 'banana' is not a torch device"),
    Case("pie-model-dir-device", 'load_pretrained(..., device="cuda:99")',
         lambda d: load_pretrained(d, device="cuda:99"), "device 'cuda:99'"),
    Case("roi-hint-int-list", "segment(hint=[3])", lambda d: segment(np.eye(32), "chest_xray", hint=[3]),
         "hint: 3 (int) is not text"),  # issue 9: AttributeError
    Case("roi-hint-int", "segment(hint=3)", lambda d: segment(np.eye(32), "chest_xray", hint=3), "hint=3: give words"),
    Case("roi-image-object", "segment(<object array>)",
         lambda d: segment(np.array([[1, 2], [3, 4]], dtype=object), "other"), "data type object is not image data"),
    Case("roi-user-mask-object", "segment(user_mask=<object array>)", lambda d: segment(
        np.eye(32), "other", user_mask=np.empty((32, 32), dtype=object)), "user mask: data type object"),
    Case("roi-chest-strip-api", "segment(<2000x8 image>, 'chest_xray')", lambda d: segment(
        np.random.default_rng(0).random((2000, 8)), "chest_xray"), "a strip, not a frontal chest radiograph"),
    Case("roi-too-small-api", "segment(<8x8 image>, 'chest_xray')", lambda d: segment(
        np.random.default_rng(0).random((8, 8)), "chest_xray"), "too small for automatic chest_xray analysis"),
    Case("roi-fundus-strip-api", "segment(<8x2000 image>, 'fundus')", lambda d: segment(
        np.random.default_rng(0).random((8, 2000, 3)), "fundus"), "a strip, not a fundus image"),  # campaign
    Case("roi-dilate-text", 'postprocess(dilate="5")', lambda d: postprocess(np.eye(8), dilate="5"),
         "dilate='5': use a number of pixels"),
    Case("roi-feather-nan", "postprocess(feather=nan)", lambda d: postprocess(np.eye(8), feather=float("nan")),
         "feather=nan"),
    Case("seine-folder-api", "load_seine_unet(DIR)", lambda d: load_seine_unet(d / "adir"), "is a folder"),
    Case("seine-int8-api", "load_seine_unet(int8.safetensors)", lambda d: load_seine_unet(_int8_seine(d)),
         "quantised or otherwise non-float weights"),  # issue 9: failed inside the network
    Case("seine-steps-api", "transition_frames(steps=5000)", lambda d: transition_frames(
        np.zeros((2, 16, 16, 3), np.float32), method="crossfade", steps=5000), "steps=5000"),
    Case("seine-device-api", 'DiffusersSEINEBackend.from_files(..., device="banana")',
         lambda d: DiffusersSEINEBackend.from_files(d / "s.safetensors", d, device="banana"), "device 'banana'"),
    Case("read-image-folder", "read_image(DIR)", lambda d: read_image(d / "adir"), "is a folder"),
    Case("read-dicom-folder", "read_dicom(DIR)", lambda d: read_dicom(d / "adir"), "is a folder (a DICOM series?)"),
]


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """``img.png``, ``latin1.txt`` (a prompt file in Latin-1), ``latin1.csv``, ``m.csv``, an empty
    ``x.safetensors`` and an empty ``adir/``."""
    _image(tmp_path / "img.png")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 lung\n".encode("latin-1"))
    (tmp_path / "latin1.csv").write_bytes("image,lungs\ncaf\xe9.png,m.png\n".encode("latin-1"))
    (tmp_path / "m.csv").write_text("image,lungs\nimg.png,img.png\n", encoding="utf-8")
    (tmp_path / "x.safetensors").write_bytes(b"")
    (tmp_path / "adir").mkdir()
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_a_clear_error(case: Case, workdir: Path, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    before = sorted(p.name for p in workdir.iterdir())
    try:
        returned = case.run(workdir)
    except MVGInputError as exc:
        message = str(exc)
    except SystemExit as exc:  # argparse's own refusals
        assert exc.code == 2
        message = capsys.readouterr().err
    else:
        assert returned == 2, f"{case.input}: exit status {returned}"
        message = capsys.readouterr().err
    assert case.expect.format(d=workdir) in message, message
    assert "Traceback" not in message.split("--- Logging error ---")[0]  # (a library's stale log handler: not ours)
    created = sorted(set(p.name for p in workdir.iterdir()) - set(before) - {"seine_int8.safetensors", "strip.png", "list.ckpt"})
    assert created == [], f"{case.input} left {created} behind"


def test_device_cuda_without_cuda(workdir, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli([*DEMO, "--device", "cuda", "--out", str(workdir / "out")]) == 2  # issue 9: was ignored, exit 0
    assert "--device 'cuda': this machine has no usable cuda device" in capsys.readouterr().err
    assert not (workdir / "out").exists()
