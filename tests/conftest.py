"""Shared fixtures. Tests build tiny random models offline; nothing touches a model hub."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_components():
    """``(unet, vae, text_encoder, tokenizer, scheduler)``: tiny random SD 1.x parts (read-only!)."""
    from fixtures.tiny_checkpoints import make_tiny_sd_components

    return make_tiny_sd_components(seed=0)


@pytest.fixture()
def tiny_backend(tiny_components):
    from mvg_backend.pie import DiffusersBackend

    return DiffusersBackend(*tiny_components)


@pytest.fixture()
def phantom():
    """A 64x64 chest-like test image and a hard mask over its right half-lung region."""
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32) / 63.0
    image = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.5 * (xx + yy)], axis=-1).astype(np.float32)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 8:32] = 1.0
    return image, mask


# --- ComfyUI integration tests (marker `comfyui`) ---------------------------------------------------
# Tests marked `comfyui` talk to a real headless ComfyUI server (tests/comfyui_harness.py). They run when
# COMFYUI_DIR (a ComfyUI >= 0.3.64 checkout) and COMFYUI_PYTHON (the python of its venv, with the pack's
# requirements installed) are set, and are skipped otherwise. `bash scripts/test.sh --with-comfyui` sets
# both up (README, Tests).
#
# Two switches for CI (scripts/test.sh sets them):
#   MVG_REQUIRE_COMFYUI=1  a missing ComfyUI stops the run with the reason instead of skipping its tests;
#   MVG_NO_SKIPS=1         every skip (a test, or a module at collection) is reported as a failure, and a
#                          run in which anything was still skipped or nothing ran exits non-zero.

COMFYUI_SKIP_REASON = "set COMFYUI_DIR and COMFYUI_PYTHON to a ComfyUI >= 0.3.64 checkout; see README"
COMFYUI_CHECKPOINT_NAME = "mvg_tiny_sd15.safetensors"
# Errors that tests provoke on purpose (in any file, sharing one server). Any other traceback from the pack
# in the server's log fails the session (checked when the server stops) and test_pack_imports_cleanly.
COMFYUI_PROVOKED_ERRORS = ("InterruptProcessingException", "chain='sideways'", "image is constant",
                           "paste the report", "sampler='euler'", "'mvg_cine.dcm' has 5 frame(s)",
                           "connect an MVG LLM Settings node to llm", "'auto' takes the domain from the prompts")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "comfyui: needs a real ComfyUI checkout (set COMFYUI_DIR and COMFYUI_PYTHON); skipped otherwise"
    )


def _comfyui_unavailable() -> str | None:
    from comfyui_harness import find_comfyui

    found = find_comfyui()
    return f"{COMFYUI_SKIP_REASON} ({found})" if isinstance(found, str) else None


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("comfyui") is not None]
    if not marked:
        return
    reason = _comfyui_unavailable()
    if reason and _flag("MVG_REQUIRE_COMFYUI"):
        raise pytest.UsageError(f"MVG_REQUIRE_COMFYUI=1 and {len(marked)} comfyui test(s) selected, but: {reason}")
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in marked:
            item.add_marker(skip)


def _no_skip_failure(report, what: str) -> None:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{what} was skipped, and MVG_NO_SKIPS=1 allows no skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _flag("MVG_NO_SKIPS") and not hasattr(report, "wasxfail"):
        _no_skip_failure(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _flag("MVG_NO_SKIPS"):  # e.g. a module-level importorskip
        _no_skip_failure(report, collector.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if not _flag("MVG_NO_SKIPS"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = reporter.stats if reporter is not None else {}
    leftover = {k: len(stats.get(k, ())) for k in ("skipped", "xfailed", "xpassed") if stats.get(k)}
    if leftover and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"MVG_NO_SKIPS=1: the run still has {leftover}", red=True)
    if session.testscollected == 0 and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def _unexpected_pack_tracebacks(server) -> list[str]:
    return [t for t in server.pack_tracebacks() if not any(e in t for e in COMFYUI_PROVOKED_ERRORS)]


@pytest.fixture(scope="session")
def comfyui_server(tmp_path_factory):
    """One headless ComfyUI for the whole session, with the pack linked and a tiny SD1.5 checkpoint.

    The server's base directory is a fresh temp folder (``custom_nodes/ComfyUI-MVG`` -> this repo,
    ``models/checkpoints/mvg_tiny_sd15.safetensors``, ``input/``, ``output/``, ``comfyui.log``).
    """
    from pathlib import Path

    from comfyui_harness import ComfyUIServer, find_comfyui
    from fixtures.tiny_checkpoints import write_tiny_sd15_comfy_checkpoint

    found = find_comfyui()
    if isinstance(found, str):
        pytest.skip(f"{COMFYUI_SKIP_REASON} ({found})")
    comfyui_dir, python = found
    base = tmp_path_factory.mktemp("comfyui")
    # COMFYUI_TEST_THREADS: torch CPU threads of the server (default 1; 0 = torch's default)
    threads = int(os.environ.get("COMFYUI_TEST_THREADS", "1")) or None
    server = ComfyUIServer(comfyui_dir, python, base, pack_dir=Path(__file__).resolve().parents[1], threads=threads)
    server.prepare()

    def write_checkpoint():  # while ComfyUI boots; renamed into place so it is never seen half-written
        part = server.checkpoints_dir / (COMFYUI_CHECKPOINT_NAME + ".part")
        write_tiny_sd15_comfy_checkpoint(part, seed=0)
        os.replace(part, server.checkpoints_dir / COMFYUI_CHECKPOINT_NAME)

    server.start(timeout=float(os.environ.get("COMFYUI_START_TIMEOUT", "240")), while_booting=write_checkpoint)
    try:
        yield server
        # whatever order the tests ran in: none of them may have left a traceback from the pack in the log
        unexpected = _unexpected_pack_tracebacks(server)
        assert not unexpected, "tracebacks from the pack in the ComfyUI log:\n\n" + "\n\n".join(unexpected)
        assert server.is_running(), "the ComfyUI server died during the session\n" + server.log_tail()
    finally:
        server.stop()
