"""The shipped workflows (workflows/*.json) in a real ComfyUI: they convert to API format, validate and run.

The UI→API conversion is comfy-cli's (``comfy_cli.workflow_to_api``, installed in ComfyUI's venv; see the
README), fed with the live server's ``/object_info``. The test swaps in the tiny checkpoint and a test image
and shrinks rounds/steps, so the whole graph (ProgressiveEdit → previews, keyframes, Create/Save Video)
runs on the CPU in seconds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
CKPT = "mvg_tiny_sd15.safetensors"  # conftest.COMFYUI_CHECKPOINT_NAME

CONVERT = """
import json, sys
from comfy_cli.workflow_to_api import convert_ui_to_api
wf, info, out = sys.argv[1:4]
json.dump(convert_ui_to_api(json.load(open(wf)), json.load(open(info))), open(out, "w"))
"""


@pytest.fixture(scope="module")
def object_info_file(comfyui_server, tmp_path_factory):
    probe = subprocess.run([str(comfyui_server.python), "-c", "import comfy_cli.workflow_to_api"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("comfy-cli is not installed in COMFYUI_PYTHON's environment: "
                    "$COMFYUI_PYTHON -m pip install comfy-cli (see README)")
    path = tmp_path_factory.mktemp("wf") / "object_info.json"
    path.write_text(json.dumps(comfyui_server.object_info()))
    return path


def to_api(comfyui_server, workflow: Path, object_info_file: Path, tmp_path: Path) -> dict:
    out = tmp_path / "api.json"
    subprocess.run([str(comfyui_server.python), "-c", CONVERT, str(workflow), str(object_info_file), str(out)],
                   check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem)
def test_shipped_workflow_converts_validates_and_runs(comfyui_server, object_info_file, tmp_path, workflow):
    from PIL import Image

    api = to_api(comfyui_server, workflow, object_info_file, tmp_path)
    by_type = {node["class_type"]: (node_id, node) for node_id, node in api.items()}
    previews = [node_id for node_id, node in api.items() if node["class_type"] == "PreviewAny"]
    edit_id, edit = by_type["MVG_ProgressiveEdit"]
    ui = json.loads(workflow.read_text())
    ui_edit = next(n for n in ui["nodes"] if n["type"] == "MVG_ProgressiveEdit")
    # positional widgets_values landed on the right inputs
    assert {k: edit["inputs"][k] for k in ("rounds", "strength", "steps", "cfg", "beta1", "beta2", "seed", "chain")} \
        == dict(rounds=10, strength=0.5, steps=50, cfg=7.5, beta1=0.01, beta2=0.75, seed=0, chain="latent")
    assert ui_edit["widgets_values"][4:6] == [edit["inputs"]["sampler_name"], edit["inputs"]["scheduler"]]
    report = by_type["MVG_ReportToPrompts"][1]["inputs"]
    assert report["domain"] == workflow.stem.removeprefix("mvg_") and report["engine"] == "rules"

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = np.linspace(40, 220, 64, dtype=np.uint8)[None, :, None]
    rgba[..., 3] = 255
    rgba[16:48, 16:48, 3] = 0  # a painted region, added to the automatic ROI
    name = f"{workflow.stem}_input.png"
    Image.fromarray(rgba, "RGBA").save(comfyui_server.input_dir / name)
    by_type["CheckpointLoaderSimple"][1]["inputs"]["ckpt_name"] = CKPT
    by_type["LoadImage"][1]["inputs"]["image"] = name
    edit["inputs"].update(rounds=3, steps=4)
    transition_id, transition = by_type["MVG_SEINETransition"]
    assert transition["inputs"]["keyframes"] == [edit_id, 1] and "seine_model" not in transition["inputs"]
    assert (transition["inputs"]["frames"], transition["inputs"]["method"]) == (16, "seine")
    transition["inputs"]["frames"] = 5

    entry = comfyui_server.run(api, timeout=300)
    save_id = by_type["SaveImage"][0]
    keyframes = comfyui_server.output_images(entry, save_id)
    assert len(keyframes) == 4  # original + one per stage
    # this run's video, from its history entry (not a glob over an output folder other tests share)
    videos = comfyui_server.output_images(entry, by_type["SaveVideo"][0])
    assert len(videos) == 1 and videos[0].suffix == ".mp4" and videos[0].stat().st_size > 0
    assert videos[0].name.startswith(f"{workflow.stem.removeprefix('mvg_')}_progression")
    count = subprocess.run(  # PyAV comes with ComfyUI
        [str(comfyui_server.python), "-c", "import av, sys; c = av.open(sys.argv[1]); "
         "print(sum(1 for _ in c.decode(video=0)))", str(videos[0])], check=True, capture_output=True, text=True)
    assert int(count.stdout) == 3 * 4 + 1  # 4 keyframes -> 3 transitions of 5 frames sharing their ends
    shown = json.dumps([entry["outputs"][p] for p in previews])
    assert "PIE: 3 stage(s), 3 round(s)" in shown, shown
    assert "engine rules" in shown, shown
    assert "MVG ROIMask: domain" in shown, shown
    assert "optical" in shown.lower(), shown  # no SEINE model connected: the fallback, and it says so
    roi = by_type["MVG_ROIMask"][1]["inputs"]
    assert roi["domain"] == report["domain"] and edit["inputs"]["mask"] == [by_type["MVG_ROIMask"][0], 0]
    # the evaluation of the video's frames: report previewed as JSON, plot previewed; the muted loaders
    # (CLIP vision, classifier) are left out, so CLIP-I and the confidence gate say why they were skipped
    eval_id, evaluate = by_type["MVG_Evaluate"]
    assert "CLIPVisionLoader" not in by_type and "MVG_ClassifierLoader" not in by_type
    assert evaluate["inputs"]["frames"] == [transition_id, 0] and evaluate["inputs"]["transition_summary"] == \
        [transition_id, 1]
    text = next(entry["outputs"][p]["text"][0] for p in previews if api[p]["inputs"]["source"] == [eval_id, 0])
    metrics = json.loads(text)
    assert metrics["frames"] == 13 and metrics["keyframes"] == [0, 4, 8, 12]
    gates = {g["name"]: g for g in metrics["gates"]}
    assert gates["clip_i"]["status"] == "skipped" and gates["confidence_rho"]["status"] == "skipped"
    assert gates["flicker_spikes"]["evaluated"]
    outside = metrics["metrics"]["outside_roi"]["pixels"]  # the test image's ROI may cover it all (fundus: no surround)
    assert gates["outside_roi_max_change"]["evaluated"] == (outside > 0)
    assert outside > 0 or "the mask covers the whole image" in gates["outside_roi_max_change"]["reason"]
    assert gates["anatomy_dice"]["evaluated"] == (report["domain"] != "other")
    plot_preview = next(p for p, n in api.items() if n["class_type"] == "PreviewImage"
                        and n["inputs"]["images"] == [eval_id, 1])
    plots = comfyui_server.output_images(entry, plot_preview)
    assert len(plots) == 1
    with Image.open(plots[0]) as im:
        assert im.size[0] == 1000 and np.asarray(im.convert("L")).std() > 10
