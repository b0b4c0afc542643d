"""MVG Report to Prompts inside a real, headless ComfyUI (>= 0.3.64): schema, a graph that feeds
ProgressiveEdit, the report kept out of saved PNG metadata (and kept with the opt-in), and the LLM engine
against a local OpenAI-compatible server with the key read from an environment variable. The V2 node
(``MVG_ReportToPromptsV2`` + ``MVG_LLMSettings``) and the deprecated ``MVG_ReportToPrompts`` (LLM settings
inline) share one execution path; both are run here."""

from __future__ import annotations

import json
import os
import time

import pytest

from fixtures.fake_openai import FakeOpenAI, Reply, completion

pytestmark = pytest.mark.comfyui

CKPT = "mvg_tiny_sd15.safetensors"  # conftest.COMFYUI_CHECKPOINT_NAME
KEY_ENV = "MVG_TEST_COMFY_LLM_KEY"
# fake credentials, written as two literals so that secret scanners do not flag this test data
KEY = "sk-" "comfy-Hq5ReallySecretValue-0042"
PASTED_KEY = "sk-" "pasted-By-Mistake-Q7Zk9"
# The session's ComfyUI server inherits this process's environment when it starts (after collection).
os.environ.setdefault(KEY_ENV, KEY)

REPORT = ("FINDINGS: Moderate right pleural effusion. No pneumothorax. Patient Jane Roe-Testcase, MRN 99812.\n"
          "IMPRESSION: Right effusion.")
SECRET_BITS = ("Roe-Testcase", "99812", "Moderate right pleural effusion")
INPUT_ORDER = ["report", "domain", "stages", "direction", "engine", "model", "base_url", "api_key_env", "temperature",
               "seed", "fallback", "caption_style", "template", "allow_de_novo", "keep_report_in_metadata"]
OPTIONAL_ORDER = ["timeout", "max_retries", "max_severity"]


def _widgets(report: str, keep: bool, api_key_env: str) -> list:
    return [report, "chest_xray", 2, "progression", "rules", "gpt-4o-mini", "https://api.openai.com/v1", api_key_env,
            0.2, 0, True, "mvg", "", False, keep, 120.0, 2, "severe"]


def _node_inputs(report: str, keep: bool = False, api_key_env: str = "OPENAI_API_KEY", **changes) -> dict:
    inputs = dict(zip(INPUT_ORDER + OPTIONAL_ORDER, _widgets(report, keep, api_key_env), strict=True))
    inputs.update(changes)
    return inputs


V2_ORDER = ["report", "domain", "stages", "direction", "engine", "caption_style", "template",
            "keep_report_in_metadata", "max_severity"]
SETTINGS_ORDER = ["model", "base_url", "api_key_env", "temperature", "seed", "fallback", "allow_de_novo", "timeout",
                  "max_retries"]


def _v2_widgets(report: str, keep: bool = False, engine: str = "rules") -> list:
    return [report, "chest_xray", 2, "progression", engine, "mvg", "", keep, "severe"]


def _settings_widgets(api_key_env: str = "OPENAI_API_KEY", base_url: str = "https://api.openai.com/v1") -> list:
    return ["test-model", base_url, api_key_env, 0.2, 0, False, False, 120.0, 2]


def _graph(image_name: str, prefix: str, node_inputs: dict, seed: int, node_type: str = "MVG_ReportToPrompts",
           settings: dict | None = None) -> dict:
    """ReportToPrompts -> ProgressiveEdit -> SaveImage, plus LoadImage -> SaveImage on an independent branch;
    with ``settings`` an MVG LLM Settings node (id 8) feeds the report node's llm."""
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "3": {"class_type": node_type, "inputs": node_inputs},
        "4": {"class_type": "MVG_ProgressiveEdit", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["2", 0], "mask": ["2", 1],
            "prompts": ["3", 0], "rounds": 2, "strength": 0.5, "steps": 2, "cfg": 7.5, "sampler_name": "ddim",
            "scheduler": "ddim_uniform", "beta1": 0.01, "beta2": 0.75, "seed": seed, "chain": "latent",
            "include_original": False}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 1], "filename_prefix": prefix + "_edit"}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix + "_orig"}},
        "7": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["4", 2]}},
    }
    if settings is not None:
        graph["8"] = {"class_type": "MVG_LLMSettings", "inputs": settings}
        node_inputs["llm"] = ["8", 0]
    return graph


def _submit(srv, graph: dict, workflow_widgets: list, settings_widgets: list | None = None) -> dict:
    """POST /prompt as the frontend does: the API graph plus the UI workflow in extra_pnginfo."""
    nodes = [{"id": 3, "type": graph["3"]["class_type"], "widgets_values": workflow_widgets},
             {"id": 6, "type": "SaveImage", "widgets_values": ["x"]}]
    if settings_widgets is not None:
        nodes.append({"id": 8, "type": "MVG_LLMSettings", "widgets_values": settings_widgets})
    workflow = {"nodes": nodes, "links": [], "version": 0.4}
    prompt_id = srv.post_prompt(graph, workflow)
    entry = srv.wait_history(prompt_id, timeout=300)
    entry["prompt_id"] = prompt_id
    return entry


def _metadata(path) -> str:
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        return json.dumps(dict(im.info))


@pytest.fixture(scope="module")
def input_png(comfyui_server):
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = np.linspace(30, 220, 64, dtype=np.uint8)[None, :, None]
    rgba[..., 3] = 255
    rgba[16:48, 12:40, 3] = 0  # the ROI (LoadImage's mask = 1 - alpha)
    name = "mvg_report_test.png"
    Image.fromarray(rgba, "RGBA").save(comfyui_server.input_dir / name)
    return name


def test_object_info_lists_the_v2_node_and_its_llm_settings(comfyui_server):
    info = comfyui_server.object_info()
    v2, settings = info["MVG_ReportToPromptsV2"], info["MVG_LLMSettings"]
    assert v2["display_name"] == "MVG Report to Prompts" and not v2.get("deprecated")
    assert v2["input_order"]["required"] == V2_ORDER and v2["input_order"]["optional"] == ["llm"]  # positional
    assert v2["input"]["optional"]["llm"][0] == "MVG_LLM_SETTINGS"
    assert not {"model", "base_url", "api_key_env"} & set(v2["input"]["required"])  # nothing says "OpenAI" by default
    assert "caption_style 'custom'" in v2["input"]["required"]["template"][1]["tooltip"]
    assert v2["output"] == ["MVG_PROMPTS", "STRING"] and v2["output_name"] == ["prompts", "plan"]
    assert settings["input_order"]["required"] == SETTINGS_ORDER and not settings["input_order"].get("optional")
    assert settings["input"]["required"]["seed"][1]["control_after_generate"] is False  # one widgets_values slot
    assert settings["output"] == ["MVG_LLM_SETTINGS"] and settings["output_name"] == ["llm"]
    assert info["MVG_ReportToPrompts"]["deprecated"] is True  # legacy: still loads, hidden from search


def test_object_info_lists_report_to_prompts(comfyui_server):
    info = comfyui_server.object_info()["MVG_ReportToPrompts"]
    assert info["input_order"]["required"] == INPUT_ORDER  # widgets_values are positional: never reorder
    assert info["input_order"]["optional"] == OPTIONAL_ORDER  # appended later, so optional
    req = info["input"]["required"]
    assert req["report"][0] == "STRING" and req["report"][1]["multiline"] is True
    assert req["report"][1]["dynamicPrompts"] is False and req["template"][1]["dynamicPrompts"] is False
    assert req["keep_report_in_metadata"][1]["default"] is False
    assert info["output"] == ["MVG_PROMPTS", "STRING"] and info["output_name"] == ["prompts", "plan"]


def test_report_is_kept_out_of_saved_metadata(comfyui_server, input_png):
    srv = comfyui_server
    entry = _submit(srv, _graph(input_png, "redact", _node_inputs(REPORT, api_key_env=PASTED_KEY), seed=11),
                    _widgets(REPORT, False, PASTED_KEY))
    assert entry["status"]["status_str"] == "success", entry["status"]
    plan_text = entry["outputs"]["7"]["text"][0]
    assert "engine rules" in plan_text and "Effusion (positive; right; moderate)" in plan_text
    assert "a chest x-ray with a large right pleural effusion" in plan_text
    saved = srv.output_images(entry, "5") + srv.output_images(entry, "6")
    assert len(saved) == 3  # a keyframe per stage (2), and the image saved on the independent branch
    for path in saved:
        meta = _metadata(path)
        assert "MVG report redacted: sha256" in meta, meta[:400]
        for bit in SECRET_BITS + (PASTED_KEY,):
            assert bit not in meta, f"{bit!r} leaked into {path.name}"
    history = json.dumps(srv.history(entry["prompt_id"]))
    assert not any(bit in history for bit in SECRET_BITS)


def test_opt_in_keeps_the_report_in_metadata(comfyui_server, input_png):
    srv = comfyui_server
    entry = _submit(srv, _graph(input_png, "keep", _node_inputs(REPORT, keep=True), seed=12),
                    _widgets(REPORT, True, "OPENAI_API_KEY"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    for path in srv.output_images(entry, "6"):
        meta = _metadata(path)
        assert "Roe-Testcase" in meta and "redacted: sha256" not in meta


def test_a_redacted_workflow_runs_again_in_the_same_process(comfyui_server, input_png):
    """Re-queueing a saved (redacted) workflow works while the server holds the text; an unknown token fails
    with a clear message."""
    srv = comfyui_server
    first = _submit(srv, _graph(input_png, "again1", _node_inputs(REPORT), seed=13), _widgets(REPORT, False, "K"))
    token = srv.history(first["prompt_id"])["prompt"][2]["3"]["inputs"]["report"]
    assert token.startswith("[MVG report redacted: sha256 ")
    again = _submit(srv, _graph(input_png, "again2", _node_inputs(token), seed=14), _widgets(token, False, "K"))
    assert again["status"]["status_str"] == "success"
    assert again["outputs"]["7"]["text"][0] == first["outputs"]["7"]["text"][0]

    unknown = "[MVG report redacted: sha256 " + "0" * 64 + "]"
    failed = _submit(srv, _graph(input_png, "again3", _node_inputs(unknown), seed=15), _widgets(unknown, False, "K"))
    assert failed["status"]["status_str"] == "error"
    error = dict(m for m in failed["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_ReportToPrompts" and "paste the report" in error["exception_message"]


def test_llm_engine_reads_the_key_from_the_named_variable(comfyui_server, input_png):
    srv = comfyui_server
    content = json.dumps({
        "findings": [{"name": "Effusion", "certainty": "positive", "laterality": "right", "location": None,
                      "severity": "moderate"}],
        "stages": [{"name": "large", "severity": 0.7, "prompt": "a chest x-ray with a large right pleural effusion",
                    "negative_prompt": "text", "roi_hint": "right lower lung"},
                   {"name": "very large", "severity": 0.9, "prompt": "a chest x-ray with a very large right "
                    "pleural effusion", "negative_prompt": "text", "roi_hint": "right lower lung"}],
        "direction": "progression", "de_novo": False, "notes": []})
    with FakeOpenAI() as llm:
        llm.script.append(Reply(body=completion(content)))
        inputs = _node_inputs(REPORT, engine="openai-compatible", model="test-model", base_url=llm.url,
                              api_key_env=KEY_ENV, fallback=False)
        widgets = list(inputs.values())
        entry = _submit(srv, _graph(input_png, "llm", inputs, seed=16), widgets)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert "engine llm:test-model" in entry["outputs"]["7"]["text"][0]
    (_, headers, body), = llm.requests
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "Roe-Testcase" in body["messages"][1]["content"]  # the LLM does get the report
    for path in srv.output_images(entry, "5") + srv.output_images(entry, "6"):
        meta = _metadata(path)
        assert KEY_ENV in meta and KEY not in meta and "Roe-Testcase" not in meta
    assert KEY not in json.dumps(srv.history(entry["prompt_id"])) and KEY not in srv.log_text()


def test_cancel_while_the_llm_never_answers(comfyui_server):
    """POST /interrupt while the node waits for an LLM that never answers: interrupted within seconds."""
    srv = comfyui_server
    inputs = _node_inputs(REPORT + " Cancel test.", engine="openai-compatible", model="test-model",
                          api_key_env=KEY_ENV, fallback=True, timeout=600.0, max_retries=5)
    with FakeOpenAI() as llm:
        llm.script.append(Reply(body=completion("{}"), delay=120))
        inputs["base_url"] = llm.url
        graph = {"3": {"class_type": "MVG_ReportToPrompts", "inputs": inputs},
                 "7": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}}
        prompt_id = srv.post_prompt(graph)
        srv.wait_running(prompt_id)
        deadline = time.monotonic() + 30
        while not llm.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert llm.requests, "the node never asked the LLM"
        time.sleep(0.5)
        t0 = time.monotonic()
        srv.interrupt()
        entry = srv.wait_history(prompt_id, timeout=60, poll=0.05)
        latency = time.monotonic() - t0
    messages = dict(m for m in entry["status"]["messages"])
    assert "execution_interrupted" in messages, entry["status"]
    assert messages["execution_interrupted"]["node_type"] == "MVG_ReportToPrompts"
    print(f"\nReportToPrompts cancel: {latency:.2f} s after POST /interrupt")
    assert latency < 5 and len(llm.requests) == 1


# ------------------------------------------------------------------------------------------ V2 + LLM Settings
def test_v2_report_is_kept_out_of_saved_metadata_and_the_edit_summary_starts_with_the_plan(comfyui_server, input_png):
    """A V2 workflow (report node + MVG LLM Settings with a pasted key, engine rules): the saved PNGs, the
    prompt and /history hold neither; the plan says the settings were ignored; PIE's summary begins with it."""
    srv = comfyui_server
    inputs = dict(zip(V2_ORDER, _v2_widgets(REPORT), strict=True))
    settings = dict(zip(SETTINGS_ORDER, _settings_widgets(PASTED_KEY), strict=True))
    entry = _submit(srv, _graph(input_png, "v2redact", inputs, seed=21, node_type="MVG_ReportToPromptsV2",
                                settings=settings),
                    _v2_widgets(REPORT), _settings_widgets(PASTED_KEY))
    assert entry["status"]["status_str"] == "success", entry["status"]
    plan_text = entry["outputs"]["7"]["text"][0]
    assert "engine rules" in plan_text and "Effusion (positive; right; moderate)" in plan_text
    assert "were ignored: engine is 'rules'" in plan_text
    summary = entry["outputs"]["9"]["text"][0]
    assert summary.startswith(plan_text + "\n\nPIE: 2 stage(s)"), summary[:600]
    saved = srv.output_images(entry, "5") + srv.output_images(entry, "6")
    assert len(saved) == 3
    for path in saved:
        meta = _metadata(path)
        assert "MVG report redacted: sha256" in meta and "[redacted: not an environment variable name]" in meta
        for bit in SECRET_BITS + (PASTED_KEY,):
            assert bit not in meta, f"{bit!r} leaked into {path.name}"
    history = json.dumps(srv.history(entry["prompt_id"]))
    assert not any(bit in history for bit in SECRET_BITS + (PASTED_KEY,))


def test_v2_opt_in_keeps_the_report_in_metadata(comfyui_server, input_png):
    srv = comfyui_server
    inputs = dict(zip(V2_ORDER, _v2_widgets(REPORT, keep=True), strict=True))
    entry = _submit(srv, _graph(input_png, "v2keep", inputs, seed=22, node_type="MVG_ReportToPromptsV2"),
                    _v2_widgets(REPORT, keep=True))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert "ignored" not in entry["outputs"]["7"]["text"][0]  # nothing connected to llm: nothing to ignore
    for path in srv.output_images(entry, "6"):
        meta = _metadata(path)
        assert "Roe-Testcase" in meta and "redacted: sha256" not in meta


def test_v2_llm_engine_without_settings_names_the_fix(comfyui_server):
    srv = comfyui_server
    inputs = dict(zip(V2_ORDER, _v2_widgets(REPORT, engine="openai-compatible"), strict=True))
    graph = {"3": {"class_type": "MVG_ReportToPromptsV2", "inputs": inputs},
             "7": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}}
    entry = srv.wait_history(srv.post_prompt(graph), timeout=60)
    assert entry["status"]["status_str"] == "error"
    error = dict(m for m in entry["status"]["messages"])["execution_error"]
    assert error["node_type"] == "MVG_ReportToPromptsV2"
    assert "connect an MVG LLM Settings node to llm: it names the endpoint and the key's environment variable" \
        in error["exception_message"]


def test_v2_llm_engine_asks_the_endpoint_the_settings_name(comfyui_server, input_png):
    srv = comfyui_server
    content = json.dumps({
        "findings": [{"name": "Effusion", "certainty": "positive", "laterality": "right", "location": None,
                      "severity": "moderate"}],
        "stages": [{"name": "large", "severity": 0.7, "prompt": "a chest x-ray with a large right pleural effusion",
                    "negative_prompt": "text", "roi_hint": "right lower lung"}],
        "direction": "progression", "de_novo": False, "notes": []})
    with FakeOpenAI() as llm:
        llm.script.append(Reply(body=completion(content)))
        inputs = dict(zip(V2_ORDER, _v2_widgets(REPORT + " V2.", engine="openai-compatible"), strict=True))
        inputs["stages"] = 1
        settings = dict(zip(SETTINGS_ORDER, _settings_widgets(KEY_ENV, llm.url), strict=True))
        entry = _submit(srv, _graph(input_png, "v2llm", inputs, seed=23, node_type="MVG_ReportToPromptsV2",
                                    settings=settings),
                        _v2_widgets(REPORT + " V2.", engine="openai-compatible"), _settings_widgets(KEY_ENV, llm.url))
    assert entry["status"]["status_str"] == "success", entry["status"]
    plan_text = entry["outputs"]["7"]["text"][0]
    assert "engine llm:test-model" in plan_text and "ignored" not in plan_text
    (_, headers, body), = llm.requests
    assert headers["authorization"] == f"Bearer {KEY}" and body["model"] == "test-model"
    for path in srv.output_images(entry, "5") + srv.output_images(entry, "6"):
        meta = _metadata(path)
        assert KEY_ENV in meta and KEY not in meta and "Roe-Testcase" not in meta
