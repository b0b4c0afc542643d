"""The report redaction as the real ComfyUI runs it: the widget layout that the frontend builds from
``/object_info``, and the ``on_prompt`` handler rewriting exactly those ``widgets_values`` positions (the
engine's own tests, without ComfyUI, are in tests/test_prompts_redaction.py)."""

from __future__ import annotations

import json

import pytest

from fixtures.frontend_layout import frontend_layout as _frontend_layout
from mvg_backend.prompts import redaction

pytestmark = pytest.mark.comfyui

NODE = "MVG_ReportToPrompts"  # the legacy node (LLM settings inline)
V2, SETTINGS = "MVG_ReportToPromptsV2", "MVG_LLMSettings"
REPORT = "FINDINGS: Small left pneumothorax. Patient John Doe-Layoutcase, MRN 55123."
# fake credentials, written as two literals so that secret scanners do not flag this test data
PASTED = "sk-" "pasted-Layout-Z9x8"


def _values(layout, keep: bool) -> list:
    """A distinct, recognisable value in every slot, the report, a pasted key and the opt-out where they go."""
    values = [f"value-{i}" for i in range(len(layout))]
    for name, value in (("report", REPORT), ("api_key_env", PASTED), ("keep_report_in_metadata", keep)):
        if name in layout:
            values[layout.index(name)] = value
    return values


def _without(values: list, index: int) -> list:
    return values[:index] + values[index + 1:]


def test_object_info_gives_the_legacy_layout(comfyui_server):
    layout = _frontend_layout(comfyui_server.object_info(NODE))
    assert layout[0] == "report" and layout[14] == "keep_report_in_metadata" and layout[7] == "api_key_env"
    assert list(layout[15:]) == ["timeout", "max_retries", "max_severity"]  # optional widgets come after the others
    assert len(layout) == 18 and None not in layout  # the seed declares control_after_generate=False: one slot
    seed = comfyui_server.object_info(NODE)["input"]["required"]["seed"]
    assert seed[0] == "INT" and seed[1]["control_after_generate"] is False


def test_the_handler_redacts_the_positions_the_schema_gives(comfyui_server):
    """POST /prompt with a UI workflow: the handler rewrites the report slot and a pasted key, leaves every
    other slot alone, honours the opt-out slot, and reaches into subgraphs; /history shows the result."""
    srv = comfyui_server
    layout = _frontend_layout(srv.object_info(NODE))
    redacted, kept, inner = _values(layout, False), _values(layout, True), _values(layout, False)
    workflow = {"nodes": [{"id": 3, "type": NODE, "widgets_values": redacted},
                          {"id": 4, "type": NODE, "widgets_values": kept},
                          {"id": 5, "type": "sg-1", "widgets_values": []}],
                "definitions": {"subgraphs": [{"id": "sg-1", "nodes": [{"id": 1, "type": NODE,
                                                                         "widgets_values": inner}]}]},
                "links": [], "version": 0.4}
    inputs = dict(zip([n for n in layout if n], _values(layout, False), strict=True))
    inputs.update(domain="chest_xray", stages=2, direction="progression", engine="rules", model="m", base_url="u",
                  api_key_env="OPENAI_API_KEY", temperature=0.2, seed=21, fallback=True, caption_style="mvg",
                  template="", allow_de_novo=False, timeout=30.0, max_retries=0, max_severity="severe")
    graph = {"1": {"class_type": NODE, "inputs": inputs},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
    prompt_id = srv.post_prompt(graph, workflow)
    entry = srv.wait_history(prompt_id, timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert "Pneumothorax (positive; left; small)" in entry["outputs"]["2"]["text"][0]  # the node got the text

    _, _, api, extra, *_ = entry["prompt"]
    assert redaction.is_token(api["1"]["inputs"]["report"])
    nodes = {n["id"]: n["widgets_values"] for n in extra["extra_pnginfo"]["workflow"]["nodes"]}
    sub = extra["extra_pnginfo"]["workflow"]["definitions"]["subgraphs"][0]["nodes"][0]["widgets_values"]
    report, key, keep = (layout.index(n) for n in ("report", "api_key_env", "keep_report_in_metadata"))
    for values in (nodes[3], sub):
        assert redaction.is_token(values[report]) and values[key] == redaction.KEY_REDACTED
        assert [v for i, v in enumerate(values) if i not in (report, key)] \
            == [v for i, v in enumerate(_values(layout, False)) if i not in (report, key)]
    assert nodes[4][report] == REPORT and nodes[4][key] == redaction.KEY_REDACTED and nodes[4][keep] is True
    assert nodes[4][:key] + nodes[4][key + 1:] == kept[:key] + kept[key + 1:]
    assert "Doe-Layoutcase" not in json.dumps([api, nodes[3], sub])


def test_object_info_gives_the_v2_and_llm_settings_layouts(comfyui_server):
    """The layouts the templates' widgets_values follow: V2 without any LLM widget, the settings node with
    one slot for its seed."""
    assert _frontend_layout(comfyui_server.object_info(V2)) == (
        "report", "domain", "stages", "direction", "engine", "caption_style", "template", "keep_report_in_metadata",
        "max_severity")
    assert _frontend_layout(comfyui_server.object_info(SETTINGS)) == (
        "model", "base_url", "api_key_env", "temperature", "seed", "fallback", "allow_de_novo", "timeout",
        "max_retries")


def test_the_handler_redacts_v2_reports_and_llm_settings_keys(comfyui_server):
    """A V2 workflow: its report slot and the settings node's pasted key are rewritten in the prompt, the UI
    workflow (subgraphs too) and /history; every other slot is left alone; the opt-out slot is honoured."""
    srv = comfyui_server
    v2, settings = _frontend_layout(srv.object_info(V2)), _frontend_layout(srv.object_info(SETTINGS))
    report, keep, key = v2.index("report"), v2.index("keep_report_in_metadata"), settings.index("api_key_env")
    workflow = {"nodes": [{"id": 1, "type": V2, "widgets_values": _values(v2, False)},
                          {"id": 2, "type": V2, "widgets_values": _values(v2, True)},
                          {"id": 3, "type": SETTINGS, "widgets_values": _values(settings, False)},
                          {"id": 5, "type": "sg-1", "widgets_values": []}],
                "definitions": {"subgraphs": [{"id": "sg-1", "nodes": [
                    {"id": 1, "type": V2, "widgets_values": _values(v2, False)},
                    {"id": 2, "type": SETTINGS, "widgets_values": _values(settings, False)}]}]},
                "links": [], "version": 0.4}
    graph = {
        "1": {"class_type": V2, "inputs": dict(report=REPORT, domain="chest_xray", stages=2, direction="progression",
                                               engine="rules", caption_style="mvg", template="",
                                               keep_report_in_metadata=False, max_severity="severe",
                                               llm=["3", 0])},
        "3": {"class_type": SETTINGS, "inputs": dict(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=PASTED,
                                                     temperature=0.2, seed=0, fallback=True, allow_de_novo=False,
                                                     timeout=30.0, max_retries=0)},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
    prompt_id = srv.post_prompt(graph, workflow)
    entry = srv.wait_history(prompt_id, timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    plan = entry["outputs"]["2"]["text"][0]
    assert "Pneumothorax (positive; left; small)" in plan  # the node got the text
    assert "MVG LLM Settings connected to llm were ignored: engine is 'rules'" in plan

    _, _, api, extra, *_ = entry["prompt"]
    assert redaction.is_token(api["1"]["inputs"]["report"]) and api["3"]["inputs"]["api_key_env"] == \
        redaction.KEY_REDACTED
    wf = extra["extra_pnginfo"]["workflow"]
    nodes = {n["id"]: n["widgets_values"] for n in wf["nodes"]}
    inner = {n["id"]: n["widgets_values"] for n in wf["definitions"]["subgraphs"][0]["nodes"]}
    for values in (nodes[1], inner[1]):
        assert redaction.is_token(values[report])
        assert _without(values, report) == _without(_values(v2, False), report)
    assert nodes[2] == _values(v2, True) and nodes[2][keep] is True  # opted out: the report stays
    for values in (nodes[3], inner[2]):
        assert values[key] == redaction.KEY_REDACTED
        assert _without(values, key) == _without(_values(settings, False), key)
    assert "Doe-Layoutcase" not in json.dumps([api, nodes[1], inner]) and PASTED not in json.dumps(entry["prompt"])
