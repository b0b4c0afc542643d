"""``python -m mvg_backend evaluate``: metrics, gates and plot for a trajectory on disk.

Writes ``metrics.json`` and ``metrics.png`` into ``--out``; exits 0 when every gate passes, 1 when one fails
(2 on bad input, as every command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import MVGInputError
from .gates import Thresholds


def add_evaluate_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("evaluate", help="CLIP-I, identity outside the ROI, smoothness, anatomy and classifier "
                                        "confidence of a trajectory, with gates and a plot")
    p.add_argument("frames", nargs="+", type=Path,
                   help="a folder of frames (name order) or a video (MP4 …); several = runs of one case with "
                        "different seeds (spread and a per-pixel std map of the final frame)")
    p.add_argument("--original", type=Path, help="the unedited image (default: frame 0)")
    p.add_argument("--mask", type=Path, help="the ROI mask, white = may change (default: none)")
    p.add_argument("--clip", type=Path, help="local transformers CLIP vision (or CLIP) folder for CLIP-I; "
                                             "nothing is downloaded")
    p.add_argument("--classifier",
                   help="torchxrayvision:<weights name> (e.g. torchxrayvision:densenet121-res224-all), a TorchScript "
                        "/ safetensors file with a JSON beside it, or a .json descriptor")
    p.add_argument("--label", help="the classifier label to follow (default: from --prompts/--report findings)")
    p.add_argument("--prompts", type=Path, help="MVG_PROMPTS as JSON (PromptPlan.to_dict): label, domain, direction")
    p.add_argument("--report", type=Path, help="a report text file, read by the rule engine for the label")
    p.add_argument("--domain", choices=("chest_xray", "fundus", "skin", "other"),
                   help="for the anatomy check (default: from the prompts, else other)")
    p.add_argument("--direction", choices=("progression", "regression"))
    p.add_argument("--keyframes", help="keyframe indices, e.g. 0,15,30, or a SEINE Transition summary file")
    p.add_argument("--no-anatomy", action="store_true", help="skip the anatomy consistency check")
    p.add_argument("--device", default="cpu")
    g = p.add_argument_group("gates (defaults: the MVG paper's)")
    d = Thresholds()
    g.add_argument("--clip-i-min", type=float, default=d.clip_i_min)
    g.add_argument("--outside-max-change", type=float, default=d.outside_max_change,
                   help="0..1 units (default 2/255)")
    g.add_argument("--confidence-rho-min", type=float, default=d.confidence_rho_min)
    g.add_argument("--anatomy-dice-min", type=float, default=d.anatomy_dice_min)
    g.add_argument("--flicker-spikes-max", type=int, default=d.flicker_spikes_max)
    p.add_argument("--out", type=Path, required=True, help="output folder (new or empty): metrics.json, metrics.png")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    return p


def _keyframes(value: str | None):
    if not value:
        return None
    path = Path(value)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError as e:
        raise MVGInputError(f"--keyframes {value!r}: give indices like 0,15,30 or a summary file.") from e


def _prompts(args: argparse.Namespace):
    from ..prompts import plan
    from ..prompts.types import PromptPlan

    if args.prompts:
        try:
            return PromptPlan.from_dict(json.loads(args.prompts.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:
            raise MVGInputError(f"--prompts {args.prompts.name}: not an MVG_PROMPTS JSON ({e}).") from e
    if args.report:
        if not args.domain or args.domain == "other":
            raise MVGInputError("--report needs --domain chest_xray, fundus or skin (the rule engine's domains).")
        return plan(args.report.read_text(encoding="utf-8"), args.domain,
                    direction=args.direction or "progression")
    return None


def run_evaluate(args: argparse.Namespace) -> int:
    from ..io.files import OutputDir, read_image
    from .classifier import load_classifier
    from .evaluate import evaluate_trajectory
    from .inputs import read_frames

    runs = [read_frames(p) for p in args.frames]
    original = read_image(args.original) if args.original else None
    mask = read_image(args.mask) if args.mask else None
    classifier = load_classifier(args.classifier, device=args.device) if args.classifier else None
    thresholds = Thresholds(args.clip_i_min, args.outside_max_change, args.confidence_rho_min,
                            args.anatomy_dice_min, args.flicker_spikes_max)

    def progress(done: int, total: int) -> None:
        print(f"\ranatomy {done}/{total}", end="", file=sys.stderr, flush=True)

    with OutputDir(args.out, overwrite=args.overwrite) as out:
        clip = None
        if args.clip:
            from .clip_i import TransformersCLIPEmbedder

            clip = TransformersCLIPEmbedder(args.clip, device=args.device)
        result = evaluate_trajectory(runs[0], original, mask, clip=clip, classifier=classifier, label=args.label,
                                     prompts=_prompts(args), domain=args.domain, direction=args.direction,
                                     thresholds=thresholds, keyframes=_keyframes(args.keyframes),
                                     anatomy=not args.no_anatomy, runs=runs[1:], progress=progress)
        print(file=sys.stderr)
        result.write(out)
    print(result.describe())
    print(f"wrote metrics.json and metrics.png to {args.out}")
    return 0 if result.passed else 1
