"""MVG_ROIMask inside a real, headless ComfyUI (marker ``comfyui``; see tests/conftest.py).

Reuses the session server of tests/test_comfyui_integration.py (fixture ``comfyui_server``): a synthetic
chest X-ray phantom goes through LoadImage -> MVG_ROIMask, alone, with a painted mask and a prompt hint,
into MVG_ProgressiveEdit, and with an unusable (constant) image.
"""

from __future__ import annotations

import numpy as np
import pytest

from comfyui_harness import history_status
from fixtures.roi_phantoms import chest_phantom
from mvg_backend.roi import segment

pytestmark = pytest.mark.comfyui

CKPT = "mvg_tiny_sd15.safetensors"  # conftest.COMFYUI_CHECKPOINT_NAME
SIZE = 128
ROI_INPUTS = {
    "image": "IMAGE", "domain": "COMBO", "region": "COMBO", "dilate": "INT", "feather": "FLOAT", "mask": "MASK",
    "combine": "COMBO", "prompts": "MVG_PROMPTS", "fill_holes": "BOOLEAN", "keep_largest": "INT", "eye": "COMBO",
    "rectangle": "STRING", "keep_mask": "MASK",
}
WIDGETS = {"domain": "chest_xray", "region": "auto", "dilate": 0, "feather": 0.0, "combine": "union",
           "fill_holes": False, "keep_largest": 0, "eye": "auto", "rectangle": "0.25, 0.25, 0.75, 0.75"}


def _png(path) -> np.ndarray:
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture(scope="module")
def chest_png(comfyui_server):
    """``(name, gray uint8)``: the phantom as an RGBA PNG whose alpha is 0 in the top-left corner (painted)."""
    Image = pytest.importorskip("PIL.Image")
    gray = (chest_phantom(SIZE)["image"] * 255).round().astype(np.uint8)
    alpha = np.full_like(gray, 255)
    alpha[:12, :12] = 0  # LoadImage's MASK = 1 - alpha: the user "painted" this corner
    name = "mvg_roi_chest.png"
    Image.fromarray(np.dstack([gray, gray, gray, alpha]), "RGBA").save(comfyui_server.input_dir / name)
    return name, gray


def _graph(image: str, **widgets) -> dict:
    inputs = {**WIDGETS, **widgets, "image": ["1", 0]}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "MVG_ROIMask", "inputs": inputs},
        "3": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "roi_mask"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "roi_overlay"}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
    }


def test_object_info_lists_roimask(comfyui_server):
    info = comfyui_server.object_info()
    node = info["MVG_ROIMask"]
    assert node["python_module"].startswith("custom_nodes.")
    # widgets_values in saved workflows are positional: the order is part of the interface
    order = node["input_order"]
    assert order["required"] == [n for n in ROI_INPUTS if n not in ("mask", "prompts", "keep_mask")], order
    assert order["optional"] == ["mask", "prompts", "keep_mask"], order
    every = {**node["input"]["required"], **node["input"].get("optional", {})}
    for name, type_ in ROI_INPUTS.items():
        got = every[name][0]
        assert got == type_ or (type_ == "COMBO" and isinstance(got, list)), (name, got)
    assert set(node["input"].get("optional", {})) == {"mask", "prompts", "keep_mask"}
    assert node["output"] == ["MASK", "IMAGE", "STRING"]
    assert node["output_name"] == ["mask", "overlay", "summary"]


def test_roimask_lungs_match_the_engine(comfyui_server, chest_png):
    srv = comfyui_server
    name, gray = chest_png
    entry = srv.run(_graph(name), timeout=120)
    mask = _png(srv.output_images(entry, "4")[0])[..., 0] >= 128
    overlay = _png(srv.output_images(entry, "5")[0])
    assert mask.shape == overlay.shape[:2] == (SIZE, SIZE)
    expected = segment(gray, "chest_xray", "lungs") >= 0.5
    assert (mask != expected).mean() < 0.002
    summary = entry["outputs"]["6"]["text"][0]
    assert "chest_xray / lungs" in summary and "component(s)" in summary and "1 image(s)" in summary


def test_roimask_with_painted_mask_prompt_hint_and_feather(comfyui_server, chest_png):
    srv = comfyui_server
    name, gray = chest_png
    graph = _graph(name, combine="replace", feather=4.0)
    graph["2"]["inputs"]["mask"] = ["1", 1]
    entry = srv.run(graph, timeout=120)
    mask = _png(srv.output_images(entry, "4")[0])[..., 0]
    assert mask[:8, :8].min() == 255 and mask[30:, 30:].max() == 0  # replace: only the painted corner
    assert 0 < mask[12, 5] < 255  # feathered edge
    # a prompt hint narrows the automatic lungs to the patient's right base
    graph = _graph(name, region="lungs")
    graph["7"] = {"class_type": "MVG_PromptList", "inputs": {
        "text": "a chest x-ray with a small right pleural effusion {roi_hint=right lower lung}", "negative": ""}}
    graph["2"]["inputs"]["prompts"] = ["7", 0]
    entry = srv.run(graph, timeout=120)
    mask = _png(srv.output_images(entry, "4")[0])[..., 0] >= 128
    lungs = segment(gray, "chest_xray", "lungs") >= 0.5
    assert mask.any() and mask.sum() < 0.5 * lungs.sum() and not mask[:, SIZE // 2 :].any()
    assert "right lower lung" in entry["outputs"]["6"]["text"][0]


def test_roimask_feeds_progressive_edit(comfyui_server, chest_png):
    """The ROI mask drives PIE: pixels outside the rectangle stay the original's."""
    srv = comfyui_server
    name, gray = chest_png
    graph = _graph(name, domain="other", region="rectangle", rectangle="0.25, 0.25, 0.75, 0.75")
    graph["8"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}}
    graph["9"] = {"class_type": "MVG_PromptList", "inputs": {"text": "a chest x-ray with an effusion", "negative": ""}}
    graph["10"] = {"class_type": "MVG_ProgressiveEdit", "inputs": {
        "model": ["8", 0], "clip": ["8", 1], "vae": ["8", 2], "image": ["1", 0], "mask": ["2", 0],
        "prompts": ["9", 0], "rounds": 1, "strength": 0.5, "steps": 2, "cfg": 7.5, "sampler_name": "ddim",
        "scheduler": "ddim_uniform", "beta1": 0.01, "beta2": 0.75, "seed": 3, "chain": "latent",
        "include_original": False}}
    graph["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "roi_pie"}}
    entry = srv.run(graph, timeout=300)
    frame = _png(srv.output_images(entry, "11")[0])
    outside = np.ones((SIZE, SIZE), bool)
    outside[32:96, 32:96] = False
    np.testing.assert_array_equal(frame[outside], np.dstack([gray] * 3)[outside])
    assert np.abs(frame[~outside].astype(int) - gray[~outside][:, None]).mean() > 0.5


def test_roimask_constant_image_fails_clearly(comfyui_server):
    Image = pytest.importorskip("PIL.Image")
    srv = comfyui_server
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(srv.input_dir / "mvg_roi_blank.png")
    prompt_id = srv.post_prompt(_graph("mvg_roi_blank.png", domain="fundus"))
    entry = srv.wait_history(prompt_id, timeout=120)
    status, events = history_status(entry)
    assert status == "error" and "execution_error" in events, (status, events)
    error = dict(m for m in entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_ROIMask"
    assert "constant" in error["exception_message"] and "region 'full'" in error["exception_message"]


def _error(srv, graph) -> str:
    entry = srv.wait_history(srv.post_prompt(graph), timeout=120)
    status, _ = history_status(entry)
    assert status == "error", status
    error = dict(m for m in entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_ROIMask"
    return error["exception_message"]


def test_roimask_domain_auto_takes_the_report_nodes_domain(comfyui_server, chest_png):
    """domain 'auto' segments the domain of the connected MVG_PROMPTS (here fundus, so the fundus FOV, not the
    lungs); without prompts, or with hand-written prompts that name no domain, it fails with the fix."""
    srv = comfyui_server
    name, gray = chest_png
    graph = _graph(name, domain="auto", region="full")
    graph["7"] = {"class_type": "MVG_ReportToPromptsV2", "inputs": {
        "report": "Mild non-proliferative diabetic retinopathy with microaneurysms.", "domain": "fundus",
        "stages": 2, "direction": "progression", "engine": "rules", "caption_style": "mvg", "template": "",
        "keep_report_in_metadata": False, "max_severity": "severe"}}
    graph["2"]["inputs"]["prompts"] = ["7", 0]
    entry = srv.run(graph, timeout=120)
    summary = entry["outputs"]["6"]["text"][0]
    assert summary.startswith("MVG ROIMask: domain fundus (auto: the prompts' domain), region full"), summary
    assert "WARNING" not in summary

    no_prompts = _error(srv, _graph(name, domain="auto"))
    assert no_prompts.startswith("domain: 'auto'") and "connect MVG Report to Prompts' prompts" in no_prompts

    manual = _graph(name, domain="auto")
    manual["7"] = {"class_type": "MVG_PromptList", "inputs": {"text": "a chest x-ray with an effusion", "negative": ""}}
    manual["2"]["inputs"]["prompts"] = ["7", 0]
    assert "pick the domain" in _error(srv, manual)
