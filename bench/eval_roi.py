"""Evaluate the automatic ROI masks on every known manifest in a data folder (skips when it is absent).

    PYTHONPATH=. python bench/eval_roi.py DATA_DIR [--limit N]

Runs ``python -m mvg_backend.roi eval`` on cxr_jsrt.csv (lung fields, heart, mediastinum plausibility),
fundus_drive.csv (FOV),
fundus_drions.csv (optic disc) and derm_ph2.csv (skin lesion) where present (see
../shared/data/README.md for getting them; the images are never committed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mvg_backend.roi.evaluate import evaluate, report

MANIFESTS = ("cxr_jsrt.csv", "fundus_drive.csv", "fundus_drions.csv", "derm_ph2.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    data = Path(args.data_dir)
    found = [data / m for m in MANIFESTS if (data / m).is_file()]
    if not found:
        print(f"no manifests in {data} ({', '.join(MANIFESTS)}); nothing to evaluate.")
        return 0
    for manifest in found:
        print(report(manifest.name, evaluate(manifest, data, limit=args.limit)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
