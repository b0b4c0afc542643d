"""The report redaction as the real ComfyUI runs it: the widget layout that the frontend builds from
``/object_info``, and the ``on_prompt`` handler rewriting exactly those ``widgets_values`` positions (the
engine's own tests, without ComfyUI, are in tests/test_prompts_redaction.py)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from mvg_backend.prompts import redaction
from mvg_backend.prompts.redaction import WidgetInfo

pytestmark = pytest.mark.comfyui

NODE = "MVG_ReportToPrompts"
REPORT = "FINDINGS: Small left pneumothorax. Patient John Doe-Layoutcase, MRN 55123."
PASTED = "sk-pasted-Layout-Z9x8"


def _frontend_layout(node_info: dict) -> tuple[str | None, ...]:
    """``widgets_values`` slots as ComfyUI's frontend lays them out for an ``/object_info`` entry."""
    widgets = []
    for section, optional in (("required", False), ("optional", True)):
        specs = node_info["input"].get(section, {})
        for name in node_info.get("input_order", {}).get(section, list(specs)):
            type_, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
            type_ = "COMBO" if isinstance(type_, list) else type_
            if type_ not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") or options.get("forceInput"):
                continue
            widgets.append(WidgetInfo(name, type_, options.get("control_after_generate"), optional))
    return redaction.widget_slots(widgets)


def _values(layout, keep: bool) -> list:
    """A distinct, recognisable value in every slot, the report, a pasted key and the opt-out where they go."""
    values = [f"value-{i}" for i in range(len(layout))]
    values[layout.index("report")] = REPORT
    values[layout.index("api_key_env")] = PASTED
    values[layout.index("keep_report_in_metadata")] = keep
    return values


def test_object_info_gives_the_layout_of_the_shipped_workflows(comfyui_server):
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
    body = {"prompt": graph, "client_id": srv.client_id, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
    req = urllib.request.Request(srv.url + "/prompt", data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        prompt_id = json.loads(resp.read())["prompt_id"]
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
