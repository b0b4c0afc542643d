"""Regenerate the README's ROIMask figures (docs/roi_*.png) from licence-clean images only.

    PYTHONPATH=. python scripts/make_roi_figures.py [OUT_DIR]

- chest: RG1_UNCR.dcm, a real MONOCHROME1 chest CR from PyPI ``pydicom-data`` (MIT): lung fields; and the heart
  (red) inside the mediastinum (the rest of it in blue), with the cardiomegaly edit region's outline (green);
- fundus: ``skimage.data.retina()`` (CC0): optic disc and macula (the retina region is the FOV minus the disc);
- skin: a synthetic pigmented lesion with hairs and vignetting (tests/fixtures/roi_phantoms.py): the lesion.

Each figure is the node's overlay preview (mask tinted red, outline yellow), 320 px high, under 200 KB.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

from mvg_backend.io import read_dicom
from mvg_backend.roi import overlay, segment_detailed
from tests.fixtures.roi_phantoms import lesion_phantom

HEIGHT = 320


def _save(path: Path, image: np.ndarray) -> None:
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * HEIGHT / h), HEIGHT), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor((np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def _heart_figure(chest: np.ndarray, analysis) -> np.ndarray:
    """The heart region tinted red, the rest of the mediastinum blue, the cardiomegaly edit region outlined green."""
    from mvg_backend.roi.mediastinum import enlarged_heart

    heart = analysis.parts["heart"] >= 0.5
    rest = (analysis.parts["mediastinum"] >= 0.5) & ~heart
    image = overlay(chest, heart.astype(np.float32))
    image[rest] = 0.65 * image[rest] + 0.35 * np.array([0.2, 0.4, 1.0], np.float32)
    edit = enlarged_heart(analysis).astype(np.uint8)
    contours, _ = cv2.findContours(edit, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, (0.1, 0.9, 0.2), max(2, chest.shape[0] // 160))
    return image


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs")
    out.mkdir(parents=True, exist_ok=True)
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rg1 = get_testdata_file("RG1_UNCR.dcm")
    if rg1 is None:
        raise SystemExit("RG1_UNCR.dcm not found: pip install pydicom-data")
    chest = read_dicom(rg1)
    # work at a modest size: the figure is small, and the mask is computed at the input's size
    chest = cv2.resize(chest, (chest.shape[1] // 4, chest.shape[0] // 4), interpolation=cv2.INTER_AREA)
    lungs = segment_detailed(chest, "chest_xray", "lungs")
    _save(out / "roi_chest_lungs.png", overlay(chest, lungs.mask))
    _save(out / "roi_chest_heart.png", _heart_figure(chest, lungs.analysis))

    from skimage import data

    retina = data.retina()
    disc = segment_detailed(retina, "fundus", "optic_disc")
    macula = disc.analysis.parts["macula"]
    _save(out / "roi_fundus_disc_macula.png", overlay(retina, np.maximum(disc.mask, macula)))

    skin = cv2.GaussianBlur(lesion_phantom(384, seed=3)["image"], (0, 0), 1.0)  # less noise: a smaller PNG
    _save(out / "roi_skin_lesion.png", overlay(skin, segment_detailed(skin, "skin", "lesion").mask))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
