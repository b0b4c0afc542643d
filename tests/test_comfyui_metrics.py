"""MVG_Evaluate and MVG_ClassifierLoader in real ComfyUI (marker ``comfyui``; see tests/conftest.py).

In-process (``tests/fixtures/comfy_metrics_probe.py`` with ``COMFYUI_PYTHON``): CLIP-I through ComfyUI's own
``CLIP_VISION`` (a tiny ClipVisionModel), torchxrayvision with random weights (it needs torchvision, which only
ComfyUI's venv has), and the node's execute. Through the session server: the node's interface, the classifier
loader listing ``models/classifiers``, and a graph that runs the evaluation with a tiny TorchScript classifier.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fixtures.metrics_sequences import write_tiny_torchscript_classifier
from fixtures.roi_phantoms import chest_phantom

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "fixtures" / "comfy_metrics_probe.py"
EVAL_INPUTS = ["frames", "original", "mask", "label", "domain", "direction", "clip_i_min", "outside_max_levels",
               "confidence_rho_min", "anatomy_dice_min", "flicker_spikes_max", "anatomy"]
EVAL_OPTIONAL = ["clip_vision", "classifier", "prompts", "transition_summary", "other_runs"]
EVAL_WIDGETS = {"label": "", "domain": "auto", "direction": "auto", "clip_i_min": 0.75, "outside_max_levels": 2.0,
                "confidence_rho_min": 0.8, "anatomy_dice_min": 0.9, "flicker_spikes_max": 0, "anatomy": True}


@pytest.fixture(scope="module")
def probe_report(tmp_path_factory):
    from comfyui_harness import find_comfyui

    found = find_comfyui()
    if isinstance(found, str):
        pytest.skip(found)
    comfyui_dir, python = found
    out = tmp_path_factory.mktemp("metrics_probe")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([str(python), str(PROBE), str(comfyui_dir), str(REPO), str(out)], capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return json.loads((out / "report.json").read_text()), out


def test_clip_i_through_comfyui_clip_vision(probe_report):
    report, _ = probe_report
    comfy, hf = report["clip_i_comfy"], report["clip_i_transformers"]
    assert comfy[0] == pytest.approx(1.0, abs=1e-5)
    assert comfy == pytest.approx(hf, abs=1e-4)  # ComfyUI's CLIP_VISION and the headless embedder agree
    assert all(b <= a + 1e-6 for a, b in zip(comfy, comfy[1:]))  # the whitening bases drift away from frame 0


def test_torchxrayvision_random_weights(probe_report):
    report, _ = probe_report
    labels = report["xrv_labels"]
    assert len(labels) == 18 and {"Effusion", "Cardiomegaly", "Pneumothorax"} <= set(labels)
    assert report["xrv_probs_shape"] == [8, 18]
    lo, hi = report["xrv_probs_range"]
    assert 0.0 <= lo <= hi <= 1.0
    assert report["xrv_input"] == {"size": [224, 224], "channels": 1, "range": [-1024.0, 1024.0]}
    f = report["xrv_file"]  # a safetensors state dict named by a JSON descriptor, calibrated outputs
    assert f["shape"] == [8, 18] and f["output"] == "probabilities" and "densenet121-res224-all" in f["name"]
    refused = report["xrv_name_only"]  # never a download: the one-time export command instead
    assert refused.startswith("MVGInputError") and "never downloads" in refused and "st.save_file" in refused


def test_safetensors_classifier_of_a_torchvision_architecture(probe_report):
    report, _ = probe_report
    tv = report["torchvision_file"]
    assert tv["labels"] == ["Nevus", "Melanoma"] and tv["shape"] == [8, 2]
    assert tv["row_sums"] == pytest.approx([1.0] * 8, abs=1e-5)  # softmax


def test_evaluate_node_in_process(probe_report):
    report, out = probe_report
    node = report["node"]
    data = node["report"]
    assert node["passed"] is data["passed"]
    gates = {g["name"]: g for g in data["gates"]}
    assert gates["clip_i"]["status"] == "pass" and gates["outside_roi_max_change"]["status"] == "pass"
    conf = data["metrics"]["confidence"]
    assert conf["label"] == "Effusion" and len(conf["values"]) == 8
    assert gates["confidence_rho"]["evaluated"] and gates["anatomy_dice"]["evaluated"]
    assert data["keyframes"] == [0, 7] and data["spread"]["runs"] == 3
    assert node["plot_shape"][0] == 1 and node["plot_shape"][3] == 3 and node["plot_std"] > 0.05
    assert node["uncertainty_shape"] == [1, 96, 96, 3] and node["roi_shape"] == [1, 96, 96, 3]
    assert (out / "plot.png").stat().st_size > 10_000


def test_object_info_lists_the_evaluation_nodes(comfyui_server):
    info = comfyui_server.object_info()
    node = info["MVG_Evaluate"]
    assert node["input_order"]["required"] == EVAL_INPUTS
    assert node["input_order"]["optional"] == EVAL_OPTIONAL
    assert node["input"]["optional"]["clip_vision"][0] == "CLIP_VISION"
    assert node["input"]["optional"]["classifier"][0] == "MVG_CLASSIFIER"
    assert node["output"] == ["STRING", "IMAGE", "BOOLEAN", "IMAGE", "IMAGE"]  # roi appended: links keep their slot
    assert node["output_name"] == ["report", "plot", "passed", "uncertainty", "roi"]
    loader = info["MVG_ClassifierLoader"]
    options = loader["input"]["required"]["classifier_name"]
    options = options[1]["options"] if options[0] == "COMBO" else options[0]
    assert "torchxrayvision:densenet121-res224-all" in options and "torchxrayvision:untrained" in options


def _graph(image: str, classifier: str | None, **widgets) -> dict:
    g = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 6}},
        "3": {"class_type": "MVG_ROIMask", "inputs": {
            "image": ["1", 0], "domain": "chest_xray", "region": "right_lung", "dilate": 0, "feather": 0.0,
            "combine": "union", "fill_holes": False, "keep_largest": 0, "eye": "auto",
            "rectangle": "0.25, 0.25, 0.75, 0.75"}},
        "4": {"class_type": "MVG_Evaluate", "inputs": {**EVAL_WIDGETS, "domain": "chest_xray", **widgets,
                                                      "frames": ["2", 0], "original": ["1", 0], "mask": ["3", 0]}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["4", 1]}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["4", 4], "filename_prefix": "eval_roi"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["3", 1], "filename_prefix": "roimask_overlay"}},
    }
    if classifier:
        g["8"] = {"class_type": "MVG_ClassifierLoader", "inputs": {"classifier_name": classifier}}
        g["4"]["inputs"]["classifier"] = ["8", 0]
    return g


def test_evaluate_runs_in_the_server_with_a_classifier_from_models(comfyui_server, tmp_path):
    from PIL import Image

    srv = comfyui_server
    folder = srv.base_dir / "models" / "classifiers"
    folder.mkdir(parents=True, exist_ok=True)
    write_tiny_torchscript_classifier(folder / "mvg_test_centre.pt")
    info = srv.object_info("MVG_ClassifierLoader")
    assert "mvg_test_centre.pt" in json.dumps(info) and "mvg_test_centre.json" not in json.dumps(info)
    gray = (chest_phantom(96)["image"] * 255).round().astype(np.uint8)
    name = "mvg_eval_chest.png"
    Image.fromarray(np.dstack([gray] * 3), "RGB").save(srv.input_dir / name)

    entry = srv.run(_graph(name, None), timeout=300)  # identical frames: every evaluated gate passes
    data = json.loads(entry["outputs"]["5"]["text"][0])
    gates = {g["name"]: g for g in data["gates"]}
    assert data["passed"] is True and gates["anatomy_dice"]["value"] == pytest.approx(1.0)
    assert gates["clip_i"]["status"] == "skipped" and "Load CLIP Vision" in gates["clip_i"]["reason"]
    assert entry["outputs"]["7"]["text"][0].lower() == "true"
    plot = srv.output_images(entry, "6")
    assert len(plot) == 1
    with Image.open(plot[0]) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[1] == 1000 and arr.std() > 10
    # the roi output is ROI Mask's own overlay of the same mask on the original, pixel for pixel
    (roi,), (roi_node,) = srv.output_images(entry, "9"), srv.output_images(entry, "10")
    with Image.open(roi) as a, Image.open(roi_node) as b:
        roi_arr, node_arr = np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))
    assert roi_arr.shape == (96, 96, 3) and (roi_arr != np.dstack([gray] * 3)).any()
    np.testing.assert_array_equal(roi_arr, node_arr)

    entry = srv.run(_graph(name, "mvg_test_centre.pt", label="pleural effusion"), timeout=300)
    data = json.loads(entry["outputs"]["5"]["text"][0])
    gate = next(g for g in data["gates"] if g["name"] == "confidence_rho")
    assert data["metrics"]["confidence"]["label"] == "Effusion" and data["metrics"]["confidence"]["classifier"] == \
        "mvg_test_centre.pt"
    assert gate["status"] == "fail" and "constant" in gate["reason"]  # identical frames: no trend
    assert data["passed"] is False and entry["outputs"]["7"]["text"][0].lower() == "false"
