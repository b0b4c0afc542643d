"""Write the shipped templates (``workflows/<name>.json`` and the card thumbnail ``<name>.jpg``) from one compact
description per domain.

    PYTHONPATH=. python scripts/build_workflows.py [OUT_DIR]

Widget values are positional (ComfyUI stores them in order), so the lists below follow each node's input order;
a seed widget with ``control_after_generate`` is followed by its control value ("fixed").

Layout: five labelled groups from left to right (inputs, report and ROI, progressive edit, transitions and video,
evaluation), each a Markdown note above columns of nodes. Positions are computed from the node sizes below, which
are at least what ComfyUI's frontend (1.27) renders, so nodes keep clear of each other (``tests/test_workflows.py``
checks it against sizes measured in the real frontend).

ComfyUI's template browser titles a custom node pack's template with its file name (frontend 1.27 reads no title
or description from the file), so the file name is the human title; ``extra.info`` holds the title and a one-line
description for tools that read it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "workflows"
SAMPLES = ROOT / "sample_inputs"

CHECKPOINT = {  # what ComfyUI's core SD 1.5 templates ship; the frontend offers the download when it is missing
    "name": "v1-5-pruned-emaonly-fp16.safetensors",
    "url": "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
           "v1-5-pruned-emaonly-fp16.safetensors?download=true",
    "directory": "checkpoints",
}
SEINE_FILE = "seine.safetensors"
MUTED, BYPASSED = 2, 4  # LiteGraph node modes: muted (Ctrl+M) and bypassed (Ctrl+B) nodes are left out of a run
TITLE_H = 30  # LiteGraph draws a node's title bar above its pos
GAP = 50  # between a node's bottom and the next node's title bar
COLUMN_GAP = 70
GROUP_PAD = 30
GROUP_TITLE_H = 50  # the group's title strip
GROUP_GAP = 90
OPEN_SCALE = 1.0  # opening zoom: the notes' text renders at 10 px (nodes lose all text below 8/14 = 0.57)

# node type -> (linked inputs [(name, type)], outputs [(name, type)])
NODE_SPECS = {
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "MVG_ReportToPromptsV2": ([("llm", "MVG_LLM_SETTINGS")], [("prompts", "MVG_PROMPTS"), ("plan", "STRING")]),
    "MVG_LLMSettings": ([], [("llm", "MVG_LLM_SETTINGS")]),
    "MVG_ROIMask": ([("image", "IMAGE"), ("mask", "MASK"), ("prompts", "MVG_PROMPTS")],
                    [("mask", "MASK"), ("overlay", "IMAGE"), ("summary", "STRING")]),
    "MVG_ProgressiveEdit": (
        [("model", "MODEL"), ("clip", "CLIP"), ("vae", "VAE"), ("image", "IMAGE"), ("mask", "MASK"),
         ("prompts", "MVG_PROMPTS")],
        [("frames", "IMAGE"), ("keyframes", "IMAGE"), ("summary", "STRING")]),
    "MVG_SEINELoader": ([], [("seine_model", "MVG_SEINE_MODEL"), ("summary", "STRING")]),
    "MVG_SEINETransition": ([("keyframes", "IMAGE"), ("vae", "VAE"), ("clip", "CLIP"),
                             ("seine_model", "MVG_SEINE_MODEL"), ("mask", "MASK")],
                            [("frames", "IMAGE"), ("summary", "STRING")]),
    "PreviewImage": ([("images", "IMAGE")], []),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewAny": ([("source", "*")], []),
    "CreateVideo": ([("images", "IMAGE")], [("VIDEO", "VIDEO")]),
    "SaveVideo": ([("video", "VIDEO")], []),
    "CLIPVisionLoader": ([], [("CLIP_VISION", "CLIP_VISION")]),
    "MVG_ClassifierLoader": ([], [("classifier", "MVG_CLASSIFIER"), ("summary", "STRING")]),
    "MVG_Evaluate": ([("frames", "IMAGE"), ("original", "IMAGE"), ("mask", "MASK"), ("clip_vision", "CLIP_VISION"),
                      ("classifier", "MVG_CLASSIFIER"), ("prompts", "MVG_PROMPTS"), ("transition_summary", "STRING"),
                      ("other_runs", "IMAGE")],
                     [("report", "STRING"), ("plot", "IMAGE"), ("passed", "BOOLEAN"), ("uncertainty", "IMAGE"),
                      ("roi", "IMAGE")]),
    "MarkdownNote": ([], []),
}

TEMPLATES = {
    "chest_xray": dict(
        name="MVG Chest radiograph, pleural effusion progression",
        description="A chest radiograph and its report (small right pleural effusion) become a video of the "
                    "effusion growing, edited only inside the lung fields.",
        image="mvg_chest_xray.png",
        what="chest radiograph",
        roi=[8, 8.0, "union", False, 2, "auto", "0.25, 0.25, 0.75, 0.75"],
        report="FINDINGS: Small right pleural effusion blunting the right costophrenic angle. No pneumothorax. "
               "Heart size is normal.\nIMPRESSION: Small right pleural effusion.",
    ),
    "fundus": dict(
        name="MVG Fundus, diabetic retinopathy progression",
        description="A fundus photograph and its report (mild non-proliferative diabetic retinopathy) become a "
                    "video of the retinopathy advancing, edited only inside the retina.",
        image="mvg_fundus.png",
        what="fundus photograph",
        roi=[0, 6.0, "union", False, 0, "auto", "0.25, 0.25, 0.75, 0.75"],
        report="Mild non-proliferative diabetic retinopathy with scattered microaneurysms. No macular edema. "
               "Cup-to-disc ratio 0.3.",
    ),
    "skin": dict(
        name="MVG Skin lesion, atypical nevus progression",
        description="A dermoscopy image and its report (atypical nevus) become a video of the lesion evolving, "
                    "edited only inside the lesion.",
        image="mvg_skin.png",
        what="dermoscopy image (synthetic)",
        roi=[12, 8.0, "union", True, 1, "auto", "0.25, 0.25, 0.75, 0.75"],
        report="Dermoscopy of a 6 mm pigmented lesion on the back: slightly asymmetric with irregular borders "
               "and two shades of brown. Impression: atypical nevus.",
    ),
}

NOTE_COLORS = {"color": "#432", "bgcolor": "#653"}
GROUP_COLORS = ["#3f789e", "#8A8", "#b06634", "#a1309b", "#88A"]


@dataclass
class Item:
    """One node of a template: its key (for wiring), type, size [w, h], widgets and optional title/mode."""

    key: str
    type: str
    size: tuple[int, int]
    widgets: list
    title: str | None = None
    mode: int = 0


def notes(spec: dict) -> list[str]:
    """The Markdown note of each group, in group order."""
    return [
        "## Before you run\n"
        "1. **Checkpoint**: pick an SD 1.x checkpoint in *Load Checkpoint*. If you have none, ComfyUI offers to "
        f"download `{CHECKPOINT['name']}` (2 GB) into `models/checkpoints` when the template opens.\n"
        f"2. **Image**: a sample {spec['what']} is loaded. Pick or upload your own in *Load Image*; what you "
        "paint in its mask editor is added to the region that may change.\n"
        "3. **Report**: paste the report into *Report to Prompts* (group 2).\n\n"
        "Then press **Run**: the video is saved by *Save Video* (group 4), the evaluation is in group 5.\n\n"
        "*Research software: synthetic images for research and education, not for diagnosis.*",

        "## Report → stages, and ROI\n"
        "**Report to Prompts** reads the report offline (engine `rules`) and writes the disease stages, each "
        "one step further along the finding's natural history (`stages`, `direction`, `max_severity`).\n\n"
        "For an LLM, set engine to `openai-compatible` and enable **LLM Settings** below it (select it, "
        "Ctrl+B); the report is then sent to that endpoint.\n\n"
        "**ROI Mask** (domain `auto`: the report's) finds where the disease may change the image, narrowed by "
        "each stage's region hint. Nothing outside it changes.",

        "## Progressive edit (PIE)\n"
        "**Progressive Edit** moves the image one stage at a time: `rounds` small denoise-and-blend rounds per "
        "stage, inside the ROI only.\n\n"
        "The keyframes (the original, then one per stage) are saved to `output/MVG`; the summary starts with the "
        "stage plan.",

        "## Transitions → video\n"
        "**SEINE Transition** fills in `frames` between consecutive keyframes. Without a SEINE model it morphs "
        "with optical flow, and its summary says so.\n\n"
        "**SEINE weights (once)**: download `seine.pt` (Vchitect/SEINE), convert it into `models/seine`, from "
        "`custom_nodes/ComfyUI-MVG` with ComfyUI's Python:\n\n"
        f"`python -m mvg_backend.seine convert seine.pt ../../models/seine/{SEINE_FILE} --trust-pickle`\n\n"
        "Then select **SEINE Loader**, press Ctrl+B to enable it, pick the file and run. "
        "*Create Video → Save Video* write the MP4 to `output/MVG`.",

        "## Evaluation\n"
        "**Evaluate** checks the video against the original with the paper's gates: no change outside the ROI, "
        "no flicker, anatomy kept. CLIP-I and the classifier's confidence need their loaders: put the model in "
        "place (see the README), select the loader and press Ctrl+M.\n\n"
        "*ROI on original* shows the region that was allowed to change; the report is JSON.",
    ]


def groups(domain: str, spec: dict) -> list[tuple[str, list[list[Item]]]]:
    """(group title, columns of items) from left to right; the note is added above the columns."""
    stem = f"MVG/{domain}"
    evaluation_loaders = [Item("clip_vision", "CLIPVisionLoader", (400, 60), ["clip-vit-large-patch14.safetensors"],
                               "CLIP Vision (optional)", MUTED)]
    if domain == "chest_xray":
        evaluation_loaders.append(Item("classifier", "MVG_ClassifierLoader", (400, 80),
                                       ["torchxrayvision:densenet121-res224-all"], "Classifier (optional)", MUTED))
    return [
        ("1 · Inputs", [[
            Item("ckpt", "CheckpointLoaderSimple", (420, 100), [CHECKPOINT["name"]], "Load Checkpoint"),
            Item("image", "LoadImage", (420, 500), [spec["image"], "image"], "Load Image"),
        ]]),
        ("2 · Report → stages, and ROI", [
            [Item("report", "MVG_ReportToPromptsV2", (460, 420),
                  [spec["report"], domain, 3, "progression", "rules", "mvg", "", False, "severe"], "Report to Prompts"),
             Item("llm", "MVG_LLMSettings", (460, 270),
                  ["gpt-4o-mini", "https://api.openai.com/v1", "OPENAI_API_KEY", 0.2, 0, True, False, 120.0, 2],
                  "LLM Settings (optional)", BYPASSED)],
            [Item("roi", "MVG_ROIMask", (400, 360), ["auto", "auto", *spec["roi"]], "ROI Mask")],
        ]),
        ("3 · Progressive edit", [
            [Item("pie", "MVG_ProgressiveEdit", (400, 460),
                  [10, 0.5, 50, 7.5, "ddim", "ddim_uniform", 0.01, 0.75, 0, "fixed", "latent", True],
                  "Progressive Edit (PIE)"),
             Item("pie_summary", "PreviewAny", (400, 300), [], "PIE summary")],
            [Item("frames", "PreviewImage", (460, 460), [], "Frames"),
             Item("keyframes", "SaveImage", (460, 500), [f"{stem}_keyframes"], "Keyframes")],
        ]),
        ("4 · Transitions → video", [
            [Item("seine", "MVG_SEINELoader", (420, 110), [SEINE_FILE, "auto"], "SEINE Loader (optional)", BYPASSED),
             Item("transition", "MVG_SEINETransition", (420, 400),
                  [16, 50, 8.0, "ddim", 0, "fixed", "smooth transitionsmooth transition.", "seine", "512 (official)"],
                  "SEINE Transition"),
             Item("transition_summary", "PreviewAny", (420, 260), [], "Transition summary")],
            [Item("create_video", "CreateVideo", (460, 80), [8.0], "Create Video"),
             Item("video", "SaveVideo", (460, 640), [f"{stem}_progression", "auto", "auto"], "Save Video")],
        ]),
        ("5 · Evaluation", [
            [*evaluation_loaders,
             Item("evaluate", "MVG_Evaluate", (420, 460), ["", "auto", "auto", 0.75, 2.0, 0.8, 0.9, 0, True],
                  "Evaluate")],
            [Item("roi_view", "PreviewImage", (460, 460), [], "ROI on original"),
             Item("plot", "PreviewImage", (460, 560), [], "Evaluation plot")],
            [Item("eval_report", "PreviewAny", (460, 600), [], "Evaluation report")],
        ]),
    ]


def edges(domain: str) -> list[tuple[str, int, str, int]]:
    """(from key, output slot, to key, input slot)."""
    wires = [("ckpt", 0, "pie", 0), ("ckpt", 1, "pie", 1), ("ckpt", 2, "pie", 2), ("image", 0, "pie", 3),
             ("roi", 0, "pie", 4), ("report", 0, "pie", 5), ("llm", 0, "report", 0),
             ("image", 0, "roi", 0), ("image", 1, "roi", 1), ("report", 0, "roi", 2),
             ("pie", 0, "frames", 0), ("pie", 1, "keyframes", 0), ("pie", 2, "pie_summary", 0),
             ("pie", 1, "transition", 0), ("ckpt", 2, "transition", 1), ("ckpt", 1, "transition", 2),
             ("seine", 0, "transition", 3), ("roi", 0, "transition", 4), ("transition", 1, "transition_summary", 0),
             ("transition", 0, "create_video", 0), ("create_video", 0, "video", 0),
             ("transition", 0, "evaluate", 0), ("image", 0, "evaluate", 1), ("roi", 0, "evaluate", 2),
             ("clip_vision", 0, "evaluate", 3), ("report", 0, "evaluate", 5), ("transition", 1, "evaluate", 6),
             ("evaluate", 4, "roi_view", 0), ("evaluate", 1, "plot", 0), ("evaluate", 0, "eval_report", 0)]
    if domain == "chest_xray":
        wires.append(("classifier", 0, "evaluate", 4))
    return wires


def note_height(text: str, width: int) -> int:
    """Room for the Markdown note: frontend 1.27 renders its text at 10 px (under 6 px per character, lines under
    10 px apart counting paragraph gaps) below a larger heading; checked on screenshots of the rendered notes."""
    per_line = max(1, int((width - 30) / 6))
    lines = sum(max(1, -(-len(para) // per_line)) for para in text.split("\n"))
    return 70 + 10 * lines


def build(domain: str, spec: dict) -> dict:
    """The UI-format workflow (LiteGraph JSON, version 0.4) of one domain."""
    nodes: dict[str, dict] = {}
    group_list = []
    x = 0
    for (title, columns), note_text in zip(groups(domain, spec), notes(spec)):
        inner_w = sum(max(item.size[0] for item in col) for col in columns) + COLUMN_GAP * (len(columns) - 1)
        note = Item(f"note{len(group_list) + 1}", "MarkdownNote", (inner_w, note_height(note_text, inner_w)),
                    [note_text], "Read me")
        top = GROUP_TITLE_H + TITLE_H
        placed = [(note, x + GROUP_PAD, top)]
        column_top = top + note.size[1] + GAP + TITLE_H
        col_x, bottom = x + GROUP_PAD, column_top
        for col in columns:
            y = column_top
            for item in col:
                placed.append((item, col_x, y))
                y += item.size[1] + GAP + TITLE_H
            bottom = max(bottom, y - GAP - TITLE_H)
            col_x += max(item.size[0] for item in col) + COLUMN_GAP
        for item, px, py in placed:
            nodes[item.key] = node_json(len(nodes) + 1, item, (px, py))
        group_w = inner_w + 2 * GROUP_PAD
        group_list.append({"id": len(group_list) + 1, "title": title, "bounding": [x, 0, group_w, bottom + GROUP_PAD],
                           "color": GROUP_COLORS[len(group_list)], "font_size": 24, "flags": {}})
        x += group_w + GROUP_GAP
    links = []
    for link_id, (src, src_slot, dst, dst_slot) in enumerate(edges(domain), start=1):
        out, inp = nodes[src]["outputs"][src_slot], nodes[dst]["inputs"][dst_slot]
        out["links"].append(link_id)
        inp["link"] = link_id
        links.append([link_id, nodes[src]["id"], src_slot, nodes[dst]["id"], dst_slot, out["type"]])
    nodes["ckpt"]["properties"]["models"] = [CHECKPOINT]
    return {
        "last_node_id": len(nodes), "last_link_id": len(links), "nodes": list(nodes.values()), "links": links,
        "groups": group_list, "config": {},
        "extra": {"info": {"title": spec["name"], "description": spec["description"]},
                  "ds": {"scale": OPEN_SCALE, "offset": [40, 60]}},
        "version": 0.4,
    }


def node_json(node_id: int, item: Item, pos: tuple[int, int]) -> dict:
    inputs, outputs = NODE_SPECS[item.type]
    node = {
        "id": node_id, "type": item.type, "pos": list(pos), "size": list(item.size), "flags": {},
        "order": node_id - 1, "mode": item.mode,
        "inputs": [{"name": n, "type": t, "link": None} for n, t in inputs],
        "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
        "properties": {"Node name for S&R": item.type}, "widgets_values": item.widgets,
    }
    if item.type == "MarkdownNote":
        node["properties"] = {}
        node.update(NOTE_COLORS)
    if item.title:
        node["title"] = item.title
    return node


def thumbnail(domain: str, spec: dict) -> np.ndarray:
    """The template's card (512x512 RGB uint8): the sample image, its ROI and the rule engine's stages."""
    from mvg_backend.io.files import read_image
    from mvg_backend.io.images import as_rgb_image
    from mvg_backend.prompts import plan
    from mvg_backend.roi.batch import segment_batch

    image, _ = as_rgb_image(read_image(SAMPLES / spec["image"]))
    stages = plan(spec["report"], domain, stages=3)
    dilate, feather, combine, fill_holes, keep_largest, eye, rectangle = spec["roi"]
    _, overlays, _ = segment_batch(image, domain, "auto", prompts=stages, combine=combine, rect=rectangle, eye=eye,
                                   dilate=dilate, feather=feather, fill_holes=fill_holes, keep_largest=keep_largest)
    card = np.full((512, 512, 3), 0.12, np.float32)
    for i, panel in enumerate((image, overlays[0])):
        h, w = panel.shape[:2]
        scale = 248 / max(h, w)
        small = cv2.resize(panel, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        y0, x0 = 4 + (248 - small.shape[0]) // 2, 4 + i * 256 + (248 - small.shape[1]) // 2
        card[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    card = (np.clip(card, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    lines = [("report -> stages -> ROI -> PIE -> video", 0.5, (150, 200, 255))]
    for n, stage in enumerate(stages.stages, start=1):
        words, line = stage.prompt.split(), ""
        lines.append((f"stage {n} ({stage.name})", 0.55, (255, 215, 100)))
        for word in words:
            if len(line) + len(word) > 52:
                lines.append(("  " + line, 0.45, (235, 235, 235)))
                line = ""
            line = f"{line} {word}".strip()
        lines.append(("  " + line, 0.45, (235, 235, 235)))
    y = 276
    for text, size, color in lines:
        cv2.putText(card, text, (12, y), cv2.FONT_HERSHEY_SIMPLEX, size, color, 1, cv2.LINE_AA)
        y += 21 if size > 0.45 else 17
    return card


def main(out: Path = OUT) -> None:
    out.mkdir(exist_ok=True)
    for domain, spec in TEMPLATES.items():
        path = out / f"{spec['name']}.json"
        path.write_text(json.dumps(build(domain, spec), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        card = cv2.cvtColor(thumbnail(domain, spec), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(path.with_suffix(".jpg")), card, [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(f"wrote {path} and its thumbnail")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
