"""Drive ComfyUI's real frontend (headless Chromium via playwright) the way a user does.

Shared by ``tests/test_frontend.py`` and ``scripts/screenshots.py``; no pytest here.

    with sync_playwright() as p:
        browser = launch_chromium(p)
        ui = Frontend(browser.new_page(viewport=VIEWPORT), server)
        ui.open()
        ui.open_template_browser()         # sidebar *Templates*, category ComfyUI-MVG
        cards = ui.template_cards()        # the pack's cards
        ui.load_template(cards[0].name)    # click the card
        layout = ui.layout()               # scale, LOD threshold, every node's rendered box
        ui.choose_combo("CheckpointLoaderSimple", "ckpt_name", "tiny.safetensors")
        sizes = ui.node_sizes()            # every node's size, to compare after a run
        entry = ui.run()                   # click Run, wait for /history
        growth_problems(sizes, ui.node_sizes())  # nodes that grew in the run
        spill_problems(ui.dom_widget_margins())  # DOM widgets (player, text, notes) sticking out of their node

Facts about frontend 1.27.10 this relies on (read from its built JS):

- the template browser lists a pack's ``example_workflows`` / ``workflows`` JSON files under *Custom Nodes*
  by file name (the card's title is the file stem) with the thumbnail ``<stem>.jpg`` next to it, served at
  ``/api/workflow_templates/<pack folder>/<file>``; a card is ``[data-testid="template-workflow-<stem>"]``;
- LiteGraph draws text only when ``ds.scale >= min_font_size_for_lod / (NODE_TEXT_SIZE * sqrt(dpr))``
  (8 / 14 = 0.571 at the defaults); below it nodes are drawn as empty boxes (``canvas.low_quality``);
- a workflow without ``extra.ds`` opens fitted to the view (``fitView``), one with it at that scale/offset.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHROMIUM",
    "QUICK_RUN",
    "VIEWPORT",
    "Card",
    "Frontend",
    "FrontendError",
    "chromium_unavailable",
    "growth_problems",
    "launch_chromium",
    "layout_problems",
    "spill_problems",
]

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1600, "height": 1000}
# a run of minutes, not the templates' hours on a CPU (not what a user runs): per stage one round of 2
# steps (γ 0.5: one UNet call), 3 frames per transition
QUICK_RUN = {"MVG_ProgressiveEdit": {"rounds": 1, "steps": 2}, "MVG_SEINETransition": {"frames": 3}}


class FrontendError(RuntimeError):
    """The frontend did not do what a user would see it do (no card, no dialog, run failed...)."""


def _system_chromium() -> str | None:
    return str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")


def chromium_unavailable() -> str | None:
    """Why the frontend cannot be driven here (``None`` when playwright and the system chromium are there)."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install -r requirements-dev.txt"
    if _system_chromium() is None:
        return f"no chromium at {CHROMIUM} or on PATH: apt-get install chromium (Debian), as .ci/run does"
    return None


def launch_chromium(playwright):
    """The system chromium (never a downloaded one), headless."""
    return playwright.chromium.launch(executable_path=_system_chromium(), args=["--no-sandbox"])


@dataclass(frozen=True)
class Card:
    """One template card: its file stem, shown title, thumbnail URL and whether the image loaded."""

    name: str
    title: str
    thumbnail_url: str
    thumbnail_width: int  # the <img>'s naturalWidth: 0 when it did not load


def _intersection(a: list[float], b: list[float]) -> float:
    dx = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return dx * dy if dx > 0 and dy > 0 else 0.0


def layout_problems(layout: dict[str, Any]) -> list[str]:
    """What a user would see wrong in a ``Frontend.layout()``: nodes on top of each other, groups on top of
    each other, nodes half in a group (boxes ``x, y, w, h`` in graph units, title bars included)."""
    nodes, groups = layout["nodes"], layout["groups"]
    problems = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if area := _intersection(a["box"], b["box"]):
                problems.append(f"node {a['title']!r} (#{a['id']}) overlaps node {b['title']!r} (#{b['id']}) "
                                f"by {area:.0f} units²")
        for g in groups:
            if 0 < _intersection(a["box"], g["box"]) < a["box"][2] * a["box"][3]:
                problems.append(f"node {a['title']!r} (#{a['id']}) sticks out of group {g['title']!r}")
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            if _intersection(a["box"], b["box"]):
                problems.append(f"group {a['title']!r} overlaps group {b['title']!r}")
    return problems


def growth_problems(before: dict[int, tuple[str, int, int]], after: dict[int, tuple[str, int, int]]) -> list[str]:
    """The nodes that are wider or taller in ``after`` than in ``before`` (two ``Frontend.node_sizes()``)."""
    return [f"node {title!r} (#{i}) grew from {w0}x{h0} to {after[i][1]}x{after[i][2]}"
            for i, (title, w0, h0) in before.items() if i in after and (after[i][1] > w0 or after[i][2] > h0)]


def spill_problems(margins: list[tuple[str, str, str, int]]) -> list[str]:
    """The DOM widgets that stick out of their node, from a ``Frontend.dom_widget_margins()``."""
    return [f"{title!r}: widget {widget!r} ({tag}) spills {-margin} units over the node"
            for title, widget, tag, margin in margins if margin < 0]


# every node's rendered box: getBounding() is pos/size plus the title bar (what LiteGraph draws and
# hit-tests); drawn once first so nodes that size themselves on draw (image previews) are up to date
_LAYOUT_JS = """() => {
  const c = window.app.canvas, g = window.app.graph, L = window.LiteGraph;
  c.draw(true, true);
  const dpr = window.devicePixelRatio || 1;
  const threshold = c.min_font_size_for_lod ? c.min_font_size_for_lod / (L.NODE_TEXT_SIZE * Math.sqrt(dpr)) : 0;
  return {
    scale: c.ds.scale, offset: [...c.ds.offset], threshold, low_quality: c.low_quality,
    canvas: [c.canvas.width / dpr, c.canvas.height / dpr],
    nodes: g._nodes.map(n => ({id: n.id, type: n.type, title: n.title, mode: n.mode,
                               box: Array.from(n.getBounding())})),
    groups: (g._groups || []).map(gr => ({title: gr.title, box: Array.from(gr._bounding)})),
  };
}"""


# a node's DOM widgets (and the <video>/<img> in them) against the node's body, in graph units: the smallest
# distance from an element's edge to the node's edge (negative: it sticks out); hidden elements are skipped
_DOM_MARGINS_JS = """id => { const c = window.app.canvas, ds = c.ds, r = c.canvas.getBoundingClientRect(), out = [];
  const n = window.app.graph.getNodeById(id);
  const x0 = r.left + (n.pos[0] + ds.offset[0]) * ds.scale, y0 = r.top + (n.pos[1] + ds.offset[1]) * ds.scale;
  const x1 = x0 + n.size[0] * ds.scale, y1 = y0 + n.size[1] * ds.scale;
  for (const w of n.widgets || []) { if (!w.element) continue;
    for (const el of [w.element, ...w.element.querySelectorAll('video,img')]) { const e = el.getBoundingClientRect();
      if (!e.width) continue;
      out.push([n.title, w.name, el.tagName.toLowerCase(),
                Math.round(Math.min(e.left - x0, e.top - y0, x1 - e.right, y1 - e.bottom) / ds.scale)]); } }
  return out; }"""


class Frontend:
    """One browser page on a ComfyUI server (``tests/comfyui_harness.ComfyUIServer``)."""

    def __init__(self, page, server, pack_name: str = "ComfyUI-MVG"):
        self.page = page
        self.server = server
        self.pack_name = pack_name

    # ------------------------------------------------------------------ page
    def open(self, timeout: float = 90.0) -> None:
        """Load the app and wait until the graph canvas is up."""
        self.page.goto(self.server.url, wait_until="networkidle", timeout=timeout * 1000)
        self.page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                                    "window.app.canvas.canvas.width > 0", timeout=timeout * 1000)
        self.page.wait_for_timeout(1000)  # first-run dialogs open a moment after the canvas

    def set_setting(self, setting_id: str, value: Any) -> None:
        """Change a frontend setting as the settings dialog does (kept server-side for this user)."""
        self.page.evaluate("([k, v]) => window.app.extensionManager.setting.set(k, v)", [setting_id, value])

    def close_dialogs(self) -> None:
        """Close every open dialog with its close button (Escape where a dialog has none)."""
        for _ in range(5):
            dialogs = self.page.locator(".p-dialog:visible")
            if not dialogs.count():
                return
            close = dialogs.last.locator("button[aria-label=Close]")
            if close.count():
                close.first.click()
            else:
                self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(300)
        raise FrontendError("a dialog does not close")

    def visible_dialog_text(self) -> str:
        dialogs = self.page.locator(".p-dialog:visible")
        return dialogs.last.inner_text() if dialogs.count() else ""

    # ------------------------------------------------------------------ template browser
    def open_template_browser(self) -> None:
        """Show the pack's cards in the template browser (sidebar *Templates*, category = the pack)."""
        dialog = self.page.get_by_test_id("template-workflows-content")
        if not dialog.is_visible():
            self.close_dialogs()
            self.page.get_by_role("button", name="Templates", exact=True).click()
            dialog.wait_for(state="visible", timeout=30_000)
        category = dialog.get_by_role("option", name=self.pack_name, exact=True)
        if not category.count():
            raise FrontendError(f"the template browser has no category {self.pack_name!r} (Custom Nodes): "
                                "the pack's workflows folder was not found")
        category.click()
        self.page.locator("[data-testid^=template-workflow-]").first.wait_for(state="visible", timeout=30_000)

    def template_cards(self, timeout: float = 20.0) -> list[Card]:
        """The pack's cards, once each thumbnail has loaded or failed (the browser must be open)."""
        cards = self.page.locator("[data-testid^=template-workflow-]")
        deadline = time.monotonic() + timeout
        while True:  # an <img> that failed is hidden; one still loading is not complete
            states = cards.evaluate_all("cs => cs.map(c => { const i = c.querySelector('img'); "
                                        "return !i || (i.complete && i.getAttribute('src') !== null) "
                                        "|| i.style.display === 'none'; })")
            if all(states) or time.monotonic() > deadline:
                break
            self.page.wait_for_timeout(200)
        rows = cards.evaluate_all("""cs => cs.map(c => { const i = c.querySelector('img');
            return {name: c.dataset.testid.replace(/^template-workflow-/, ''),
                    title: (c.querySelector('h3') || {}).textContent || '',
                    width: i && i.style.display !== 'none' ? i.naturalWidth : 0}; })""")
        base = f"{self.server.url}/api/workflow_templates/{self.pack_name}"
        return [Card(r["name"], r["title"].strip(), f"{base}/{urllib.parse.quote(r['name'])}.jpg", int(r["width"]))
                for r in rows]

    def load_template(self, name: str, timeout: float = 60.0) -> None:
        """Click the card ``name`` (file stem) in the open template browser; wait until its graph is drawn."""
        self.page.get_by_test_id(f"template-workflow-{name}").click()
        self.page.get_by_test_id("template-workflows-content").wait_for(state="hidden", timeout=timeout * 1000)
        self.page.wait_for_function("() => window.app.graph._nodes.length > 0", timeout=timeout * 1000)
        self.page.wait_for_timeout(1500)  # fitView runs on the next animation frame; previews load

    # ------------------------------------------------------------------ canvas
    def layout(self) -> dict[str, Any]:
        """Canvas scale, the text threshold, the canvas size and every node's rendered box (graph units)."""
        return self.page.evaluate(_LAYOUT_JS)

    def node_sizes(self) -> dict[int, tuple[str, int, int]]:
        """Every node's ``(title, w, h)`` by id (``size``: the body, title bar excluded)."""
        rows = self.page.evaluate("() => window.app.graph._nodes.map(n => [n.id, n.title, "
                                  "Math.round(n.size[0]), Math.round(n.size[1])])")
        return {i: (title, w, h) for i, title, w, h in rows}

    def fresh_sizes(self, node_types: list[str]) -> dict[str, tuple[int, int]]:
        """The body size ``(w, h)`` a new node of each type renders at (``RENDERED_MIN`` in tests/test_workflows.py)."""
        sizes = self.page.evaluate("ts => Object.fromEntries(ts.map(t => { const n = window.LiteGraph.createNode(t); "
                                   "return [t, [Math.round(n.size[0]), Math.round(n.size[1])]]; }))", node_types)
        return {t: (w, h) for t, (w, h) in sizes.items()}

    def dom_widget_margins(self) -> list[tuple[str, str, str, int]]:
        """``(node title, widget, tag, margin)`` for every shown DOM widget (video player, text previews, Markdown
        notes) and the video/image in it: how many graph units it lies inside its node (negative: it spills
        over). Each node is framed in turn: the frontend shows a DOM widget only while its node is on screen."""
        ids = self.page.evaluate("() => window.app.graph._nodes.filter(n => (n.widgets || [])"
                                 ".some(w => w.element)).map(n => n.id)")
        margins = []
        for node_id in ids:
            self.frame_nodes([node_id])
            margins += [tuple(row) for row in self.page.evaluate(_DOM_MARGINS_JS, node_id)]
        return margins

    def visible_fraction(self, node_id: int) -> float:
        """How much of a node's box lies inside the canvas at the current view (0..1)."""
        lay = self.layout()
        node = next(n for n in lay["nodes"] if n["id"] == node_id)
        x, y, w, h = node["box"]
        s, (ox, oy), (cw, ch) = lay["scale"], lay["offset"], lay["canvas"]
        left, top, right, bottom = (x + ox) * s, (y + oy) * s, (x + w + ox) * s, (y + h + oy) * s
        inside = max(0.0, min(right, cw) - max(left, 0.0)) * max(0.0, min(bottom, ch) - max(top, 0.0))
        return inside / max((right - left) * (bottom - top), 1e-9)

    def view(self, scale: float, offset: tuple[float, float]) -> None:
        self.page.evaluate("([s, o]) => { const c = window.app.canvas; c.ds.scale = s; c.ds.offset = o; "
                           "c.setDirty(true, true); }", [scale, list(offset)])
        self.page.wait_for_timeout(300)

    def frame_nodes(self, node_ids: list[int], margin: float = 30.0, max_scale: float = 1.0) -> float:
        """Zoom and pan so the nodes fill the canvas (at most ``max_scale``); returns the scale."""
        lay = self.layout()
        boxes = [n["box"] for n in lay["nodes"] if n["id"] in node_ids]
        if not boxes:
            raise FrontendError(f"no nodes {node_ids} in the graph")
        x0 = min(b[0] for b in boxes) - margin
        y0 = min(b[1] for b in boxes) - margin
        x1 = max(b[0] + b[2] for b in boxes) + margin
        y1 = max(b[1] + b[3] for b in boxes) + margin
        cw, ch = lay["canvas"]
        scale = min(max_scale, cw / (x1 - x0), ch / (y1 - y0))
        self.view(scale, (cw / scale / 2 - (x0 + x1) / 2, ch / scale / 2 - (y0 + y1) / 2))
        return scale

    def graph_bounds(self, margin: float = 30.0) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` around every node and group, in graph units."""
        lay = self.layout()
        boxes = [n["box"] for n in lay["nodes"]] + [g["box"] for g in lay["groups"]]
        return (min(b[0] for b in boxes) - margin, min(b[1] for b in boxes) - margin,
                max(b[0] + b[2] for b in boxes) + margin, max(b[1] + b[3] for b in boxes) + margin)

    def show_region(self, x0: float, y0: float, x1: float, y1: float, scale: float) -> None:
        """Resize the window so that the canvas shows exactly this graph region at ``scale``."""
        lay = self.layout()
        cw, ch = lay["canvas"]
        size = self.page.viewport_size
        self.page.set_viewport_size({"width": round(size["width"] - cw + (x1 - x0) * scale),
                                     "height": round(size["height"] - ch + (y1 - y0) * scale)})
        self.page.wait_for_timeout(800)  # the canvas follows the window on its resize observer
        self.view(scale, (-x0, -y0))

    def wait_videos(self, timeout: float = 30.0) -> None:
        """Wait until every video player on the page has its first frame (a player is there while on screen)."""
        self.page.wait_for_function("() => [...document.querySelectorAll('video')].every(v => !v.src || "
                                    "v.readyState >= 2)", timeout=timeout * 1000)

    def canvas_clip(self) -> dict[str, float]:
        """The canvas element's box on the page (for a screenshot of the graph without the side bars)."""
        return self.page.locator("#graph-canvas").bounding_box()

    def choose_combo(self, node_type: str, widget: str, value: str) -> None:
        """Pick ``value`` in a node's combo widget with the mouse: click the widget, click the menu entry."""
        node_id = self.page.evaluate("t => (window.app.graph._nodes.find(n => n.type === t) || {}).id", node_type)
        if node_id is None:
            raise FrontendError(f"no {node_type} node in the graph")
        self.frame_nodes([node_id], max_scale=1.0)
        point = self.page.evaluate("""([id, name]) => {
            const c = window.app.canvas, n = window.app.graph.getNodeById(id);
            const w = (n.widgets || []).find(w => w.name === name);
            if (!w) return null;
            const r = c.canvas.getBoundingClientRect();
            const gx = n.pos[0] + n.size[0] / 2, gy = n.pos[1] + w.last_y + (w.computedHeight || 20) / 2;
            return [r.left + (gx + c.ds.offset[0]) * c.ds.scale, r.top + (gy + c.ds.offset[1]) * c.ds.scale];
        }""", [node_id, widget])
        if point is None:
            raise FrontendError(f"{node_type} has no widget {widget!r}")
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.page.mouse.click(*point)
        entry = self.page.locator(".litecontextmenu .litemenu-entry", has_text=value)
        try:
            entry.first.click(timeout=10_000)
        except PlaywrightTimeout as e:
            shown = self.page.locator(".litecontextmenu .litemenu-entry").all_inner_texts()
            raise FrontendError(f"{node_type}.{widget}: no entry {value!r} in its menu (shown: {shown})") from e
        got = self.page.evaluate("([id, name]) => window.app.graph.getNodeById(id).widgets"
                                 ".find(w => w.name === name).value", [node_id, widget])
        if got != value:
            raise FrontendError(f"{node_type}.{widget} is {got!r} after choosing {value!r}")

    def set_widget_values(self, values: dict[str, dict[str, Any]]) -> None:
        """``{node type: {widget: value}}`` set on every such node (as values, not with the mouse)."""
        self.page.evaluate("""s => { for (const n of window.app.graph._nodes) for (const w of n.widgets || [])
            if (s[n.type] && w.name in s[n.type]) w.value = s[n.type][w.name]; }""", values)

    # ------------------------------------------------------------------ run
    def run(self, timeout: float = 600.0) -> dict[str, Any]:
        """Click *Run*; wait for the prompt's ``/history`` entry; return it (``prompt_id`` added).

        ``FrontendError`` with the frontend's error dialog text when the prompt is rejected.
        """
        with self.page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST",
                                       timeout=60_000) as answer:
            self.page.get_by_role("button", name="Run", exact=True).click()
        body = answer.value.json()
        if "prompt_id" not in body:
            self.page.wait_for_timeout(1000)
            raise FrontendError(f"the prompt was rejected: {json.dumps(body)[:3000]}\n{self.visible_dialog_text()}")
        entry = self.server.wait_history(body["prompt_id"], timeout=timeout)
        entry["prompt_id"] = body["prompt_id"]
        # the frontend gets each output from the websocket's `executed` message, after the history has it
        self.page.wait_for_function("ids => ids.every(id => window.app.nodeOutputs[id])",
                                    arg=list(entry.get("outputs", {})), timeout=30_000)
        self.page.wait_for_timeout(500)  # drawn on the next frames
        return entry
