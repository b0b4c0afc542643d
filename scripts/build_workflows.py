"""Write the shipped UI-format workflows (``workflows/*.json``) from one compact description per domain.

Run ``python scripts/build_workflows.py [OUT_DIR]`` after changing a node's widgets. Widget values are positional
(ComfyUI stores them in order), so the lists below follow each node's input order; a seed widget with
``control_after_generate`` is followed by its control value ("fixed").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "workflows"

# node type -> (linked inputs [(name, type)], outputs [(name, type)], size)
NODE_SPECS = {
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], (320, 100)),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")], (320, 330)),
    "MVG_ROIMask": ([("image", "IMAGE"), ("mask", "MASK"), ("prompts", "MVG_PROMPTS")],
                    [("mask", "MASK"), ("overlay", "IMAGE"), ("summary", "STRING")], (340, 360)),
    "MVG_ReportToPrompts": ([], [("prompts", "MVG_PROMPTS"), ("plan", "STRING")], (420, 520)),
    "MVG_ProgressiveEdit": (
        [("model", "MODEL"), ("clip", "CLIP"), ("vae", "VAE"), ("image", "IMAGE"), ("mask", "MASK"),
         ("prompts", "MVG_PROMPTS")],
        [("frames", "IMAGE"), ("keyframes", "IMAGE"), ("summary", "STRING")], (340, 420)),
    "MVG_SEINETransition": ([("keyframes", "IMAGE"), ("vae", "VAE"), ("clip", "CLIP"),
                             ("seine_model", "MVG_SEINE_MODEL"), ("mask", "MASK")],
                            [("frames", "IMAGE"), ("summary", "STRING")], (340, 400)),
    "PreviewImage": ([("images", "IMAGE")], [], (420, 300)),
    "SaveImage": ([("images", "IMAGE")], [], (420, 300)),
    "PreviewAny": ([("source", "*")], [], (420, 260)),
    "CreateVideo": ([("images", "IMAGE")], [("VIDEO", "VIDEO")], (270, 80)),
    "SaveVideo": ([("video", "VIDEO")], [], (420, 330)),
    "CLIPVisionLoader": ([], [("CLIP_VISION", "CLIP_VISION")], (320, 60)),
    "MVG_ClassifierLoader": ([], [("classifier", "MVG_CLASSIFIER"), ("summary", "STRING")], (320, 80)),
    "MVG_Evaluate": ([("frames", "IMAGE"), ("original", "IMAGE"), ("mask", "MASK"), ("clip_vision", "CLIP_VISION"),
                      ("classifier", "MVG_CLASSIFIER"), ("prompts", "MVG_PROMPTS"), ("transition_summary", "STRING"),
                      ("other_runs", "IMAGE")],
                     [("report", "STRING"), ("plot", "IMAGE"), ("passed", "BOOLEAN"), ("uncertainty", "IMAGE")],
                     (360, 480)),
}
MUTED = 2  # LiteGraph node mode "never": skipped when queued, and its links dropped (unmute with Ctrl+M)

TEMPLATES = {
    "chest_xray": dict(
        title="MVG chest X-ray: progressive editing of the lung fields",
        image="mvg_chest_xray.png",
        roi=["chest_xray", "auto", 8, 8.0, "union", False, 2, "auto", "0.25, 0.25, 0.75, 0.75"],
        report="FINDINGS: Small right pleural effusion blunting the right costophrenic angle. No pneumothorax. "
               "Heart size is normal.\nIMPRESSION: Small right pleural effusion.",
    ),
    "fundus": dict(
        title="MVG fundus: diabetic retinopathy progression",
        image="mvg_fundus.png",
        roi=["fundus", "auto", 0, 6.0, "union", False, 0, "auto", "0.25, 0.25, 0.75, 0.75"],
        report="Mild non-proliferative diabetic retinopathy with scattered microaneurysms. No macular edema. "
               "Cup-to-disc ratio 0.3.",
    ),
    "skin": dict(
        title="MVG skin: lesion progression",
        image="mvg_skin.png",
        roi=["skin", "auto", 12, 8.0, "union", True, 1, "auto", "0.25, 0.25, 0.75, 0.75"],
        report="Dermoscopy of a 6 mm pigmented lesion on the back: slightly asymmetric with irregular borders "
               "and two shades of brown. Impression: atypical nevus.",
    ),
}


def build(domain: str, spec: dict) -> dict:
    # (id, type, position, widgets_values)
    layout = [
        (1, "CheckpointLoaderSimple", (40, 80), ["v1-5-pruned-emaonly.safetensors"]),
        (2, "LoadImage", (40, 240), [spec["image"], "image"]),
        (3, "MVG_ReportToPrompts", (40, 620),
         [spec["report"], domain, 3, "progression", "rules", "gpt-4o-mini", "https://api.openai.com/v1",
          "OPENAI_API_KEY", 0.2, 0, True, "mvg", "", False, False, 120.0, 2, "severe"]),
        (4, "MVG_ProgressiveEdit", (500, 80),
         [10, 0.5, 50, 7.5, "ddim", "ddim_uniform", 0.01, 0.75, 0, "fixed", "latent", True]),
        (5, "PreviewImage", (900, 80), []),
        (6, "SaveImage", (900, 420), [f"MVG/{domain}_keyframes"]),
        (7, "PreviewAny", (500, 560), []),
        (8, "CreateVideo", (1360, 80), [8.0]),
        (9, "SaveVideo", (1360, 220), [f"MVG/{domain}_progression", "auto", "auto"]),
        (10, "PreviewAny", (500, 860), []),
        (11, "MVG_ROIMask", (500, 1160), spec["roi"]),
        (12, "PreviewImage", (900, 760), []),
        (13, "PreviewAny", (900, 1100), []),
        (14, "MVG_SEINETransition", (1360, 600),
         [16, 250, 8.0, "ddpm", 0, "fixed", "smooth transitionsmooth transition.", "seine", "512 (official)"]),
        (15, "PreviewAny", (1360, 1060), []),
        # evaluation (issue 11): metrics, gates and plot of the video's frames
        (16, "MVG_Evaluate", (1820, 80), ["", "auto", "auto", 0.75, 2.0, 0.8, 0.9, 0, True]),
        (17, "CLIPVisionLoader", (1820, -80), ["clip-vit-large-patch14.safetensors"]),
        (18, "PreviewImage", (2560, 80), []),
        (19, "PreviewAny", (2560, 700), []),
    ]
    if domain == "chest_xray":
        layout.append((20, "MVG_ClassifierLoader", (1820, 1400), ["torchxrayvision:densenet121-res224-all"]))
    # (from node, from slot, to node, to slot)
    edges = [(1, 0, 4, 0), (1, 1, 4, 1), (1, 2, 4, 2), (2, 0, 4, 3), (11, 0, 4, 4), (3, 0, 4, 5),
             (2, 0, 11, 0), (2, 1, 11, 1), (3, 0, 11, 2), (11, 1, 12, 0), (11, 2, 13, 0),
             (4, 0, 5, 0), (4, 1, 6, 0), (4, 2, 7, 0), (14, 0, 8, 0), (8, 0, 9, 0),
             (4, 1, 14, 0), (1, 2, 14, 1), (1, 1, 14, 2), (11, 0, 14, 4), (14, 1, 15, 0),
             (3, 1, 10, 0),
             (14, 0, 16, 0), (2, 0, 16, 1), (11, 0, 16, 2), (17, 0, 16, 3), (3, 0, 16, 5), (14, 1, 16, 6),
             (16, 1, 18, 0), (16, 0, 19, 0)]
    if domain == "chest_xray":
        edges.append((20, 0, 16, 4))
    nodes = {}
    for order, (node_id, node_type, pos, widgets) in enumerate(layout):
        inputs, outputs, size = NODE_SPECS[node_type]
        nodes[node_id] = {
            "id": node_id, "type": node_type, "pos": list(pos), "size": list(size), "flags": {}, "order": order,
            "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in inputs],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outputs)],
            "properties": {"Node name for S&R": node_type},
            "widgets_values": widgets,
        }
    links = []
    for link_id, (src, src_slot, dst, dst_slot) in enumerate(edges, start=1):
        link_type = nodes[src]["outputs"][src_slot]["type"]
        nodes[src]["outputs"][src_slot]["links"].append(link_id)
        nodes[dst]["inputs"][dst_slot]["link"] = link_id
        links.append([link_id, src, src_slot, dst, dst_slot, link_type])
    nodes[2]["title"] = "Load Image (optional: paint extra region in the mask editor)"
    nodes[11]["title"] = "ROI mask (automatic; your painted mask is added)"
    nodes[12]["title"] = "ROI overlay"
    nodes[13]["title"] = "ROI summary"
    nodes[14]["title"] = "SEINE transitions (connect MVG SEINE Loader for SEINE; optical-flow fallback without)"
    nodes[15]["title"] = "Transition summary"
    nodes[3]["title"] = "Report to Prompts (paste the report; it is kept out of saved files)"
    nodes[7]["title"] = "PIE summary"
    nodes[10]["title"] = "Stage plan"
    nodes[16]["title"] = "Evaluate (CLIP-I, identity outside the ROI, smoothness, anatomy, classifier; paper gates)"
    nodes[17]["title"] = "Load CLIP Vision for CLIP-I (muted: put a CLIP vision model in models/clip_vision, then Ctrl+M)"
    nodes[17]["mode"] = MUTED
    nodes[18]["title"] = "Evaluation plot"
    nodes[19]["title"] = "Evaluation report (JSON: gates and per-frame metrics)"
    if 20 in nodes:
        nodes[20]["title"] = "Classifier (muted: needs torchxrayvision and its exported weights, see README; Ctrl+M to use)"
        nodes[20]["mode"] = MUTED
    return {
        "last_node_id": max(nodes), "last_link_id": len(links), "nodes": list(nodes.values()), "links": links,
        "groups": [], "config": {}, "extra": {"info": {"title": spec["title"]}}, "version": 0.4,
    }


def main(out: Path = OUT) -> None:
    out.mkdir(exist_ok=True)
    for domain, spec in TEMPLATES.items():
        path = out / f"mvg_{domain}.json"
        path.write_text(json.dumps(build(domain, spec), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
