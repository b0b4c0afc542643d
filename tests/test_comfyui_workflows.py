"""The shipped templates (workflows/*.json) in a real ComfyUI: the pack puts their sample images in the input
folder, they convert to API format against the live schema, run as shipped to an MP4, and a run missing the
checkpoint or the image is refused as a whole.

The UI→API conversion is comfy-cli's (``comfy_cli.workflow_to_api``, installed in ComfyUI's venv; see the
README), fed with the live server's ``/object_info``. The run changes only the checkpoint (to the tiny one the
tests write) and, for speed, PIE's rounds (one per stage) and steps (2) and the transition's frames (5); the image
is the shipped sample.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from comfyui_harness import ComfyUIServer, PromptRejected, find_comfyui
from fixtures.frontend_layout import frontend_layout

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
SAMPLES = sorted((ROOT / "sample_inputs").glob("*.png"))
CKPT = "mvg_tiny_sd15.safetensors"  # conftest.COMFYUI_CHECKPOINT_NAME
OUTPUT_TYPES = {"PreviewImage", "SaveImage", "PreviewAny", "SaveVideo"}
COPIED = "ComfyUI-MVG: copied the templates' sample images to"

CONVERT = """
import json, sys
from comfy_cli.workflow_to_api import convert_ui_to_api
wf, info, out = sys.argv[1:4]
json.dump(convert_ui_to_api(json.load(open(wf)), json.load(open(info))), open(out, "w"))
"""


@pytest.fixture(scope="module")
def object_info(comfyui_server) -> dict:
    return comfyui_server.object_info()


@pytest.fixture(scope="module")
def object_info_file(comfyui_server, object_info, tmp_path_factory):
    probe = subprocess.run([str(comfyui_server.python), "-c", "import comfy_cli.workflow_to_api"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("comfy-cli is not installed in COMFYUI_PYTHON's environment: "
                    "$COMFYUI_PYTHON -m pip install comfy-cli (see README)")
    path = tmp_path_factory.mktemp("wf") / "object_info.json"
    path.write_text(json.dumps(object_info))
    return path


def to_api(comfyui_server, workflow: Path, object_info_file: Path, tmp_path: Path) -> dict:
    out = tmp_path / "api.json"
    subprocess.run([str(comfyui_server.python), "-c", CONVERT, str(workflow), str(object_info_file), str(out)],
                   check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def node_of(api: dict, class_type: str) -> tuple[str, dict]:
    (found,) = [(node_id, node) for node_id, node in api.items() if node["class_type"] == class_type]
    return found


def test_the_pack_put_the_sample_images_in_the_input_folder(comfyui_server):
    assert [p.name for p in SAMPLES] == ["mvg_chest_xray.png", "mvg_fundus.png", "mvg_skin.png"]
    for sample in SAMPLES:
        assert (comfyui_server.input_dir / sample.name).read_bytes() == sample.read_bytes()
    assert comfyui_server.log_text().count(COPIED) == 1


def test_a_users_file_of_the_same_name_is_kept(tmp_path):
    """A fresh ComfyUI (``--quick-test-for-ci``: load the nodes, then exit) over an input folder that already
    holds a user's mvg_fundus.png: that file stays byte-identical, the other two samples arrive."""
    found = find_comfyui()
    assert not isinstance(found, str), found
    server = ComfyUIServer(*found, tmp_path / "base", pack_dir=ROOT)
    server.prepare()
    mine = server.input_dir / "mvg_fundus.png"
    mine.write_bytes(b"\x89PNG my own fundus photo")
    with server.log_path.open("wb") as log:
        subprocess.run(server.command() + ["--quick-test-for-ci"], cwd=server.base_dir, timeout=300, check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    assert mine.read_bytes() == b"\x89PNG my own fundus photo"
    for sample in SAMPLES:
        if sample.name != mine.name:
            assert (server.input_dir / sample.name).read_bytes() == sample.read_bytes()
    log = server.log_text()
    assert f"{COPIED} {server.input_dir}: mvg_chest_xray.png, mvg_skin.png" in log, log[-3000:]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem.split(",")[0])
def test_template_widgets_match_the_live_schema(object_info, workflow):
    """Each node's positional widgets_values has exactly the slots the frontend lays out for the live node (an
    ``image_upload`` input adds the upload button's slot, as Load Image's ``"image"``)."""
    for node in json.loads(workflow.read_text())["nodes"]:
        if node["type"] != "MarkdownNote":
            info = object_info[node["type"]]
            uploads = sum(bool(spec[1].get("image_upload")) for spec in info["input"]["required"].values()
                          if len(spec) > 1)
            layout = frontend_layout(info)
            assert len(node["widgets_values"]) == len(layout) + uploads, (node["type"], layout, node["widgets_values"])


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.stem.split(",")[0])
def test_template_runs_as_shipped_to_an_mp4(comfyui_server, object_info_file, tmp_path, workflow):
    from PIL import Image

    api = to_api(comfyui_server, workflow, object_info_file, tmp_path)
    ui = json.loads(workflow.read_text())
    ckpt_id, ckpt = node_of(api, "CheckpointLoaderSimple")
    _, load = node_of(api, "LoadImage")
    assert (comfyui_server.input_dir / load["inputs"]["image"]).is_file()  # the sample, copied by the pack
    # bypassed / muted loaders are left out: no SEINE model (optical flow), no LLM settings, CLIP-I skipped
    assert not {"MVG_SEINELoader", "MVG_LLMSettings", "CLIPVisionLoader", "MVG_ClassifierLoader"} & \
        {n["class_type"] for n in api.values()}
    edit_id, edit = node_of(api, "MVG_ProgressiveEdit")
    transition_id, transition = node_of(api, "MVG_SEINETransition")
    report = node_of(api, "MVG_ReportToPromptsV2")[1]["inputs"]
    assert report["engine"] == "rules" and "llm" not in report and "seine_model" not in transition["inputs"]
    assert (transition["inputs"]["sampler"], transition["inputs"]["steps"]) == ("ddim", 50)

    ckpt["inputs"]["ckpt_name"] = CKPT  # the one change a user makes
    edit["inputs"].update(rounds=3, steps=2)  # speed only: one round per stage (the image stays the 512 px sample)
    transition["inputs"]["frames"] = 5
    entry = comfyui_server.run(api, timeout=900)

    out = entry["outputs"]
    keyframes = comfyui_server.output_images(entry, node_of(api, "SaveImage")[0])
    assert len(keyframes) == 4  # original + one per stage
    videos = comfyui_server.output_images(entry, node_of(api, "SaveVideo")[0])
    assert len(videos) == 1 and videos[0].suffix == ".mp4" and videos[0].stat().st_size > 0
    count = subprocess.run(  # PyAV comes with ComfyUI
        [str(comfyui_server.python), "-c", "import av, sys; c = av.open(sys.argv[1]); "
         "print(sum(1 for _ in c.decode(video=0)))", str(videos[0])], check=True, capture_output=True, text=True)
    assert int(count.stdout) == 3 * 4 + 1  # 4 keyframes -> 3 transitions of 5 frames sharing their ends
    texts = {node_id: out[node_id]["text"][0] for node_id, n in api.items() if n["class_type"] == "PreviewAny"}
    by_source = {api[node_id]["inputs"]["source"][0]: text for node_id, text in texts.items()}
    assert by_source[edit_id].startswith("MVG_PROMPTS: " + report["domain"])  # the plan, then PIE's summary
    assert "PIE: 3 stage(s), 3 round(s)" in by_source[edit_id]
    assert "optical" in by_source[transition_id].lower()  # no SEINE model: the fallback, and it says so
    eval_id, evaluate = node_of(api, "MVG_Evaluate")
    metrics = json.loads(by_source[eval_id])
    assert metrics["frames"] == 13 and metrics["keyframes"] == [0, 4, 8, 12]
    assert {g["name"]: g for g in metrics["gates"]}["clip_i"]["status"] == "skipped"
    previews = {tuple(n["inputs"]["images"]): node_id for node_id, n in api.items()
                if n["class_type"] == "PreviewImage"}
    (roi_view,) = comfyui_server.output_images(entry, previews[(eval_id, 4)])  # the ROI on the original
    (plot,) = comfyui_server.output_images(entry, previews[(eval_id, 1)])
    with Image.open(roi_view) as roi, Image.open(comfyui_server.input_dir / load["inputs"]["image"]) as sample:
        assert roi.size == sample.size
    with Image.open(plot) as im:
        assert im.size[0] == 1000
    ran = {n["id"] for n in ui["nodes"] if n["mode"] == 0 and n["type"] in OUTPUT_TYPES}
    assert {int(i) for i in out} == ran  # every output node of the template ran


@pytest.mark.parametrize("missing", ["checkpoint", "image"])
def test_a_run_missing_the_checkpoint_or_the_image_is_refused_as_a_whole(comfyui_server, object_info_file,
                                                                        tmp_path, missing):
    workflow = next(p for p in WORKFLOWS if "Chest" in p.stem)
    api = to_api(comfyui_server, workflow, object_info_file, tmp_path)
    ckpt_id, ckpt = node_of(api, "CheckpointLoaderSimple")
    image_id, load = node_of(api, "LoadImage")
    if missing == "checkpoint":  # as shipped: v1-5-pruned-emaonly-fp16.safetensors, not on this server
        assert ckpt["inputs"]["ckpt_name"] != CKPT
        culprit = ckpt_id
    else:
        ckpt["inputs"]["ckpt_name"] = CKPT
        load["inputs"]["image"] = "not_uploaded.png"
        culprit = image_id
    history_before = comfyui_server.get_json("/history")
    with pytest.raises(PromptRejected) as rejected:
        comfyui_server.post_prompt(api)
    body = rejected.value.body
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    outputs = {node_id for node_id, n in api.items() if n["class_type"] in OUTPUT_TYPES}
    assert set(body["node_errors"]) == {culprit}  # the one missing input, named, and every output depends on it
    assert set(body["node_errors"][culprit]["dependent_outputs"]) == outputs
    queue = comfyui_server.queue()
    assert not queue["queue_running"] and not queue["queue_pending"]
    assert comfyui_server.get_json("/history") == history_before  # nothing ran
