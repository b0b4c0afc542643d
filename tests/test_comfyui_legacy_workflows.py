"""Workflows saved before issue 12 still load and run in a real ComfyUI: the three templates as they
shipped then (tests/fixtures/legacy_workflows/, copied from workflows/ before the V2 report node) hold the
deprecated ``MVG_ReportToPrompts`` with its LLM settings inline, ``MVG_ROIMask`` with an explicit domain, and
``MVG_SEINETransition`` with ddpm 250. Their positional ``widgets_values`` must still fit today's schemas
(taken from the live ``/object_info`` as the frontend lays them out), and the legacy report node must give
the same plan as before: the engine's plan for those values, and the V2 node's for the same values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.frontend_layout import api_inputs, frontend_layout
from mvg_backend.prompts import plan

pytestmark = pytest.mark.comfyui

LEGACY = sorted((Path(__file__).resolve().parent / "fixtures" / "legacy_workflows").glob("*.json"))
V2_INPUTS = ("report", "domain", "stages", "direction", "engine", "caption_style", "template",
             "keep_report_in_metadata", "max_severity")


def test_the_legacy_templates_are_there():
    assert [p.stem for p in LEGACY] == ["mvg_chest_xray", "mvg_fundus", "mvg_skin"]


@pytest.mark.parametrize("workflow", LEGACY, ids=lambda p: p.stem)
def test_every_mvg_node_of_a_legacy_workflow_keeps_its_values(comfyui_server, workflow):
    """Nothing shifted: every MVG node's saved values fill today's layout exactly, by the same names."""
    info = comfyui_server.object_info()
    nodes = [n for n in json.loads(workflow.read_text())["nodes"] if n["type"].startswith("MVG_")]
    assert {n["type"] for n in nodes} >= {"MVG_ReportToPrompts", "MVG_ROIMask", "MVG_ProgressiveEdit",
                                          "MVG_SEINETransition", "MVG_Evaluate"}
    for node in nodes:
        assert node["type"] in info, f"{node['type']} is no longer registered"
        inputs = api_inputs(info[node["type"]], node["widgets_values"])
        if node["type"] == "MVG_SEINETransition":  # saved with the old defaults: kept as saved
            assert (inputs["sampler"], inputs["steps"]) == ("ddpm", 250)
        if node["type"] == "MVG_ROIMask":
            assert inputs["domain"] == workflow.stem.removeprefix("mvg_")
    assert info["MVG_ReportToPrompts"]["deprecated"] is True


@pytest.mark.parametrize("workflow", LEGACY, ids=lambda p: p.stem)
def test_a_legacy_report_node_gives_the_same_plan(comfyui_server, workflow):
    srv = comfyui_server
    info = srv.object_info()
    (node,) = [n for n in json.loads(workflow.read_text())["nodes"] if n["type"] == "MVG_ReportToPrompts"]
    legacy = api_inputs(info["MVG_ReportToPrompts"], node["widgets_values"])
    assert legacy["domain"] == workflow.stem.removeprefix("mvg_") and legacy["engine"] == "rules"
    assert frontend_layout(info["MVG_ReportToPromptsV2"]) == V2_INPUTS
    graph = {"1": {"class_type": "MVG_ReportToPrompts", "inputs": legacy},
             "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
             "3": {"class_type": "MVG_ReportToPromptsV2", "inputs": {k: legacy[k] for k in V2_INPUTS}},
             "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}}
    entry = srv.run(graph, timeout=120)
    expected = plan(legacy["report"], legacy["domain"], legacy["stages"], legacy["direction"], legacy["engine"],
                    caption_style=legacy["caption_style"], template=legacy["template"],
                    max_severity=legacy["max_severity"]).describe()
    assert entry["outputs"]["2"]["text"][0] == expected
    assert entry["outputs"]["4"]["text"][0] == expected
    assert "stage 3" in expected and "no positive finding" not in expected
