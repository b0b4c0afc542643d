"""``batch --engine ray`` on a local Ray instance (2 CPUs, one for the module) with a tiny SD checkpoint and a tiny
SEINE: 6 cases on 2 workers, one broken, one that kills its worker mid-case. The good cases give the local
engine's files byte for byte; the broken one is recorded; the killed one is retried and finishes; a second run
does no work for finished cases. Also: the message without Ray, and the pack never importing Ray."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom
from fixtures.tiny_checkpoints import write_tiny_ldm_checkpoint
from fixtures.tiny_seine import one_torch_thread, write_tiny_seine_checkpoint  # noqa: F401 (fixture)
from mvg_backend.batch.models import ModelSpec
from mvg_backend.batch.ray_engine import TEST_KILL_ENV, RaySettings
from mvg_backend.cli import main
from mvg_backend.errors import MVGInputError

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray (requirements-dev.txt)")

GOOD = ("a", "b", "c", "d", "killme")
FAST = ["--domain", "chest_xray", "--stages", "2", "--rounds", "2", "--steps", "2", "--transition-frames", "3",
        "--transition-steps", "2", "--transition-sampler", "ddim", "--resolution", "native", "--fps", "4",
        "--no-progress"]
VOLATILE = ("created_utc", "timings_s")  # the only provenance entries that differ between two runs


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the module. The kill hook's variable is set before the workers start, so that
    they inherit it: the case "killme" kills its worker at its first model step, once."""
    os.environ[TEST_KILL_ENV] = "killme"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        del os.environ[TEST_KILL_ENV]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six cases in a CSV (one broken image) and the model files."""
    root = tmp_path_factory.mktemp("cohort")
    for i, name in enumerate((*GOOD, "broken")):
        gray = chest_phantom(64, seed=i)["image"]
        cv2.imwrite(str(root / f"{name}.png"), (gray * 255).round().astype(np.uint8))
        (root / f"{name}.txt").write_text("Small left pleural effusion.", encoding="utf-8")
    (root / "broken.png").write_bytes(b"not an image")
    rows = "".join(f"{n},{n}.png,{n}.txt,{'4' if n == 'c' else ''}\n" for n in (*GOOD, "broken"))
    (root / "cases.csv").write_text("case,image,report,rounds\n" + rows, encoding="utf-8")
    ckpt, _ = write_tiny_ldm_checkpoint(root / "tiny.safetensors", config_dir=root / "cfg")
    seine = write_tiny_seine_checkpoint(root / "seine.safetensors", cross_attention_dim=32)
    models = ["--checkpoint", str(ckpt), "--config", str(root / "cfg"), "--seine", str(seine)]
    return {"root": root, "csv": root / "cases.csv", "models": models}


def _summary(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _provenance(data: bytes) -> dict:
    prov = json.loads(data)
    return {k: v for k, v in prov.items() if k not in VOLATILE}


def test_ray_batch_equals_local_with_a_broken_case_and_a_killed_worker(ray_instance, cohort, tmp_path, capsys,
                                                                         one_torch_thread):
    local, remote = tmp_path / "local", tmp_path / "ray"
    # the local engine runs on this process's single torch thread, a Ray worker on its --cpus-per-worker (1)
    assert main(["batch", str(cohort["csv"]), "--out", str(local), *cohort["models"], *FAST]) == 1
    capsys.readouterr()
    assert main(["batch", str(cohort["csv"]), "--engine", "ray", "--workers", "2", "--out", str(remote),
                 *cohort["models"], *FAST]) == 1
    printed = capsys.readouterr().out
    rows = _summary(remote / "summary.csv")
    assert {n: rows[n]["status"] for n in rows} == {**{n: "ok" for n in GOOD}, "broken": "failed"}
    assert "could not be read as an image" in rows["broken"]["error"]
    assert "6 case(s): 5 ok, 0 skipped (already finished), 1 failed" in printed
    assert (remote / ".mvg-test-killed-killme").is_file()  # the hook did kill the worker running "killme"
    assert rows["killme"]["attempts"] == "2" and all(rows[n]["attempts"] in ("1", "2") for n in GOOD)
    assert {rows[n]["worker"].split("@")[0] for n in rows} == {"w0", "w1"}  # both workers ran cases
    assert all(float(rows[n]["load_seconds"]) > 0 for n in rows), rows
    assert all(float(rows[n]["seconds"]) > 0 for n in GOOD), rows
    assert "model load per worker: w" in printed

    for name in GOOD:  # the same files, byte for byte, as the local engine's
        ours, theirs = _files(remote / name), _files(local / name)
        assert ours.keys() == theirs.keys() and "video.mp4" in ours and "frames/frame_000.png" in ours, name
        assert _provenance(ours.pop("provenance.json")) == _provenance(theirs.pop("provenance.json")), name
        assert ours == theirs, name
    prov = json.loads((remote / "c" / "provenance.json").read_text())
    assert prov["config"]["rounds"] == 4 and {f["method"] for f in prov["frames"]} >= {"seine"}
    assert not (remote / "broken").exists()
    hidden = sorted(p.name for p in remote.iterdir() if p.name.startswith("."))
    assert hidden == [".mvg-test-killed-killme"]  # the killed run's staging folder was cleared before the retry

    # resume: the fixed broken case runs, the finished ones are skipped untouched
    mtimes = {n: (remote / n / "video.mp4").stat().st_mtime_ns for n in GOOD}
    cv2.imwrite(str(cohort["root"] / "broken.png"), (chest_phantom(64, seed=9)["image"] * 255).astype(np.uint8))
    assert main(["batch", str(cohort["csv"]), "--engine", "ray", "--out", str(remote), *cohort["models"],
                 *FAST]) == 0
    rows = _summary(remote / "summary.csv")
    assert {n: rows[n]["status"] for n in rows} == {**{n: "skipped" for n in GOOD}, "broken": "ok"}
    assert {n: (remote / n / "video.mp4").stat().st_mtime_ns for n in GOOD} == mtimes
    assert rows["a"]["frames"] == rows["broken"]["frames"] != "0" and rows["a"]["worker"] == ""


def test_ray_batch_records_a_case_whose_worker_dies_every_time(ray_instance, cohort, tmp_path):
    data = tmp_path / "one.csv"
    data.write_text(f"case,image,report\nkillme,{cohort['root'] / 'a.png'},{cohort['root'] / 'a.txt'}\n")
    out = tmp_path / "out"
    assert main(["batch", str(data), "--engine", "ray", "--worker-retries", "0", "--out", str(out),
                 *cohort["models"], *FAST]) == 1
    row = _summary(out / "summary.csv")["killme"]
    assert row["status"] == "failed" and row["attempts"] == "1"
    assert row["error"].startswith("its worker process died on each of 1 attempt(s)")
    assert not (out / "killme").exists() and not [p for p in out.iterdir() if p.name.startswith(".killme.")]


def test_without_ray_the_message_gives_the_install_command(cohort, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" raises ImportError
    assert main(["batch", str(cohort["csv"]), "--engine", "ray", "--out", str(tmp_path / "o"), *FAST]) == 2
    assert "pip install 'comfyui-mvg[ray]'" in capsys.readouterr().err


def test_the_pack_never_imports_ray_at_load():
    code = ("import sys, mvg_backend.cli, mvg_backend.batch, mvg_backend.batch.ray_engine; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


@pytest.mark.parametrize("argv,match", [
    (["--workers", "2"], "--workers only applies to the Ray engine: add --engine ray"),
    (["--engine", "ray", "--gpus-per-worker", "1"], "with --device cpu: the workers would hold GPUs"),
    (["--engine", "ray", "--cpus-per-worker", "0"], "--cpus-per-worker 0: give a number above 0"),
    (["--engine", "ray", "--workers", "0"], "--workers 0: give 1 or more"),
    (["--engine", "openai-compatible"], "give the report engine as --prompts-engine openai-compatible"),
])
def test_ray_options_are_checked(cohort, tmp_path, capsys, argv, match):
    assert main(["batch", str(cohort["csv"]), *argv, "--out", str(tmp_path / "o"), *FAST]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cuda_device_needs_gpus_per_worker():
    with pytest.raises(MVGInputError, match="--gpus-per-worker 0: Ray would give the workers no GPU"):
        RaySettings(gpus_per_worker=0).checked(ModelSpec(device="cuda"))
    assert RaySettings().checked(ModelSpec(device="cuda:0")).gpus_per_worker == 1.0
