"""Open each shipped template in ComfyUI's real frontend, run it, and check that nothing outgrows its place.

    COMFYUI_DIR=... COMFYUI_PYTHON=... PYTHONPATH=. python scripts/check_templates_frontend.py [TEMPLATE_NAME ...]

Needs playwright (``pip install playwright``) and a Chromium (``CHROMIUM``, default /usr/bin/chromium). It boots a
headless ComfyUI with this pack and the tests' tiny checkpoint, then, in a 1600x1000 window:

1. prints the size a fresh node of each type renders at (``RENDERED_MIN`` in tests/test_workflows.py);
2. for each template, opened from the template browser (which shows its thumbnail): the opening zoom, then a run
   with the tiny checkpoint (PIE one round per stage, 2 steps; 5 transition frames), after which it checks that
   no node grew and that every DOM widget (the video player, text previews, notes) lies inside its node.

Exit status 1 if a run failed, a node grew or a widget spills over its node. Takes a few minutes per template on
a CPU.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from comfyui_harness import ComfyUIServer, find_comfyui  # noqa: E402

CKPT = "mvg_tiny_sd15.safetensors"
NODE_TYPES = ["CheckpointLoaderSimple", "LoadImage", "MVG_ROIMask", "MVG_ReportToPromptsV2", "MVG_LLMSettings",
              "MVG_ProgressiveEdit", "MVG_SEINETransition", "MVG_SEINELoader", "PreviewImage", "SaveImage",
              "PreviewAny", "CreateVideo", "SaveVideo", "CLIPVisionLoader", "MVG_ClassifierLoader", "MVG_Evaluate",
              "MarkdownNote"]
FRESH_SIZES = """types => Object.fromEntries(types.map(t => { const n = LiteGraph.createNode(t);
    return [t, [Math.round(n.size[0]), Math.round(n.size[1])]]; }))"""
SIZES = "() => window.app.graph._nodes.map(n => [n.id, n.title, Math.round(n.size[0]), Math.round(n.size[1])])"
SPEED = """ckpt => { for (const n of window.app.graph._nodes) for (const w of n.widgets || []) {
    if (w.name === 'ckpt_name') w.value = ckpt;
    if (n.type === 'MVG_ProgressiveEdit' && w.name === 'rounds') w.value = 3;
    if (n.type === 'MVG_ProgressiveEdit' && w.name === 'steps') w.value = 2;
    if (n.type === 'MVG_SEINETransition' && w.name === 'frames') w.value = 5; } }"""
# each DOM widget's box (and a video's / image's inside it) against its node's, in canvas units (negative: spills)
SPILL = """id => { const c = window.app.canvas, ds = c.ds, r = c.canvas.getBoundingClientRect(), out = [];
    const n = window.app.graph.getNodeById(id);
    const x0 = r.left + (n.pos[0] + ds.offset[0]) * ds.scale, y0 = r.top + (n.pos[1] + ds.offset[1]) * ds.scale;
    const x1 = x0 + n.size[0] * ds.scale, y1 = y0 + n.size[1] * ds.scale;
    for (const w of n.widgets || []) { if (!w.element) continue;
      for (const el of [w.element, ...w.element.querySelectorAll('video,img')]) { const e = el.getBoundingClientRect();
        if (!e.width) continue;
        out.push([n.title, w.name, el.tagName, Math.round(Math.min(e.left - x0, e.top - y0, x1 - e.right, y1 - e.bottom)
                  / ds.scale)]); } }
    return out; }"""


def check(page, server: ComfyUIServer, name: str) -> list[str]:
    """Open ``name`` from the template browser, run it, and return the problems found."""
    problems = []
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.wait_for_timeout(2000)
    page.get_by_text("ComfyUI-MVG", exact=True).first.click()
    page.wait_for_timeout(1500)
    page.get_by_text(name, exact=True).first.click()
    page.wait_for_timeout(4000)
    page.keyboard.press("Escape")  # the Missing Models dialog (the template's checkpoint is not installed)
    print(f"{name}: opens at zoom {page.evaluate('() => window.app.canvas.ds.scale')}")
    before = page.evaluate(SIZES)
    page.evaluate(SPEED, CKPT)
    known = set(server.get_json("/history"))
    page.evaluate("() => window.app.queuePrompt(0, 1)")
    deadline = time.monotonic() + 900
    entry = None
    while time.monotonic() < deadline and entry is None:
        time.sleep(2)
        new = {k: v for k, v in server.get_json("/history").items() if k not in known}
        entry = next((v for v in new.values() if (v.get("status") or {}).get("status_str")), None)
    status = (entry or {}).get("status", {}).get("status_str")
    print(f"  run: {status}")
    if status != "success":
        problems.append(f"{name}: the run ended with {status}")
    page.wait_for_timeout(3000)
    for (node_id, title, w0, h0), (_, _, w1, h1) in zip(before, page.evaluate(SIZES)):
        if (w1, h1) != (w0, h0):
            problems.append(f"{name}: {title} grew from {w0}x{h0} to {w1}x{h1}")
        page.evaluate("""id => { const c = window.app.canvas, n = window.app.graph.getNodeById(id);
            c.ds.offset = [-n.pos[0] + 60, -n.pos[1] + 80]; c.setDirty(true, true); }""", node_id)
        page.wait_for_timeout(500)
        for node_title, widget, tag, margin in page.evaluate(SPILL, node_id):
            print(f"  {node_title} / {widget} / {tag}: {margin} px inside the node")
            if margin < 0:
                problems.append(f"{name}: {node_title}'s {widget} ({tag}) spills {-margin} px over the node")
    return problems


def main(names: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    from tests.fixtures.tiny_checkpoints import write_tiny_sd15_comfy_checkpoint

    found = find_comfyui()
    if isinstance(found, str):
        raise SystemExit(found)
    names = names or sorted(p.stem for p in (ROOT / "workflows").glob("*.json"))
    with tempfile.TemporaryDirectory() as base:
        server = ComfyUIServer(*found, Path(base), pack_dir=ROOT)

        def checkpoint() -> None:
            part = server.checkpoints_dir / (CKPT + ".part")
            write_tiny_sd15_comfy_checkpoint(part, seed=0)
            os.replace(part, server.checkpoints_dir / CKPT)

        server.start(timeout=240, while_booting=checkpoint)
        problems = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                            args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(server.url, wait_until="networkidle")
                page.wait_for_timeout(4000)
                page.keyboard.press("Escape")  # a first start opens the template browser
                print("fresh node sizes:", json.dumps(page.evaluate(FRESH_SIZES, NODE_TYPES)))
                for name in names:
                    problems += check(page, server, name)
                browser.close()
        finally:
            server.stop()
    print("\n".join(problems) or "no node grew and no widget spills over its node")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
