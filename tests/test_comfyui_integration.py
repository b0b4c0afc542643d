"""The pack inside a real, headless ComfyUI (>= 0.3.64), driven over HTTP.

Needs COMFYUI_DIR and COMFYUI_PYTHON (skipped otherwise; see tests/conftest.py). One server serves the
whole session (fixture ``comfyui_server``); its checkpoint is a tiny random SD1.5-shaped file that the
stock CheckpointLoaderSimple detects as SD1.5 (tests/fixtures/tiny_checkpoints.py). Everything runs on
CPU at 64x64.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from comfyui_harness import history_status
from conftest import COMFYUI_PROVOKED_ERRORS as PROVOKED_ERRORS

pytestmark = pytest.mark.comfyui

CKPT = "mvg_tiny_sd15.safetensors"  # conftest.COMFYUI_CHECKPOINT_NAME
SIZE = 64
ROI = (slice(16, 48), slice(12, 40))  # rows, cols of the region the tests let PIE edit
PROMPTS = "a chest x-ray with a small right pleural effusion\na chest x-ray with a large right pleural effusion"

PROGRESSIVE_EDIT_INPUTS = {
    "model": "MODEL", "clip": "CLIP", "vae": "VAE", "image": "IMAGE", "mask": "MASK", "prompts": "MVG_PROMPTS",
    "rounds": "INT", "strength": "FLOAT", "steps": "INT", "cfg": "FLOAT", "sampler_name": "COMBO",
    "scheduler": "COMBO", "beta1": "FLOAT", "beta2": "FLOAT", "seed": "INT", "chain": "COMBO",
    "include_original": "BOOLEAN",
}


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _png(path):
    Image = pytest.importorskip("PIL.Image")

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def _input_image() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 RGB test image with structure, and the ROI as a bool mask."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    rgb = np.stack([0.15 + 0.7 * xx, 0.2 + 0.6 * yy, 0.5 + 0.3 * np.sin(6 * xx) * np.cos(5 * yy)], axis=-1)
    rgb[40:56, 44:60] = (0.9, 0.85, 0.8)  # a bright patch outside the ROI
    roi = np.zeros((SIZE, SIZE), bool)
    roi[ROI] = True
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), roi


@pytest.fixture(scope="module")
def input_png(comfyui_server):
    """``(filename in ComfyUI's input dir, rgb uint8, roi bool)``. The ROI is transparent (alpha 0), so
    LoadImage's MASK output (1 - alpha) is 1 exactly there: the mask-editor workflow."""
    Image = pytest.importorskip("PIL.Image")

    rgb, roi = _input_image()
    alpha = np.where(roi, 0, 255).astype(np.uint8)
    name = "mvg_test_input.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(comfyui_server.input_dir / name)
    return name, rgb, roi


def _stock_graph(prefix: str, steps: int = 4) -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a chest x-ray", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": 0, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
    }


def _mvg_graph(image_name: str, prefix: str, *, rounds: int = 2, steps: int = 4, strength: float = 0.5,
               seed: int = 0, chain: str = "latent", summary_node: bool = True) -> dict:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "3": {"class_type": "MVG_PromptList", "inputs": {"text": PROMPTS, "negative": "blurry"}},
        "4": {"class_type": "MVG_ProgressiveEdit", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["2", 0], "mask": ["2", 1],
            "prompts": ["3", 0], "rounds": rounds, "strength": strength, "steps": steps, "cfg": 7.5,
            "sampler_name": "ddim", "scheduler": "ddim_uniform", "beta1": 0.01, "beta2": 0.75, "seed": seed,
            "chain": chain, "include_original": True}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": prefix + "_frames"}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["4", 1], "filename_prefix": prefix + "_keyframes"}},
    }
    if summary_node:
        graph["7"] = {"class_type": "PreviewAny", "inputs": {"source": ["4", 2]}}
    return graph


# --------------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------------
def test_pack_imports_cleanly(comfyui_server):
    srv = comfyui_server
    log = srv.log_text()
    assert srv.import_failures() == [], srv.log_tail()
    assert f"custom_nodes/{srv.pack_name}" in log, "the pack was not even tried:\n" + srv.log_tail()
    for bad in ("Error while calling comfy_entrypoint", "Skip " + str(srv.custom_nodes_dir / srv.pack_name),
                "Cannot import " + str(srv.custom_nodes_dir / srv.pack_name)):
        assert bad not in log, srv.log_tail()
    tbs = [t for t in srv.pack_tracebacks() if not any(e in t for e in PROVOKED_ERRORS)]
    assert tbs == [], "\n\n".join(tbs)


def test_object_info_lists_the_nodes(comfyui_server):
    info = comfyui_server.object_info()
    for node in ("MVG_PromptList", "MVG_ProgressiveEdit"):
        assert node in info, f"{node} missing from /object_info"
        assert info[node]["python_module"].startswith("custom_nodes."), info[node]["python_module"]

    pl = info["MVG_PromptList"]
    req = pl["input"]["required"]
    assert req["text"][0] == "STRING" and req["text"][1].get("multiline") is True
    assert req["negative"][0] == "STRING"
    assert pl["output"] == ["MVG_PROMPTS"]

    pe = info["MVG_ProgressiveEdit"]
    req = pe["input"]["required"]
    # widgets_values in saved workflows are positional: the order is part of the interface
    assert pe["input_order"]["required"] == list(PROGRESSIVE_EDIT_INPUTS), pe["input_order"]
    for name, type_ in PROGRESSIVE_EDIT_INPUTS.items():
        got = req[name][0]
        # V3 combos report "COMBO" (+ options); V1-style combos a list of options
        assert got == type_ or (type_ == "COMBO" and isinstance(got, list)), (name, got)
    options = lambda name: req[name][1]["options"] if req[name][0] == "COMBO" else req[name][0]  # noqa: E731
    assert options("chain") == ["latent", "pixel"]
    stock = info["KSampler"]["input"]["required"]
    assert set(options("sampler_name")) == set(stock["sampler_name"][0])
    assert set(options("scheduler")) == set(stock["scheduler"][0])
    assert pe["output"] == ["IMAGE", "IMAGE", "STRING"]
    assert pe["output_name"] == ["frames", "keyframes", "summary"]


def test_stock_graph_runs_on_tiny_checkpoint(comfyui_server):
    """Proves the harness and the checkpoint: stock nodes only, 64x64, 4 steps."""
    srv = comfyui_server
    entry = srv.run(_stock_graph("stock"), timeout=180)
    paths = srv.output_images(entry, "7")
    assert len(paths) == 1 and paths[0].is_file(), paths
    img = _png(paths[0])
    assert img.shape == (SIZE, SIZE, 3)
    assert img.std() > 1.0, "decoded image is flat: the sampler or VAE produced nothing"
    log = srv.log_text()
    # detected as SD 1.x: the SD1 CLIP is what gets loaded (an SD2/SDXL detection would load another)
    assert "SD1ClipModel" in log, srv.log_tail()
    assert "model_type EPS" in log, srv.log_tail()


@pytest.mark.parametrize("chain", ["latent", "pixel"])
def test_progressive_edit_graph_executes(comfyui_server, input_png, chain):
    """CheckpointLoaderSimple + LoadImage (mask = transparent ROI) -> MVG_PromptList -> MVG_ProgressiveEdit
    -> SaveImage x2 + PreviewAny(summary): 64x64, rounds 2, steps 4, strength 0.5."""
    srv = comfyui_server
    name, rgb, roi = input_png
    t0 = time.monotonic()
    with srv.events() as events:
        entry = srv.run(_mvg_graph(name, f"mvg_{chain}", chain=chain), timeout=300)
        elapsed = time.monotonic() - t0
        events.wait_for(lambda m: m.get("type") == "executing" and m["data"].get("node") is None
                        and m["data"].get("prompt_id") == entry["prompt_id"], timeout=10)
        progress = [d for d in events.of_type("progress", entry["prompt_id"]) if d.get("node") == "4"]
    # the node reports progress (comfy.utils.ProgressBar): 2 rounds x ceil(0.5 * 4) model steps
    assert progress, "MVG_ProgressiveEdit sent no progress messages"
    assert progress[-1]["value"] == progress[-1]["max"] == 4, progress[-3:]

    frames = [_png(p) for p in srv.output_images(entry, "5")]
    keyframes = [_png(p) for p in srv.output_images(entry, "6")]
    # 2 stages share rounds=2 -> 1 round each; include_original puts the input first in both
    assert len(frames) == 3, f"expected original + 2 rounds, got {len(frames)} frames"
    assert len(keyframes) == 3, f"expected original + 1 keyframe per stage, got {len(keyframes)}"
    for f in frames + keyframes:
        assert f.shape == (SIZE, SIZE, 3)

    np.testing.assert_array_equal(frames[0], rgb, err_msg="frame 0 must be the original")
    np.testing.assert_array_equal(keyframes[-1], frames[-1], err_msg="last keyframe = last frame")
    for k, f in enumerate(frames[1:], start=1):
        np.testing.assert_array_equal(f[~roi], rgb[~roi], err_msg=f"frame {k} changed pixels outside the mask")
        diff = np.abs(f[roi].astype(int) - rgb[roi].astype(int))
        assert diff.max() > 0 and diff.mean() > 0.5, f"frame {k} did not change inside the mask"
    assert not np.array_equal(frames[1], frames[2]), "the two stages produced identical frames"

    summary = entry["outputs"]["7"]["text"][0]
    assert "2 stage(s)" in summary and "frame 2" in summary and f"chain {chain}" in summary, summary
    print(f"\nMVG_ProgressiveEdit graph (chain {chain}): {elapsed:.1f} s")


def test_progressive_edit_rejects_a_bad_combo_value(comfyui_server, input_png):
    """An API client may send any string for a combo. ComfyUI 0.3.64 validates only V1 (list) combos,
    not V3 ``io.Combo`` inputs, so the graph is queued; the node itself must then fail clearly
    instead of running with a value it does not know."""
    from comfyui_harness import PromptRejected

    srv = comfyui_server
    graph = _mvg_graph(input_png[0], "bad", seed=99, summary_node=False)
    graph["4"]["inputs"]["chain"] = "sideways"
    try:
        prompt_id = srv.post_prompt(graph)
    except PromptRejected as err:  # a ComfyUI that validates V3 combos
        assert "4" in err.body.get("node_errors", {}), err.body
        return
    entry = srv.wait_history(prompt_id, timeout=120)
    status, events = history_status(entry)
    assert status == "error" and "execution_error" in events, (status, events)
    error = dict(m for m in entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_ProgressiveEdit", error
    assert "chain" in error["exception_message"] and "sideways" in error["exception_message"], error
    assert not srv.output_images(entry, "5")


def test_cancel_interrupts_progressive_edit(comfyui_server, input_png):
    """POST /interrupt during a long run: the history records an interruption, within seconds."""
    srv = comfyui_server
    # seed 1234 so that no earlier result is cached; 20 rounds x 10 model steps is >> 10 s on CPU
    graph = _mvg_graph(input_png[0], "cancel", rounds=20, steps=20, seed=1234, summary_node=False)
    with srv.events() as events:
        prompt_id = srv.post_prompt(graph)
        # cancel once the node is inside its rounds: after its 3rd model step (or stop at the prompt's end)
        first = events.wait_for(
            lambda m: m.get("data", {}).get("prompt_id") == prompt_id and (
                (m.get("type") == "progress" and m["data"].get("node") == "4" and m["data"]["value"] >= 3)
                or m.get("type") in ("execution_success", "execution_error", "execution_interrupted")),
            timeout=120)
        assert first["type"] == "progress", f"no progress from MVG_ProgressiveEdit before the run ended: {first}"
        assert first["data"]["max"] == 200, first  # 20 rounds x ceil(0.5 * 20) steps
        assert srv.history(prompt_id) is None, "the long run finished before it could be cancelled"
        t0 = time.monotonic()
        srv.interrupt()
        entry = srv.wait_history(prompt_id, timeout=30)
        latency = time.monotonic() - t0
        done = max(d["value"] for d in events.of_type("progress", prompt_id) if d.get("node") == "4")
    assert done < 200, "the run went on to the end"

    status, events = history_status(entry)
    assert status == "error", (status, events)
    assert "execution_interrupted" in events, events
    assert "execution_success" not in events, events
    interrupted = dict(m for m in entry["status"]["messages"])["execution_interrupted"]
    assert interrupted["node_type"] == "MVG_ProgressiveEdit", interrupted
    assert latency < 5.0, f"Cancel took {latency:.1f} s to stop MVG_ProgressiveEdit"
    print(f"\ncancel: stopped after {done}/200 steps, {latency:.2f} s after POST /interrupt")
    assert not srv.output_images(entry, "5"), "an interrupted run must not save frames"

    # the server is healthy afterwards: a short run succeeds
    entry = srv.run(_mvg_graph(input_png[0], "after_cancel", rounds=1, steps=2, seed=7, summary_node=False),
                    timeout=120)
    # rounds=1 is fewer than the 2 stages: each stage still runs one round -> original + 2 frames
    assert len(srv.output_images(entry, "5")) == 3
