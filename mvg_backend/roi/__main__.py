"""The ROI command line.

``python -m mvg_backend.roi mask IMAGE --domain chest_xray [--region lungs] --out mask.png``: a mask PNG
(for ``python -m mvg_backend pie --mask``), with ``--overlay`` a preview PNG too.
``python -m mvg_backend.roi eval MANIFEST.csv DATA_DIR``: Dice, IoU and failures per task.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from ..errors import MVGInputError
from ..io.files import read_image, write_png
from .api import DOMAINS, REGIONS, segment_detailed
from .evaluate import evaluate, report
from .overlay import overlay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mvg_backend.roi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="score automatic masks against a manifest of image/mask pairs")
    ev.add_argument("manifest", help="CSV with an 'image' column and ground-truth columns named after regions")
    ev.add_argument("data_dir", help="folder the manifest's paths are relative to")
    ev.add_argument("--limit", type=int, default=None, help="only the first N rows")
    ev.add_argument("--csv", default=None, help="write per-image scores (id, task, dice, iou, error) here")
    mk = sub.add_parser("mask", help="write the automatic mask of one image as a PNG")
    mk.add_argument("image", help="PNG, JPEG, TIFF, BMP or DICOM")
    mk.add_argument("--domain", required=True, choices=DOMAINS)
    mk.add_argument("--region", default="auto", choices=("auto", *REGIONS))
    mk.add_argument("--hint", default=None, help="region hint, e.g. 'right lower lung'")
    mk.add_argument("--rect", default="0.25, 0.25, 0.75, 0.75", help="for --region rectangle: l, t, r, b (0..1)")
    mk.add_argument("--eye", default="auto", choices=("auto", "left", "right"))
    mk.add_argument("--dilate", type=int, default=0, help="pixels; negative erodes")
    mk.add_argument("--feather", type=float, default=0.0, help="soft edge width in pixels")
    mk.add_argument("--out", required=True, help="mask PNG (white = region)")
    mk.add_argument("--overlay", default=None, help="also write a preview PNG here")
    args = parser.parse_args(argv)
    try:
        if args.command == "mask":
            return _mask(args)
        rows: list[dict] = []
        scores = evaluate(args.manifest, args.data_dir, limit=args.limit, rows_out=rows)
    except MVGInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(args.manifest, scores))
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "task", "dice", "iou", "error"])
            writer.writeheader()
            writer.writerows(rows)
    return 0


def _mask(args: argparse.Namespace) -> int:
    image = read_image(args.image)
    result = segment_detailed(image, args.domain, args.region, hint=args.hint, rect=args.rect, eye=args.eye,
                              dilate=args.dilate, feather=args.feather)
    write_png(Path(args.out), result.mask)
    if args.overlay:
        write_png(Path(args.overlay), overlay(image, result.mask))
    print(result.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
