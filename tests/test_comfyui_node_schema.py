"""What the node panel shows, from a real ComfyUI's ``/object_info``: every output of every MVG node has a
tooltip, only the legacy report node is deprecated (hidden from search), and the issue-12 defaults and
options (ROI domain 'auto', SEINE ddim 50, Evaluate's roi output) are what the templates rely on."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.comfyui

MVG_NODES = {"MVG_ReportToPromptsV2", "MVG_LLMSettings", "MVG_ReportToPrompts", "MVG_PromptList", "MVG_ROIMask",
             "MVG_ProgressiveEdit", "MVG_SEINELoader", "MVG_SEINETransition", "MVG_ClassifierLoader",
             "MVG_Evaluate", "MVG_LoadDICOM", "MVG_SaveDICOM"}


@pytest.fixture(scope="module")
def mvg_info(comfyui_server) -> dict:
    return {k: v for k, v in comfyui_server.object_info().items() if k.startswith("MVG_")}


def test_the_pack_registers_its_nodes(mvg_info):
    assert set(mvg_info) == MVG_NODES


def test_every_output_of_every_mvg_node_has_a_tooltip(mvg_info):
    for name, info in mvg_info.items():
        tips = info.get("output_tooltips") or []
        assert len(tips) == len(info["output"]) > 0, name
        missing = [out for out, tip in zip(info["output_name"], tips, strict=True) if not (tip or "").strip()]
        assert not missing, f"{name}: outputs without a tooltip: {missing}"


def test_only_the_legacy_report_node_is_deprecated(mvg_info):
    assert {name for name, info in mvg_info.items() if info.get("deprecated")} == {"MVG_ReportToPrompts"}
    assert mvg_info["MVG_ReportToPrompts"]["display_name"] != mvg_info["MVG_ReportToPromptsV2"]["display_name"]


def test_roi_domain_auto_and_the_scoped_tooltips(mvg_info):
    roi = mvg_info["MVG_ROIMask"]
    domain = roi["input"]["required"]["domain"]
    assert "auto" in domain[1]["options"] and domain[1]["default"] == "chest_xray"
    assert roi["input_order"]["required"][:2] == ["image", "domain"]  # widget order unchanged
    assert roi["input"]["required"]["eye"][1]["tooltip"].startswith("Fundus only")
    assert roi["input"]["required"]["rectangle"][1]["tooltip"].startswith("Only with region 'rectangle'")


def test_seine_defaults_fit_a_cpu_first_run(mvg_info):
    req = mvg_info["MVG_SEINETransition"]["input"]["required"]
    assert (req["sampler"][1]["default"], req["steps"][1]["default"]) == ("ddim", 50)
    for name in ("steps", "cfg", "sampler", "seed", "prompt"):
        tip = req[name][1]["tooltip"]
        assert "Only acts with a SEINE model connected" in tip and "fallback ignores it" in tip, name
    assert "ddpm" in req["steps"][1]["tooltip"] and "250" in req["steps"][1]["tooltip"]
    assert mvg_info["MVG_SEINETransition"]["input_order"]["required"] == [
        "keyframes", "vae", "clip", "frames", "steps", "cfg", "sampler", "seed", "prompt", "method"]


def test_evaluate_appends_the_roi_output(mvg_info):
    ev = mvg_info["MVG_Evaluate"]
    assert ev["output_name"] == ["report", "plot", "passed", "uncertainty", "roi"]
    assert ev["output"][-1] == "IMAGE"
