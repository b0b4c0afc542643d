"""MVG SEINE Loader + MVG SEINE Transition inside a real, headless ComfyUI (>= 0.3.64), on the CPU.

Reuses the session server of tests/conftest.py (its tiny SD1.5-shaped checkpoint gives the VAE and the
real-shaped CLIP-L). A tiny random SEINE UNet with cross_attention_dim 768 goes into the server's
``models/seine`` (ComfyUI re-lists model folders per request, so writing it after start-up is enough).
Skipped without COMFYUI_DIR / COMFYUI_PYTHON.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from comfyui_harness import ComfyUIError, history_status
from fixtures.tiny_seine import write_tiny_seine_checkpoint

pytestmark = pytest.mark.comfyui

CKPT = "mvg_tiny_sd15.safetensors"  # conftest.COMFYUI_CHECKPOINT_NAME
SEINE = "mvg_tiny_seine.safetensors"
SIZE = 64
TRANSITION_INPUTS = ["keyframes", "vae", "clip", "frames", "steps", "cfg", "sampler", "seed", "prompt", "method"]


def _png(path):
    Image = pytest.importorskip("PIL.Image")

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def seine_inputs(comfyui_server):
    """Puts the tiny SEINE into models/seine and three keyframe PNGs into input/; returns their RGB arrays."""
    Image = pytest.importorskip("PIL.Image")

    srv = comfyui_server
    seine_dir = srv.base_dir / "models" / "seine"
    seine_dir.mkdir(parents=True, exist_ok=True)
    # 8 GroupNorm groups, declared in the file's metadata: the loader must read them from there
    staged = write_tiny_seine_checkpoint(srv.base_dir / SEINE, seed=0, cross_attention_dim=768, norm_num_groups=8)
    os.replace(staged, seine_dir / SEINE)  # never listed half-written

    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    frames = {}
    for i, name in enumerate(("seine_a.png", "seine_b.png", "seine_c.png")):
        disc = np.clip((0.2 + 0.05 * i - np.hypot(xx - 0.35 - 0.15 * i, yy - 0.5)) * 20, 0, 1)
        rgb = np.stack([0.2 + 0.7 * disc, 0.25 + 0.5 * disc, 0.3 + 0.5 * xx], axis=-1)
        rgb = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(srv.input_dir / name)
        frames[name] = rgb
    return frames


def _graph(prefix: str, *, keyframes: int = 2, with_model: bool = True, clip_skip: bool = False, frames: int = 5,
           steps: int = 3, sampler: str = "ddim", seed: int = 0, method: str = "seine",
           resolution: str | None = "native") -> dict:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "seine_a.png"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "seine_b.png"}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["3", 0]}},
        "6": {"class_type": "MVG_SEINETransition", "inputs": {
            "keyframes": ["4", 0], "vae": ["1", 2], "clip": ["1", 1], "frames": frames, "steps": steps, "cfg": 8.0,
            "sampler": sampler, "seed": seed, "prompt": "smooth transition", "method": method}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": prefix}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["6", 1]}},
    }
    if resolution is not None:  # None: leave the optional input out, as an API prompt saved before it existed
        graph["6"]["inputs"]["resolution"] = resolution
    if keyframes == 3:
        graph["9"] = {"class_type": "LoadImage", "inputs": {"image": "seine_c.png"}}
        graph["10"] = {"class_type": "ImageBatch", "inputs": {"image1": ["4", 0], "image2": ["9", 0]}}
        graph["6"]["inputs"]["keyframes"] = ["10", 0]
    if with_model:
        graph["5"] = {"class_type": "MVG_SEINELoader", "inputs": {"seine_name": SEINE, "dtype": "auto"}}
        graph["6"]["inputs"]["seine_model"] = ["5", 0]
        graph["12"] = {"class_type": "PreviewAny", "inputs": {"source": ["5", 1]}}
    if clip_skip:
        graph["11"] = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": ["1", 1], "stop_at_clip_layer": -2}}
        graph["6"]["inputs"]["clip"] = ["11", 0]
    return graph


def test_object_info_lists_the_seine_nodes(comfyui_server, seine_inputs):
    info = comfyui_server.object_info()
    loader = info["MVG_SEINELoader"]
    assert SEINE in loader["input"]["required"]["seine_name"][1]["options"]
    assert loader["input"]["required"]["dtype"][1]["options"] == ["auto", "fp16", "bf16", "fp32"]
    assert loader["output"] == ["MVG_SEINE_MODEL", "STRING"] and loader["output_name"] == ["seine_model", "summary"]

    node = info["MVG_SEINETransition"]
    # widgets_values in saved workflows are positional: the order is part of the interface
    assert node["input_order"]["required"] == TRANSITION_INPUTS, node["input_order"]
    # resolution was appended last, after every older widget, and is optional so older API prompts validate
    assert node["input_order"]["optional"] == ["seine_model", "resolution", "mask"]
    opt = node["input"]["optional"]
    assert opt["resolution"][1]["options"] == ["512 (official)", "native"]
    assert opt["resolution"][1]["default"] == "512 (official)"
    assert node["input"]["optional"]["seine_model"][0] == "MVG_SEINE_MODEL"
    assert node["input"]["optional"]["mask"][0] == "MASK"
    req = node["input"]["required"]
    defaults = {name: req[name][1].get("default") for name in TRANSITION_INPUTS[3:]}
    # a CPU user's first run: ddim 50 (the official script, and the engine's defaults, are ddpm 250)
    assert defaults == {"frames": 16, "steps": 50, "cfg": 8.0, "sampler": "ddim", "seed": 0,
                        "prompt": "smooth transitionsmooth transition.", "method": "seine"}
    assert req["method"][1]["options"] == ["seine", "optical_flow", "crossfade"]
    assert node["output"] == ["IMAGE", "STRING"] and node["output_name"] == ["frames", "summary"]


def test_seine_graph_runs_on_cpu(comfyui_server, seine_inputs):
    """Load Checkpoint (VAE, CLIP) + MVG_SEINELoader(models/seine) -> MVG_SEINETransition -> SaveImage."""
    srv = comfyui_server
    with srv.events() as events:
        entry = srv.run(_graph("seine_run"), timeout=300)
        events.wait_for(lambda m: m.get("type") == "executing" and m["data"].get("node") is None
                        and m["data"].get("prompt_id") == entry["prompt_id"], timeout=10)
        progress = [d for d in events.of_type("progress", entry["prompt_id"]) if d.get("node") == "6"]
    frames = [_png(p) for p in srv.output_images(entry, "7")]
    assert len(frames) == 5 and all(f.shape == (SIZE, SIZE, 3) for f in frames)
    assert np.array_equal(frames[0], seine_inputs["seine_a.png"])
    assert np.array_equal(frames[-1], seine_inputs["seine_b.png"])
    assert len({f.tobytes() for f in frames[1:-1]}) == 3, "the generated frames are all alike"
    # 3 ddim steps, then one VAE decode chunk (3 in-between frames)
    assert progress and progress[-1]["value"] == progress[-1]["max"] == 4, progress
    summary = entry["outputs"]["8"]["text"][0]
    assert summary.startswith(f"SEINE model: {SEINE}")
    assert "by seine (ddim, 3 steps, cfg 8.0, prompt 'smooth transition', seed 0)" in summary
    assert "frame 2: interpolated (seine, seed 0), keyframe 1 -> 2, 2/3" in summary
    assert f"image {SIZE}x{SIZE}; SEINE worked at {SIZE}x{SIZE} (resolution native)" in summary
    # the loader read the group count from the file's metadata, and both summaries say so
    loader_summary = entry["outputs"]["12"]["text"][0]
    assert loader_summary.startswith(f"SEINE UNet '{SEINE}': widths (32, 64), heads (1, 2), text dim 768")
    assert "GroupNorm 8 groups declared in the safetensors metadata" in loader_summary
    assert f"note: {loader_summary}" in summary

    # a clip-skip is undone for SEINE (it was trained on CLIP's last layer), and said so
    skipped = srv.run(_graph("seine_skip", clip_skip=True), timeout=300)
    assert "clip-skip (CLIPSetLastLayer -2)" in skipped["outputs"]["8"]["text"][0]
    assert [_png(p).tobytes() for p in srv.output_images(skipped, "7")] == [f.tobytes() for f in frames]


def test_the_default_resolution_is_the_official_512_and_frames_come_back_at_the_keyframes_size(
        comfyui_server, seine_inputs):
    """An API prompt without the (newer, optional) resolution input runs at the official 512x512."""
    srv = comfyui_server
    entry = srv.run(_graph("seine_official", frames=3, steps=1, resolution=None), timeout=300)
    frames = [_png(p) for p in srv.output_images(entry, "7")]
    assert len(frames) == 3 and all(f.shape == (SIZE, SIZE, 3) for f in frames)
    assert np.array_equal(frames[0], seine_inputs["seine_a.png"])
    assert np.array_equal(frames[-1], seine_inputs["seine_b.png"])
    summary = entry["outputs"]["8"]["text"][0]
    assert f"image {SIZE}x{SIZE}; SEINE worked at 512x512 (resolution 512 (official))" in summary
    assert f"generated frames are resized back to {SIZE}x{SIZE}" in summary


def test_a_prompt_longer_than_one_clip_context_is_cut_and_noted(comfyui_server, seine_inputs):
    """The ComfyUI SEINE backend counts with the CLIP's own tokenizer, so the engine cuts to whole words (as PIE)."""
    graph = _graph("seine_long_prompt", frames=3, steps=1)
    prompt = " ".join(["the lesion grows slowly"] * 30)
    graph["6"]["inputs"]["prompt"] = prompt
    summary = comfyui_server.run(graph, timeout=300)["outputs"]["8"]["text"][0]
    note = next(line for line in summary.splitlines() if "CLIP tokens" in line)
    # 30 x 5 tokens ("lesion" is two), as SD's own tokenizer counts them; 15 repeats fit
    assert note.startswith("note: the prompt has 150 CLIP tokens, more than the 75 that fit; it was cut after "
                           "'lesion grows slowly', dropping 'the lesion grows slowly the lesion"), note
    assert note.count("the lesion grows slowly") == 15


def test_without_a_model_the_fallback_runs_and_says_so(comfyui_server, seine_inputs):
    srv = comfyui_server
    entry = srv.run(_graph("seine_fallback", keyframes=3, with_model=False, frames=4), timeout=120)
    frames = [_png(p) for p in srv.output_images(entry, "7")]
    assert len(frames) == 7  # 2 transitions x 4 frames, the middle keyframe once
    for position, name in ((0, "seine_a.png"), (3, "seine_b.png"), (6, "seine_c.png")):
        assert np.array_equal(frames[position], seine_inputs[name])
    summary = entry["outputs"]["8"]["text"][0]
    assert "no SEINE model connected" in summary and "interpolated (optical_flow)" in summary


def test_a_bad_sampler_value_fails_clearly(comfyui_server, seine_inputs):
    srv = comfyui_server
    graph = _graph("seine_bad", sampler="euler", seed=5)
    try:
        prompt_id = srv.post_prompt(graph)
    except ComfyUIError as err:  # a ComfyUI that validates V3 combos rejects it up front
        assert "6" in getattr(err, "body", {}).get("node_errors", {}), err
        return
    entry = srv.wait_history(prompt_id, timeout=120)
    status, events = history_status(entry)
    assert status == "error" and "execution_error" in events, (status, events)
    error = dict(m for m in entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_SEINETransition"
    assert error["exception_type"].endswith("MVGInputError") and "sampler='euler'" in error["exception_message"]


def test_cancel_interrupts_a_seine_run(comfyui_server, seine_inputs):
    """POST /interrupt during a long run: stopped within a model step or so, recorded as interrupted."""
    srv = comfyui_server
    graph = _graph("seine_cancel", steps=1000, seed=77)  # 1000 ddim steps: far longer than the test waits
    with srv.events() as events:
        prompt_id = srv.post_prompt(graph)
        first = events.wait_for(
            lambda m: m.get("data", {}).get("prompt_id") == prompt_id and (
                (m.get("type") == "progress" and m["data"].get("node") == "6" and m["data"]["value"] >= 3)
                or m.get("type") in ("execution_success", "execution_error", "execution_interrupted")),
            timeout=120)
        assert first["type"] == "progress", f"no progress from MVG_SEINETransition before the run ended: {first}"
        t0 = time.monotonic()
        srv.interrupt()
        entry = srv.wait_history(prompt_id, timeout=30)
        latency = time.monotonic() - t0
        done = max(d["value"] for d in events.of_type("progress", prompt_id) if d.get("node") == "6")
    status, kinds = history_status(entry)
    assert status == "error" and "execution_interrupted" in kinds, (status, kinds)
    assert dict(m for m in entry["status"]["messages"])["execution_interrupted"]["node_type"] == "MVG_SEINETransition"
    assert done < 1000 and latency < 5.0, (done, latency)
    assert not srv.output_images(entry, "7")
