"""The ROI command line.

``python -m mvg_backend.roi mask IMAGE --domain chest_xray [--region lungs] --out mask.png``: a mask PNG
(for ``python -m mvg_backend pie --mask``), with ``--overlay`` a preview PNG too.
``python -m mvg_backend.roi eval MANIFEST.csv DATA_DIR``: Dice, IoU and failures per task.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from ..errors import MVGInputError
from ..io.files import check_output_file, read_image, run_command_line, write_pngs
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
    return run_command_line(lambda: _mask(args) if args.command == "mask" else _eval(args))


def _eval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise MVGInputError(f"--limit {args.limit}: give a positive number of rows (or leave it out for all).")
    if args.csv:  # checked before the (long) evaluation, so that its results are not lost at the end
        check_output_file(args.csv, "--csv", (".csv",))
    rows: list[dict] = []
    scores = evaluate(args.manifest, args.data_dir, limit=args.limit, rows_out=rows)
    print(report(args.manifest, scores))
    if args.csv:
        partial = Path(args.csv).with_name(Path(args.csv).name + ".part")
        try:
            with open(partial, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=["id", "task", "dice", "iou", "error"])
                writer.writeheader()
                writer.writerows(rows)
            os.replace(partial, args.csv)
        finally:
            partial.unlink(missing_ok=True)
    return 0


def _mask(args: argparse.Namespace) -> int:
    # every output is checked before the work, and written all-or-nothing after it
    outputs = [check_output_file(args.out, "--out")]
    if args.overlay:
        outputs.append(check_output_file(args.overlay, "--overlay"))
        if outputs[1].resolve() == outputs[0].resolve():
            raise MVGInputError(f"--overlay {args.overlay!r} is the same file as --out; give it another name.")
    image = read_image(args.image)
    result = segment_detailed(image, args.domain, args.region, hint=args.hint, rect=args.rect, eye=args.eye,
                              dilate=args.dilate, feather=args.feather)
    images = [result.mask] + ([overlay(image, result.mask)] if args.overlay else [])
    write_pngs(dict(zip(outputs, images)))
    print(result.describe())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
