"""The shipped templates (workflows/*.json): consistently linked, laid out so that nothing overlaps in ComfyUI's
frontend, runnable as shipped (sample image, checkpoint download metadata), and in sync with their generator."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
SAMPLES = ROOT / "sample_inputs"
DOMAINS = {"chest_xray", "fundus", "skin"}

# What ComfyUI's frontend 1.27.10 renders for a fresh node of each type at 1600x1000 ([w, h] without the title
# bar), measured with playwright by `scripts/screenshots.py --check` (frontend_driver.Frontend.fresh_sizes). A loaded
# node takes max(stored size, this); in runs of the templates no node grew, and the previews, the video player, the
# Preview Any text and the notes stayed inside their nodes (tests/test_frontend.py checks it for the chest one).
RENDERED_MIN = {
    "CheckpointLoaderSimple": (270, 98), "LoadImage": (274, 102), "MVG_ROIMask": (270, 310),
    "MVG_ReportToPromptsV2": (400, 300), "MVG_LLMSettings": (270, 250), "MVG_ProgressiveEdit": (273, 422),
    "MVG_SEINETransition": (400, 360), "MVG_SEINELoader": (270, 102), "PreviewImage": (140, 26),
    "SaveImage": (270, 58), "PreviewAny": (140, 26), "CreateVideo": (270, 78), "SaveVideo": (270, 106),
    "CLIPVisionLoader": (270, 58), "MVG_ClassifierLoader": (270, 78), "MVG_Evaluate": (272, 390),
    "MarkdownNote": (140, 60),
}
TITLE_H = 30  # LiteGraph.NODE_TITLE_HEIGHT: the title bar is drawn above pos
MIN_GAP = 40
LOD_SCALE = 8 / 14  # frontend 1.27: below this zoom nodes are drawn without text (MinFontSizeForLOD 8 / 14 px)
OUTPUT_TYPES = {"PreviewImage", "SaveImage", "PreviewAny", "SaveVideo"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def node_box(node: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) as the frontend draws the node, title bar included; a title wider than the node widens it
    (about 7 px per character at 14 px, plus the collapse dot and padding: 7.5 px and 40 px here)."""
    min_w, min_h = RENDERED_MIN[node["type"]]
    title_w = 7.5 * len(node.get("title", "")) + 40
    w, h = max(node["size"][0], min_w, title_w), max(node["size"][1], min_h)
    x, y = node["pos"]
    return x, y - TITLE_H, x + w, y + h


def gap(a: tuple, b: tuple) -> float:
    """Distance between two boxes (negative: they overlap)."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def domain_of(wf: dict) -> str:
    return next(n for n in wf["nodes"] if n["type"] == "MVG_ReportToPromptsV2")["widgets_values"][1]


def test_one_template_per_domain_with_a_thumbnail_and_a_human_title():
    assert len(WORKFLOWS) == 3 and {domain_of(load(p)) for p in WORKFLOWS} == DOMAINS
    for path in WORKFLOWS:
        # frontend 1.27 titles a custom node pack's template with its file name and describes it with the same
        # name ('-'/'_' as spaces), so the name is the title; extra.info keeps title and description too
        assert path.stem.startswith("MVG ") and "_" not in path.stem, path.stem
        info = load(path)["extra"]["info"]
        assert info["title"] == path.stem and 40 < len(info["description"]) < 200
        thumb = path.with_suffix(".jpg")  # the card requests <name>.jpg
        assert thumb.read_bytes()[:3] == b"\xff\xd8\xff" and thumb.stat().st_size < 100_000


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_links_are_consistent(path):
    wf = load(path)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_node_id"] == max(nodes) and wf["last_link_id"] == max(link[0] for link in wf["links"])
    for link_id, src, src_slot, dst, dst_slot, link_type in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert out["type"] == link_type and inp["type"] in (link_type, "*")
    linked = {(n["id"], i) for n in wf["nodes"] for i, inp in enumerate(n["inputs"]) if inp["link"] is not None}
    assert linked == {(link[3], link[4]) for link in wf["links"]}
    by_type = {n["type"]: n for n in wf["nodes"]}
    assert by_type["MVG_ProgressiveEdit"]["widgets_values"] == \
        [10, 0.5, 50, 7.5, "ddim", "ddim_uniform", 0.01, 0.75, 0, "fixed", "latent", True]
    assert not re.search(r"sk-[a-z0-9]{8,}", json.dumps(wf).lower())  # no key, only the variable's name
    report = by_type["MVG_ReportToPromptsV2"]["widgets_values"]
    assert report[1:] == [domain_of(wf), 3, "progression", "rules", "mvg", "", False, "severe"] and report[0]
    assert by_type["MVG_LLMSettings"]["widgets_values"][2] == "OPENAI_API_KEY"
    assert by_type["MVG_ROIMask"]["widgets_values"][0] == "auto"  # the domain comes from the report's prompts
    seine = by_type["MVG_SEINETransition"]["widgets_values"]
    assert (seine[1], seine[3]) == (50, "ddim")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_runs_as_shipped_or_fails_as_a_whole(path):
    """The sample image ships, the checkpoint carries its download, optional loaders are off, and every output
    depends on the image, the checkpoint and the report (a run missing one is refused; nothing runs alone)."""
    wf = load(path)
    nodes = {n["id"]: n for n in wf["nodes"]}
    by_type = {n["type"]: n for n in wf["nodes"]}
    image = by_type["LoadImage"]["widgets_values"][0]
    assert (SAMPLES / image).is_file() and (SAMPLES / image).stat().st_size < 250_000
    ckpt = by_type["CheckpointLoaderSimple"]
    # what frontend 1.27 reads for its Missing Models dialog: properties.models entries whose name is a widget value
    (model,) = ckpt["properties"]["models"]
    assert model["name"] == ckpt["widgets_values"][0] and model["directory"] == "checkpoints"
    assert model["url"].startswith("https://huggingface.co/") and model["name"] in model["url"]
    modes = {n["type"]: n["mode"] for n in wf["nodes"]}
    assert modes["MVG_SEINELoader"] == 4 and modes["MVG_LLMSettings"] == 4 and modes["CLIPVisionLoader"] == 2
    seine_link = next(i["link"] for i in by_type["MVG_SEINETransition"]["inputs"] if i["name"] == "seine_model")
    assert next(link for link in wf["links"] if link[0] == seine_link)[1] == by_type["MVG_SEINELoader"]["id"]
    active = {i for i, n in nodes.items() if n["mode"] == 0 and n["type"] != "MarkdownNote"}
    parents = {i: set() for i in nodes}
    for _, src, _, dst, _, _ in wf["links"]:
        if src in active:
            parents[dst].add(src)

    def ancestors(node_id: int) -> set[str]:
        seen, todo = set(), [node_id]
        while todo:
            for p in parents[todo.pop()] - seen:
                seen.add(p)
                todo.append(p)
        return {nodes[i]["type"] for i in seen}

    outputs = [i for i in active if nodes[i]["type"] in OUTPUT_TYPES]
    assert len(outputs) >= 7
    for i in outputs:
        assert {"LoadImage", "CheckpointLoaderSimple", "MVG_ReportToPromptsV2"} <= ancestors(i), nodes[i]["title"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_layout_nothing_overlaps_groups_hold_their_nodes(path):
    wf = load(path)
    boxes = {n["id"]: node_box(n) for n in wf["nodes"]}
    ids = sorted(boxes)
    for k, a in enumerate(ids):
        for b in ids[k + 1:]:
            assert gap(boxes[a], boxes[b]) >= MIN_GAP, (a, b, boxes[a], boxes[b])
    groups = wf["groups"]
    assert [g["title"][0] for g in groups] == ["1", "2", "3", "4", "5"]
    rects = [(x, y, x + w, y + h) for x, y, w, h in (g["bounding"] for g in groups)]
    for g, rect in zip(groups, rects):
        title_strip = rect[1] + g["font_size"] * 1.4
        inside = [i for i, box in boxes.items() if rect[0] <= box[0] and box[2] <= rect[2] and title_strip <= box[1]
                  and box[3] <= rect[3]]
        assert inside, g["title"]
        assert any(next(n for n in wf["nodes"] if n["id"] == i)["type"] == "MarkdownNote" for i in inside)
    for i, box in boxes.items():  # every node in exactly one group
        assert sum(r[0] <= box[0] and box[2] <= r[2] and r[1] <= box[1] and box[3] <= r[3] for r in rects) == 1, i
    for a, b in zip(rects, rects[1:]):  # left to right, apart
        assert b[0] - a[2] >= MIN_GAP
    titles = [n.get("title", "") for n in wf["nodes"] if n["type"] != "MarkdownNote"]
    assert max(map(len, titles)) <= 26, titles  # short titles: none is cut off or widens its node


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_opens_at_a_readable_zoom_on_the_inputs(path):
    wf = load(path)
    ds = wf["extra"]["ds"]
    assert ds["scale"] >= LOD_SCALE + 0.15  # text is drawn, and readable
    x, y, w, _ = wf["groups"][0]["bounding"]
    # screen = (canvas + offset) * scale, in a 1600x1000 window: the inputs group is in view, top left
    left, top = (x + ds["offset"][0]) * ds["scale"], (y + ds["offset"][1]) * ds["scale"]
    assert 0 <= left <= 100 and 0 <= top <= 100 and left + w * ds["scale"] < 1600


def decoded(path: Path):
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(float)


def test_generator_reproduces_the_files(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_workflows.py"), str(tmp_path)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted(p.name for p in (ROOT / "workflows").iterdir())
    for name in made:
        shipped, fresh = ROOT / "workflows" / name, tmp_path / name
        if name.endswith(".json"):
            assert fresh.read_text() == shipped.read_text(), name
        else:  # JPEG bytes may differ between OpenCV builds; the pixels may not (beyond the codec's rounding)
            assert abs(decoded(fresh) - decoded(shipped)).mean() < 1.0, name


def test_sample_inputs_are_reproduced_by_their_script(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_sample_inputs.py"), str(tmp_path)], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    made = sorted(p.name for p in tmp_path.glob("*.png"))
    assert made == sorted(p.name for p in SAMPLES.glob("*.png")) and len(made) == 3
    for name in made:  # lossless: the same pixels, whatever zlib wrote
        assert (decoded(tmp_path / name) == decoded(SAMPLES / name)).all(), name
    assert "licence" in (SAMPLES / "README.md").read_text()


def test_copy_sample_inputs_never_overwrites(tmp_path):
    spec = importlib.util.spec_from_file_location("mvg_pack_entry", ROOT / "__init__.py")  # the pack's entry
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    copy_sample_inputs = entry.copy_sample_inputs
    mine = tmp_path / "mvg_skin.png"
    mine.write_bytes(b"the user's own file")
    assert copy_sample_inputs(tmp_path) == ["mvg_chest_xray.png", "mvg_fundus.png"]
    assert mine.read_bytes() == b"the user's own file"
    assert (tmp_path / "mvg_fundus.png").read_bytes() == (SAMPLES / "mvg_fundus.png").read_bytes()
    assert copy_sample_inputs(tmp_path) == []
