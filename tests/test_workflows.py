"""The shipped UI-format workflows: valid, consistently linked, and in sync with their generator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))


def test_one_workflow_per_domain():
    assert [p.stem for p in WORKFLOWS] == ["mvg_chest_xray", "mvg_fundus", "mvg_skin"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_links_are_consistent(path):
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_node_id"] == max(nodes) and wf["last_link_id"] == max(link[0] for link in wf["links"])
    for link_id, src, src_slot, dst, dst_slot, link_type in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert out["type"] == link_type and inp["type"] in (link_type, "*")
    linked = {(n["id"], i) for n in wf["nodes"] for i, inp in enumerate(n["inputs"]) if inp["link"] is not None}
    assert linked == {(link[3], link[4]) for link in wf["links"]}  # every input of every node is wired
    edit = next(n for n in wf["nodes"] if n["type"] == "MVG_ProgressiveEdit")
    assert edit["widgets_values"] == [10, 0.5, 50, 7.5, "ddim", "ddim_uniform", 0.01, 0.75, 0, "fixed", "latent", True]
    assert not re.search(r"sk-[a-z0-9]{8,}", json.dumps(wf).lower())  # no key, only the variable's name
    report = next(n for n in wf["nodes"] if n["type"] == "MVG_ReportToPrompts")
    assert report["widgets_values"][7] == "OPENAI_API_KEY" and report["widgets_values"][4] == "rules"
    assert report["widgets_values"][1] == path.stem.removeprefix("mvg_")


def test_generator_reproduces_the_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_workflows.py"), str(tmp_path)], check=True,
                   capture_output=True)
    assert {p.name: p.read_text() for p in sorted(tmp_path.glob("*.json"))} == {p.name: p.read_text() for p in WORKFLOWS}
