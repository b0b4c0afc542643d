"""The shipped templates in ComfyUI's real frontend (headless system Chromium driven by playwright).

What a new user sees: each template is a card in the template browser with a thumbnail and a human title;
clicked, it opens at a zoom where LiteGraph draws text (not the empty boxes of its low-quality mode), with
Load Checkpoint on screen and no node on top of another; after a run (the tiny checkpoint chosen in Load
Checkpoint's menu, *Run* clicked) no node has grown, the previews and the video player still overlap nothing
and every DOM widget (the video player, text previews, Markdown notes) lies inside its node.

One ComfyUI server (the session's ``comfyui_server``) and one browser page for the module; the layout check
itself is also tested on made-up boxes, without a browser.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from conftest import COMFYUI_CHECKPOINT_NAME
from frontend_driver import (QUICK_RUN, VIEWPORT, Frontend, chromium_unavailable, growth_problems, launch_chromium,
                             layout_problems, spill_problems)

RUN_TEMPLATE = "chest"  # the template that is also run (a word of its file name, any case)


def test_layout_problems_flags_overlaps_and_nodes_half_in_a_group():
    def node(i, box):
        return {"id": i, "title": f"n{i}", "box": box}

    group = {"title": "g", "box": [0, 0, 500, 300]}
    clean = {"nodes": [node(1, [10, 10, 100, 100]), node(2, [120, 10, 100, 100]), node(3, [600, 0, 50, 50])],
             "groups": [group, {"title": "h", "box": [500, 0, 200, 300]}]}  # touching edges are fine
    assert layout_problems(clean) == []
    bad = {"nodes": [node(1, [10, 10, 100, 100]), node(2, [100, 100, 100, 100]), node(3, [450, 10, 100, 50])],
           "groups": [group, {"title": "h", "box": [400, 250, 200, 100]}]}
    assert layout_problems(bad) == [
        "node 'n1' (#1) overlaps node 'n2' (#2) by 100 units²",
        "node 'n3' (#3) sticks out of group 'g'",
        "group 'g' overlaps group 'h'",
    ]


def test_growth_and_spill_problems_flag_only_grown_nodes_and_spilling_widgets():
    before = {1: ("a", 100, 50), 2: ("b", 100, 50), 3: ("c", 100, 50)}
    after = {1: ("a", 100, 50), 2: ("b", 90, 40), 3: ("c", 100, 51)}  # shrinking is fine
    assert growth_problems(before, after) == ["node 'c' (#3) grew from 100x50 to 100x51"]
    margins = [("Save Video", "video-preview", "video", 0), ("Note", "text", "textarea", -12)]
    assert spill_problems(margins) == ["'Note': widget 'text' (textarea) spills 12 units over the node"]


@pytest.fixture(scope="module")
def ui(comfyui_server):
    reason = chromium_unavailable()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            frontend = Frontend(browser.new_page(viewport=VIEWPORT), comfyui_server)
            frontend.open()
            yield frontend
        finally:
            browser.close()


@pytest.fixture(scope="module")
def cards(ui):
    ui.open_template_browser()
    found = ui.template_cards()
    assert found, "the template browser shows no card for the pack"
    return found


def _assert_apart(lay: dict, what: str) -> None:
    problems = layout_problems(lay)
    assert not problems, f"{what}:\n" + "\n".join(problems)


@pytest.mark.comfyui
def test_every_template_has_a_card_with_thumbnail_and_title(comfyui_server, cards):
    shipped = sorted(comfyui_server.get_json("/workflow_templates").get("ComfyUI-MVG", []))
    assert sorted(c.name for c in cards) == shipped
    for card in cards:
        try:
            with urllib.request.urlopen(card.thumbnail_url, timeout=30) as r:
                status, content_type = r.status, r.headers["Content-Type"]
        except urllib.error.HTTPError as e:
            status, content_type = e.code, ""
        assert status == 200 and content_type.startswith("image/"), \
            f"{card.name}: GET {card.thumbnail_url} -> {status} {content_type} (the card shows no thumbnail)"
        assert card.thumbnail_width > 0, f"{card.name}: the card's thumbnail did not load in the browser"
        # the card's title is the file name: words a user reads, not an identifier
        assert " " in card.title and "_" not in card.title, \
            f"{card.name}: card title {card.title!r} is not a human title"


@pytest.mark.comfyui
def test_templates_open_readable_without_overlaps(ui, cards):
    for card in cards:
        ui.open_template_browser()
        ui.load_template(card.name)
        ui.close_dialogs()  # e.g. the missing-models warning for the template's SD 1.5 checkpoint
        lay = ui.layout()
        assert lay["scale"] >= lay["threshold"] and not lay["low_quality"], (
            f"{card.name}: opens at {lay['scale']:.0%} zoom, below {lay['threshold']:.0%} where LiteGraph stops "
            "drawing text (nodes are empty boxes): store a readable view in the template's extra.ds")
        _assert_apart(lay, f"{card.name} at opening")
        loader = next(n for n in lay["nodes"] if n["type"] == "CheckpointLoaderSimple")
        assert ui.visible_fraction(loader["id"]) == 1.0, f"{card.name}: Load Checkpoint is off screen at opening"


@pytest.mark.comfyui
def test_chest_template_runs_from_the_ui_without_overlaps(comfyui_server, ui, cards):
    name = next(c.name for c in cards if RUN_TEMPLATE in c.name.lower())
    ui.open_template_browser()
    ui.load_template(name)
    ui.close_dialogs()
    sizes = ui.node_sizes()
    ui.set_widget_values(QUICK_RUN)
    ui.choose_combo("CheckpointLoaderSimple", "ckpt_name", COMFYUI_CHECKPOINT_NAME)
    entry = ui.run(timeout=240)
    assert entry["status"]["status_str"] == "success", entry["status"]
    videos = [v for out in entry["outputs"].values() for v in out.get("images", []) if v["filename"].endswith(".mp4")]
    assert len(videos) == 1, entry["outputs"]
    lay = ui.layout()
    ui.frame_nodes([n["id"] for n in lay["nodes"] if n["type"] == "SaveVideo"])  # players exist while on screen
    ui.wait_videos()
    assert ui.page.locator("video").evaluate_all("vs => vs.filter(v => v.readyState >= 2).length") == 1, \
        "the Save Video node shows no playable video after the run"
    # every preview got what the run gave it: images for image previews (drawn once on screen), text shown
    empty = ui.page.evaluate("""() => window.app.graph._nodes.filter(n => n.mode === 0 && (
        (['PreviewImage', 'SaveImage'].includes(n.type) && !(window.app.nodeOutputs[n.id]?.images || []).length) ||
        (n.type === 'PreviewAny' && !(n.widgets || []).some(w => typeof w.value === 'string' && w.value.length))
      )).map(n => n.title)""")
    assert not empty, f"previews still empty after the run: {empty}"
    _assert_apart(ui.layout(), f"{name} after a run")
    grown = growth_problems(sizes, ui.node_sizes())
    assert not grown, f"{name}: nodes grew in the run:\n" + "\n".join(grown)
    margins = ui.dom_widget_margins()
    assert any(tag == "video" for _, _, tag, _ in margins), f"the video player was not measured: {margins}"
    spills = spill_problems(margins)
    assert not spills, f"{name} after a run:\n" + "\n".join(spills)
