"""Regenerate the README's screenshots from ComfyUI's real frontend, driven the way a new user drives it.

    COMFYUI_DIR=... COMFYUI_PYTHON=... python scripts/screenshots.py [--out DIR] [--run WORD ...] [--full] [--check]

Boots a real ComfyUI (``tests/comfyui_harness.py``; COMFYUI_DIR / COMFYUI_PYTHON as for the tests, see the
README's *Tests*) in a temporary base folder with this pack linked and the tiny random-weight SD 1.5 checkpoint
(``tests/fixtures/tiny_checkpoints.py``), opens the frontend at 1600x1000 in headless ``/usr/bin/chromium``
and, for each template card in the template browser (*Templates* in the sidebar, category ComfyUI-MVG):

- ``templates.png``: the template browser showing the pack's cards (once);
- ``<template>_graph.png``: the whole graph at the template's opening zoom (the window grown to fit it);
- for the templates named in ``--run`` (default: chest, the README's example), also ``<template>_dialog.png``
  (the dialog the template opens with: the missing-models warning), ``<template>_open.png`` (the page right
  after clicking the card and closing it) and, after choosing the tiny checkpoint in Load Checkpoint's menu
  and clicking *Run*, ``<template>_run_<group>.png``: each group that holds outputs (previews, summaries,
  the video player) at 100 %.

``<template>`` is the card's file name in lower case with anything but letters and digits as ``_``. The run is
quick (``frontend_driver.QUICK_RUN``: one round of 2 steps per stage, 3 frames per transition, set in the
widgets before *Run*): the template's own settings make 750 UNet calls, hours on a CPU even with the tiny
model (``--full`` runs them). The frontend's minimap and canvas info (FPS...) are switched off: they would cover nodes. PNGs are quantised to 256 colours (text stays sharp; a few hundred KB).
The tiny model's images are noise by design: the screenshots show the interface, not a result.

``--check`` also prints the size a fresh node of each type in the templates renders at (``RENDERED_MIN`` in
``tests/test_workflows.py``) and, after each run, checks that no node grew and that every DOM widget (the video
player, text previews, Markdown notes) lies inside its node; the exit status is 1 when one did not. The check of
every template (a few minutes each on a CPU): ``--check --run chest fundus skin --out /tmp/shots``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from comfyui_harness import ComfyUIServer, find_comfyui  # noqa: E402
from frontend_driver import (QUICK_RUN, VIEWPORT, Frontend, chromium_unavailable, growth_problems,  # noqa: E402
                             launch_chromium, spill_problems)

CHECKPOINT = "mvg_tiny_sd15.safetensors"
SHOWN_TYPES = ("PreviewAny", "PreviewImage", "SaveImage", "SaveVideo")  # what a run fills in
MARGIN = 20  # graph units around a group in its screenshot


def save_png(page, path: Path, clip: dict | None = None) -> int:
    """Screenshot to ``path``, quantised to 256 colours; returns the file size in bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(page.screenshot(clip=clip))) as im:
        im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) \
            .save(path, optimize=True)
    return path.stat().st_size


def inside(box: list[float], outer: list[float]) -> bool:
    """Whether ``box`` (x, y, w, h) lies within ``outer``."""
    return (outer[0] <= box[0] and outer[1] <= box[1] and box[0] + box[2] <= outer[0] + outer[2]
            and box[1] + box[3] <= outer[1] + outer[3])


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def shoot_template(ui: Frontend, name: str, out: Path, run: bool, quick: bool, check: bool, log) -> list[str]:
    """Screenshots of one template (see the module's docstring); with ``check``, what grew or spills in its run."""
    stem = slug(name)
    ui.open_template_browser()
    t0 = time.monotonic()
    ui.load_template(name)
    log(f"{name}: opened from its card in {time.monotonic() - t0:.1f} s")
    lay = ui.layout()
    log(f"  opening zoom {lay['scale']:.0%} (text drawn from {lay['threshold']:.0%})")
    if run and ui.visible_dialog_text():  # what a user sees first: the dialog the template opens with
        log(f"  dialog: {ui.visible_dialog_text()[:40]!r}", save_png(ui.page, out / f"{stem}_dialog.png"))
    ui.close_dialogs()
    if run:
        log("  page at opening", save_png(ui.page, out / f"{stem}_open.png"))
    ui.show_region(*ui.graph_bounds(), scale=lay["scale"])
    log(f"  whole graph at {lay['scale']:.0%}", save_png(ui.page, out / f"{stem}_graph.png", clip=ui.canvas_clip()))
    ui.page.set_viewport_size(VIEWPORT)
    ui.view(lay["scale"], lay["offset"])
    if not run:
        return []
    sizes = ui.node_sizes()
    if quick:
        ui.set_widget_values(QUICK_RUN)
    ui.choose_combo("CheckpointLoaderSimple", "ckpt_name", CHECKPOINT)
    t0 = time.monotonic()
    entry = ui.run(timeout=24 * 3600)
    status = entry["status"]["status_str"]
    log(f"  run: {status} in {time.monotonic() - t0:.0f} s")
    if status != "success":
        raise SystemExit(f"{name}: the run ended with {status}: {entry['status']}")
    lay = ui.layout()
    shown = [n["box"] for n in lay["nodes"] if n["type"] in SHOWN_TYPES and n["mode"] == 0]
    groups = [g for g in lay["groups"] if any(inside(box, g["box"]) for box in shown)]
    if not groups:
        raise SystemExit(f"{name}: no group holds an output node (the screenshots after the run are per group)")
    for group in groups:
        x, y, w, h = group["box"]
        ui.show_region(x - MARGIN, y - MARGIN, x + w + MARGIN, y + h + MARGIN, scale=1.0)
        ui.wait_videos()
        log(f"  after the run: group {group['title']!r} at 100%",
            save_png(ui.page, out / f"{stem}_run_{slug(group['title'])}.png", clip=ui.canvas_clip()))
    ui.page.set_viewport_size(VIEWPORT)
    if not check:
        return []
    margins = ui.dom_widget_margins()
    for title, widget, tag, margin in margins:
        log(f"  {title} / {widget} / {tag}: {margin} units inside the node")
    return [f"{name}: {problem}" for problem in growth_problems(sizes, ui.node_sizes()) + spill_problems(margins)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the PNGs")
    ap.add_argument("--run", nargs="*", default=["chest"], metavar="WORD",
                    help="run the templates whose file name contains one of these words (none: no runs)")
    ap.add_argument("--full", action="store_true", help="run with the template's own settings (hours on a CPU)")
    ap.add_argument("--check", action="store_true",
                    help="print fresh node sizes; exit 1 if a node grows or a DOM widget spills over its node in a run")
    args = ap.parse_args(argv)
    found = find_comfyui()
    if isinstance(found, str):
        raise SystemExit(f"scripts/screenshots.py: {found} (see the README's Tests for the set-up)")
    reason = chromium_unavailable()
    if reason:
        raise SystemExit(f"scripts/screenshots.py: {reason}")
    from playwright.sync_api import sync_playwright

    from fixtures.tiny_checkpoints import write_tiny_sd15_comfy_checkpoint

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    problems: list[str] = []

    def log(message: str, size: int | None = None) -> None:
        tail = f" -> {size / 1024:.0f} KB" if size is not None else ""
        print(f"[{time.monotonic() - started:6.1f} s] {message}{tail}", flush=True)

    with tempfile.TemporaryDirectory(prefix="mvg-screenshots-") as base:
        server = ComfyUIServer(*found, Path(base), pack_dir=ROOT)

        def write_checkpoint() -> None:  # while ComfyUI boots; renamed into place, never seen half-written
            part = server.checkpoints_dir / (CHECKPOINT + ".part")
            write_tiny_sd15_comfy_checkpoint(part, seed=0)
            os.replace(part, server.checkpoints_dir / CHECKPOINT)

        server.start(timeout=300, while_booting=write_checkpoint)
        log(f"ComfyUI up at {server.url}")
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                ui = Frontend(browser.new_page(viewport=VIEWPORT), server)
                ui.open()
                ui.set_setting("Comfy.Minimap.Visible", False)
                ui.set_setting("Comfy.Graph.CanvasInfo", False)
                ui.open_template_browser()
                cards = ui.template_cards()
                log(f"template browser: {[c.title for c in cards]}", save_png(ui.page, args.out / "templates.png"))
                if args.check:
                    types = sorted({n["type"] for f in (ROOT / "workflows").glob("*.json")
                                    for n in json.loads(f.read_text(encoding="utf-8"))["nodes"]})
                    log(f"fresh node sizes: {json.dumps(ui.fresh_sizes(types))}")
                for card in cards:
                    run = any(word.lower() in card.name.lower() for word in args.run)
                    problems += shoot_template(ui, card.name, args.out, run, not args.full, args.check, log)
                browser.close()
        finally:
            server.stop()
    log(f"done: {args.out}")
    if args.check:
        print("\n".join(problems) or "no node grew and no DOM widget spills over its node")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
