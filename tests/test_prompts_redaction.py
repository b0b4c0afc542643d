"""The report redaction engine (mvg_backend.prompts.redaction), without ComfyUI: tokens and the held-text
store, the API prompt, the UI workflow (positional and named widgets, subgraphs, opt-out, pasted keys),
and the widget layout that maps ``widgets_values`` positions to names."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path

import pytest

from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import redaction as r
from mvg_backend.prompts.redaction import HeldReports, WidgetInfo

NODE = "MVG_ReportToPrompts"
REPORT = "FINDINGS: Moderate right pleural effusion. Patient Jane Roe-Testcase, MRN 99812."
# fake credentials, written as two literals so that secret scanners do not flag this test data
PASTED = "sk-" "pasted-By-Mistake-Q7Zk9"
ROOT = Path(__file__).resolve().parent.parent

# MVG_ReportToPrompts as its schema declares it (nodes/nodes_prompts.py); the ComfyUI tests check the
# live /object_info against the same order.
REPORT_NODE_WIDGETS = [
    WidgetInfo("report", "STRING"), WidgetInfo("domain", "COMBO"), WidgetInfo("stages", "INT"),
    WidgetInfo("direction", "COMBO"), WidgetInfo("engine", "COMBO"), WidgetInfo("model", "STRING"),
    WidgetInfo("base_url", "STRING"), WidgetInfo("api_key_env", "STRING"), WidgetInfo("temperature", "FLOAT"),
    WidgetInfo("seed", "INT", control_after_generate=False), WidgetInfo("fallback", "BOOLEAN"),
    WidgetInfo("caption_style", "COMBO"), WidgetInfo("template", "STRING"), WidgetInfo("allow_de_novo", "BOOLEAN"),
    WidgetInfo("keep_report_in_metadata", "BOOLEAN"), WidgetInfo("timeout", "FLOAT", optional=True),
    WidgetInfo("max_retries", "INT", optional=True), WidgetInfo("max_severity", "COMBO", optional=True),
]
LAYOUT = r.widget_slots(REPORT_NODE_WIDGETS)
# MVG_ReportToPromptsV2 (no LLM widget) and MVG_LLMSettings (no report), as their schemas declare them
V2, SETTINGS = "MVG_ReportToPromptsV2", "MVG_LLMSettings"
V2_LAYOUT = r.widget_slots([
    WidgetInfo("report", "STRING"), WidgetInfo("domain", "COMBO"), WidgetInfo("stages", "INT"),
    WidgetInfo("direction", "COMBO"), WidgetInfo("engine", "COMBO"), WidgetInfo("caption_style", "COMBO"),
    WidgetInfo("template", "STRING"), WidgetInfo("keep_report_in_metadata", "BOOLEAN"),
    WidgetInfo("max_severity", "COMBO")])
SETTINGS_LAYOUT = r.widget_slots([
    WidgetInfo("model", "STRING"), WidgetInfo("base_url", "STRING"), WidgetInfo("api_key_env", "STRING"),
    WidgetInfo("temperature", "FLOAT"), WidgetInfo("seed", "INT", control_after_generate=False),
    WidgetInfo("fallback", "BOOLEAN"), WidgetInfo("allow_de_novo", "BOOLEAN"), WidgetInfo("timeout", "FLOAT"),
    WidgetInfo("max_retries", "INT")])
LAYOUTS = {NODE: LAYOUT, V2: V2_LAYOUT, SETTINGS: SETTINGS_LAYOUT}


def _values(report=REPORT, key_env="OPENAI_API_KEY", keep=False) -> list:
    return [report, "chest_xray", 3, "progression", "rules", "gpt-4o-mini", "https://api.openai.com/v1", key_env,
            0.2, 0, True, "mvg", "", False, keep, 120.0, 2, "severe"]


def _workflow(*nodes: dict, subgraphs=()) -> dict:
    wf = {"nodes": list(nodes), "links": [], "version": 0.4}
    if subgraphs:
        wf["definitions"] = {"subgraphs": list(subgraphs)}
    return {"workflow": wf}


def _token_of(text: str) -> str:
    return f"[MVG report redacted: sha256 {hashlib.sha256(text.encode()).hexdigest()}]"


@pytest.fixture()
def store():
    return HeldReports()


# ------------------------------------------------------------------------------------------ tokens, store
def test_token_is_the_sha256_of_the_text_and_resolves_back(store):
    token = store.token(REPORT)
    assert token == _token_of(REPORT) and r.is_token(token) and r.is_token(f"  {token}\n")
    assert REPORT not in token
    assert r.resolve_report(token, store) == REPORT
    assert r.resolve_report(f" {token} ", store) == REPORT
    assert store.token(REPORT) == token and len(store) == 1  # stable: cached re-runs keep their key
    assert store.token(REPORT + ".") != token and len(store) == 2


def test_plain_text_resolves_to_itself(store):
    assert r.resolve_report(REPORT, store) == REPORT
    assert r.resolve_report("", store) == ""
    assert not r.is_token("[MVG report redacted: sha256 abc]") and not r.is_token(None)


def test_an_unknown_token_fails_with_a_fix(store):
    with pytest.raises(MVGInputError, match="paste the report into the report box"):
        r.resolve_report(_token_of("never held"), store)
    assert store.text("not a token") is None


def test_the_store_keeps_the_newest_reports(store):
    small = HeldReports(capacity=2)
    a, b = small.token("report a"), small.token("report b")
    small.token("report a")  # used again: now the newest
    small.token("report c")
    assert len(small) == 2
    assert small.text(a) == "report a" and small.text(b) is None
    with pytest.raises(MVGInputError):
        r.resolve_report(b, small)
    with pytest.raises(ValueError):
        HeldReports(capacity=0)


def test_the_store_is_thread_safe():
    store = HeldReports(capacity=1000)
    texts = [f"report {i}" for i in range(400)]

    def work(part):
        for t in part:
            assert store.text(store.token(t)) == t

    threads = [threading.Thread(target=work, args=(texts[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 400


def test_the_process_store_is_the_default():
    token = r.HELD.token("held by the process")
    assert r.resolve_report(token) == "held by the process"


# ------------------------------------------------------------------------------------------ api_key_env
@pytest.mark.parametrize("value,kept", [
    ("OPENAI_API_KEY", True), ("_X1", True), ("", True), (None, True),
    (PASTED, False), ("sk proj 123", False), ("1ABC", False), ("A" * 129, False), ("MY-KEY", False),
    # shaped like a variable name, but a key: hf_/gsk_ tokens, a 32-hex Azure key
    ("hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1x", False), ("gsk_" + "Zx8Yw6Vu4Ts2Rq0Po8Nm6Lk4Ji2Hg0Fe", False),
    ("0123456789abcdef0123456789abcdef", False),
])
def test_api_key_env_must_be_a_variable_name(value, kept):
    assert r.redact_key_env(value) == (value if kept else r.KEY_REDACTED)


# ------------------------------------------------------------------------------------------ API prompt
def _prompt(**inputs) -> dict:
    base = dict(zip([n for n in LAYOUT if n], _values(), strict=True))
    base.update(inputs)
    return {"3": {"class_type": NODE, "inputs": base},
            "4": {"class_type": "CLIPTextEncode", "inputs": {"text": REPORT, "report": REPORT}},
            "5": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}


def test_redact_prompt_replaces_the_report_and_a_pasted_key(store):
    prompt = _prompt(api_key_env=PASTED)
    r.redact_prompt(prompt, NODE, store)
    inputs = prompt["3"]["inputs"]
    assert inputs["report"] == _token_of(REPORT) and store.text(inputs["report"]) == REPORT
    assert inputs["api_key_env"] == r.KEY_REDACTED
    assert prompt["4"]["inputs"] == {"text": REPORT, "report": REPORT}  # other node types are not touched
    untouched = {k: v for k, v in _prompt()["3"]["inputs"].items() if k not in ("report", "api_key_env")}
    assert {k: inputs[k] for k in untouched} == untouched
    before = copy.deepcopy(prompt)
    r.redact_prompt(prompt, NODE, store)  # a token is never re-tokenised
    assert prompt == before


def test_redact_prompt_honours_the_opt_out_but_not_for_a_pasted_key(store):
    prompt = _prompt(keep_report_in_metadata=True, api_key_env=PASTED)
    r.redact_prompt(prompt, NODE, store)
    assert prompt["3"]["inputs"]["report"] == REPORT and prompt["3"]["inputs"]["api_key_env"] == r.KEY_REDACTED
    assert len(store) == 0


@pytest.mark.parametrize("keep", ["true", 1, ["9", 0], None])
def test_only_a_literal_true_opts_out(store, keep):
    prompt = _prompt(keep_report_in_metadata=keep)
    r.redact_prompt(prompt, NODE, store)
    assert prompt["3"]["inputs"]["report"] == _token_of(REPORT)


@pytest.mark.parametrize("report", ["", "   ", ["7", 0]])
def test_empty_or_linked_reports_stay_as_they_are(store, report):
    prompt = _prompt(report=report)
    r.redact_prompt(prompt, NODE, store)
    assert prompt["3"]["inputs"]["report"] == report and len(store) == 0


@pytest.mark.parametrize("prompt", [None, [], "x", {"3": None}, {"3": {"class_type": NODE}},
                                    {"3": {"class_type": NODE, "inputs": ["report"]}}])
def test_malformed_prompts_are_left_alone(store, prompt):
    before = copy.deepcopy(prompt)
    r.redact_prompt(prompt, NODE, store)
    assert prompt == before


# ------------------------------------------------------------------------------------------ UI workflow
def test_redact_workflow_uses_the_layout_positions(store):
    info = _workflow({"id": 3, "type": NODE, "widgets_values": _values(key_env=PASTED)},
                     {"id": 6, "type": "SaveImage", "widgets_values": [REPORT]})
    r.redact_workflow(info, NODE, LAYOUT, store)
    values = info["workflow"]["nodes"][0]["widgets_values"]
    expected = _values(report=_token_of(REPORT), key_env=r.KEY_REDACTED)
    assert values == expected
    assert info["workflow"]["nodes"][1]["widgets_values"] == [REPORT]
    assert json.dumps(info).count("Roe-Testcase") == 1  # only in the SaveImage node, which is not ours


def test_redact_workflow_opt_out_reads_the_keep_slot(store):
    info = _workflow({"id": 3, "type": NODE, "widgets_values": _values(keep=True, key_env=PASTED)})
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert info["workflow"]["nodes"][0]["widgets_values"] == _values(keep=True, key_env=r.KEY_REDACTED)


def test_a_true_in_another_slot_is_not_the_opt_out(store):
    values = _values()
    values[10] = values[13] = True  # fallback and allow_de_novo on; keep_report_in_metadata off
    values.append(True)  # one value too many: the layout no longer fits, so the opt-out cannot be trusted
    info = _workflow({"id": 3, "type": NODE, "widgets_values": values})
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert info["workflow"]["nodes"][0]["widgets_values"][0] == _token_of(REPORT)
    info = _workflow({"id": 3, "type": NODE, "widgets_values": _values(keep=True)[:-1] + [False, True]})
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert info["workflow"]["nodes"][0]["widgets_values"][0] == _token_of(REPORT)


def test_positions_come_from_the_layout_not_from_fixed_indices(store):
    """Another node layout: report third, api_key_env first, a seed with a control widget (two slots)
    before keep_report_in_metadata, and an optional widget after it."""
    widgets = [WidgetInfo("api_key_env", "STRING"), WidgetInfo("note", "STRING"), WidgetInfo("report", "STRING"),
               WidgetInfo("extra", "STRING", optional=True), WidgetInfo("seed", "INT"),
               WidgetInfo("keep_report_in_metadata", "BOOLEAN")]
    layout = r.widget_slots(widgets)
    assert layout == ("api_key_env", "note", "report", "seed", None, "keep_report_in_metadata", "extra")
    values = [PASTED, "a note", REPORT, 5, "randomize", False, "an optional value"]
    info = _workflow({"id": 1, "type": "Other", "widgets_values": values})
    r.redact_workflow(info, "Other", layout, store)
    assert values == [r.KEY_REDACTED, "a note", _token_of(REPORT), 5, "randomize", False, "an optional value"]

    kept = [PASTED, "a note", REPORT, 5, "fixed", True, "x"]
    r.redact_workflow(_workflow({"id": 1, "type": "Other", "widgets_values": kept}), "Other", layout, store)
    assert kept == [r.KEY_REDACTED, "a note", REPORT, 5, "fixed", True, "x"]


def test_a_workflow_from_an_older_node_version_is_still_redacted(store):
    """Fewer values (widgets are only ever appended): the shared positions count, and with no keep slot
    there is no opt-out."""
    short = _values(key_env=PASTED)[:9]
    info = _workflow({"id": 3, "type": NODE, "widgets_values": short})
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert short[0] == _token_of(REPORT) and short[7] == r.KEY_REDACTED and len(short) == 9
    tiny = [REPORT]
    r.redact_workflow(_workflow({"id": 3, "type": NODE, "widgets_values": tiny}), NODE, LAYOUT, store)
    assert tiny == [_token_of(REPORT)]


def test_named_widgets_values(store):
    named = dict(zip([n for n in LAYOUT if n], _values(key_env=PASTED), strict=True))
    info = _workflow({"id": 3, "type": NODE, "widgets_values": named})
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert named["report"] == _token_of(REPORT) and named["api_key_env"] == r.KEY_REDACTED
    named_keep = {"report": REPORT, "keep_report_in_metadata": True}
    r.redact_workflow(_workflow({"id": 3, "type": NODE, "widgets_values": named_keep}), NODE, LAYOUT, store)
    assert named_keep["report"] == REPORT


def test_nodes_inside_subgraphs_are_redacted(store):
    inner = {"id": 5, "type": NODE, "widgets_values": _values(key_env=PASTED)}
    nested = {"id": 2, "type": NODE, "widgets_values": _values(report="second report")}
    sub = {"id": "sg-1", "nodes": [inner], "definitions": {"subgraphs": [{"id": "sg-2", "nodes": [nested]}]}}
    info = _workflow({"id": 9, "type": "sg-1", "widgets_values": []}, subgraphs=[sub])
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert inner["widgets_values"][0] == _token_of(REPORT) and inner["widgets_values"][7] == r.KEY_REDACTED
    assert nested["widgets_values"][0] == _token_of("second report")
    assert "Roe-Testcase" not in json.dumps(info)


@pytest.mark.parametrize("info", [None, {}, {"workflow": None}, {"workflow": {"nodes": None}},
                                  {"workflow": {"nodes": [None, 3, {"type": NODE},
                                                          {"type": NODE, "widgets_values": []}]}},
                                  {"workflow": {"nodes": [], "definitions": None}},
                                  {"workflow": {"nodes": [], "definitions": {"subgraphs": None}}}])
def test_malformed_workflows_are_left_alone(store, info):
    before = copy.deepcopy(info)
    r.redact_workflow(info, NODE, LAYOUT, store)
    assert info == before


@pytest.mark.parametrize("layout", [("a", "b"), ("report", "a"), ("report", "api_key_env")])
def test_a_layout_without_what_it_redacts_by_is_an_error(store, layout):
    """A report needs its opt-out slot; a layout with neither a report nor api_key_env redacts nothing."""
    with pytest.raises(ValueError, match="report|keep_report_in_metadata"):
        r.redact_workflow(_workflow(), NODE, layout, store)
    with pytest.raises(ValueError):
        r.check_layout(layout)


def test_v2_and_llm_settings_layouts(store):
    """V2: the report and the opt-out at their own positions, no key slot; the settings node: only its key."""
    v2 = ["FINDINGS: " + REPORT, "chest_xray", 3, "progression", "rules", "mvg", "", False, "severe"]
    kept = [REPORT, "fundus", 2, "regression", "rules", "mvg", "", True, "severe"]
    settings = ["gpt-4o-mini", "https://api.openai.com/v1", PASTED, 0.2, 0, True, False, 120.0, 2]
    named = dict(zip(SETTINGS_LAYOUT, settings, strict=True))
    info = _workflow({"id": 1, "type": V2, "widgets_values": v2}, {"id": 2, "type": V2, "widgets_values": kept},
                     {"id": 3, "type": SETTINGS, "widgets_values": settings},
                     {"id": 4, "type": SETTINGS, "widgets_values": named})
    for node_type, layout in LAYOUTS.items():
        r.check_layout(layout, node_type)
        r.redact_workflow(info, node_type, layout, store)
    assert v2 == [_token_of("FINDINGS: " + REPORT), "chest_xray", 3, "progression", "rules", "mvg", "", False,
                  "severe"]
    assert kept[0] == REPORT  # its own opt-out slot (7), not the legacy node's (14)
    assert settings == ["gpt-4o-mini", "https://api.openai.com/v1", r.KEY_REDACTED, 0.2, 0, True, False, 120.0, 2]
    assert named["api_key_env"] == r.KEY_REDACTED and named["model"] == "gpt-4o-mini"
    prompt = {"1": {"class_type": V2, "inputs": dict(zip(V2_LAYOUT, v2, strict=True)) | {"report": REPORT}},
              "2": {"class_type": SETTINGS, "inputs": {"api_key_env": PASTED, "model": "m"}}}
    for node_type in LAYOUTS:
        r.redact_prompt(prompt, node_type, store)
    assert prompt["1"]["inputs"]["report"] == _token_of(REPORT)
    assert prompt["2"]["inputs"] == {"api_key_env": r.KEY_REDACTED, "model": "m"}


# ------------------------------------------------------------------------------------------ submission
def test_redact_submission_covers_prompt_and_workflow(store):
    body = {"prompt": _prompt(), "client_id": "c",
            "extra_data": {"extra_pnginfo": _workflow({"id": 3, "type": NODE, "widgets_values": _values()})}}
    assert r.redact_submission(body, NODE, LAYOUT, store) is body
    assert body["prompt"]["3"]["inputs"]["report"] == _token_of(REPORT)
    assert body["extra_data"]["extra_pnginfo"]["workflow"]["nodes"][0]["widgets_values"][0] == _token_of(REPORT)
    assert len(store) == 1  # both carry the same report: one token
    for odd in (None, {}, {"prompt": None, "extra_data": None}, {"extra_data": {"extra_pnginfo": None}}):
        assert r.redact_submission(odd, NODE, LAYOUT, store) == odd


# ------------------------------------------------------------------------------------------ widget layout
@pytest.mark.parametrize("widget,slots", [
    (WidgetInfo("seed", "INT"), 2),  # the frontend's legacy rule: INT seed / noise_seed get a control widget
    (WidgetInfo("noise_seed", "INT"), 2),
    (WidgetInfo("seed", "INT", control_after_generate=False), 1),
    (WidgetInfo("steps", "INT"), 1),
    (WidgetInfo("steps", "INT", control_after_generate=True), 2),
    (WidgetInfo("seed", "FLOAT"), 1),
    (WidgetInfo("seed", "STRING"), 1),
    (WidgetInfo("sampler", "COMBO", control_after_generate=True), 2),
    (WidgetInfo("sampler", "COMBO"), 1),
])
def test_widget_slots_count_control_widgets(widget, slots):
    assert widget.slots == slots
    layout = r.widget_slots([WidgetInfo("report", "STRING"), widget, WidgetInfo("after", "BOOLEAN")])
    assert layout == ("report", widget.name, *([None] * (slots - 1)), "after")


def test_widget_slots_put_optional_widgets_last_and_reject_duplicates():
    assert r.widget_slots([WidgetInfo("a", "INT", optional=True), WidgetInfo("b", "INT"), WidgetInfo("c", "INT")]) \
        == ("b", "c", "a")
    with pytest.raises(ValueError, match="duplicate"):
        r.widget_slots([WidgetInfo("a", "INT"), WidgetInfo("a", "STRING", optional=True)])


def test_the_layouts_match_the_shipped_and_the_legacy_workflows(store):
    """Every report node and LLM settings node of the shipped workflows and of the legacy ones (saved before
    V2, tests/fixtures/legacy_workflows) fits its layout exactly, and only its report slot is rewritten."""
    assert len(LAYOUT) == 18 and None not in LAYOUT
    assert (LAYOUT.index("report"), LAYOUT.index("api_key_env"), LAYOUT.index("keep_report_in_metadata")) == (0, 7, 14)
    assert (V2_LAYOUT.index("report"), V2_LAYOUT.index("keep_report_in_metadata"), len(V2_LAYOUT)) == (0, 7, 9)
    assert SETTINGS_LAYOUT.index("api_key_env") == 2 and len(SETTINGS_LAYOUT) == 9
    legacy = sorted((ROOT / "tests" / "fixtures" / "legacy_workflows").glob("*.json"))
    files = sorted((ROOT / "workflows").glob("*.json")) + legacy
    assert len(legacy) == 3
    reports = 0
    for path in files:
        info = {"workflow": json.loads(path.read_text())}
        nodes = [n for n in info["workflow"]["nodes"] if n.get("type") in LAYOUTS]
        assert nodes, path.name
        original = {n["id"]: list(n["widgets_values"]) for n in nodes}
        for node_type, layout in LAYOUTS.items():
            r.redact_workflow(info, node_type, layout, store)
        for node in nodes:
            layout, before = LAYOUTS[node["type"]], original[node["id"]]
            assert len(before) == len(layout), (path.name, node["type"])
            if "api_key_env" in layout:
                assert before[layout.index("api_key_env")] == "OPENAI_API_KEY"
            if "report" in layout:
                reports += 1
                assert before[layout.index("keep_report_in_metadata")] is False
                assert node["widgets_values"] == [_token_of(before[0])] + before[1:], path.name
                assert store.text(node["widgets_values"][0]) == before[0]
            else:
                assert node["widgets_values"] == before
    assert reports == len(files)  # one report node per workflow
