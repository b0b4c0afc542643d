"""Write the templates' sample inputs (``sample_inputs/mvg_*.png``, 512 px on the long side) from licence-clean sources.

    PYTHONPATH=. python scripts/make_sample_inputs.py [OUT_DIR]

- ``mvg_chest_xray.png``: RG1_UNCR.dcm, a MONOCHROME1 chest CR from PyPI ``pydicom-data`` (MIT), read with the
  pack's own DICOM reader (modality LUT, window, MONOCHROME1 inverted: the lungs are dark);
- ``mvg_fundus.png``: ``skimage.data.retina()`` (CC0);
- ``mvg_skin.png``: a synthetic dermoscopy-like lesion (tests/fixtures/roi_phantoms.py, this project's, Apache-2.0).

Deterministic: the same sources give byte-identical PNGs. The pack copies them into ComfyUI's input folder.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import cv2
import numpy as np

from mvg_backend.io import read_dicom
from tests.fixtures.roi_phantoms import lesion_phantom

OUT = Path(__file__).resolve().parent.parent / "sample_inputs"
LONG_SIDE = 512


def _resized(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = LONG_SIDE / max(h, w)
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def _write(path: Path, image: np.ndarray) -> None:
    """``image`` in 0..1 (gray [H,W] or RGB [H,W,3]) as an 8-bit PNG, maximum compression."""
    pixels = (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def sources() -> dict[str, np.ndarray]:
    """File name -> image in 0..1 at full source size."""
    from pydicom.data import get_testdata_file
    from skimage import data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rg1 = get_testdata_file("RG1_UNCR.dcm")
    if rg1 is None:
        raise SystemExit("RG1_UNCR.dcm not found: pip install pydicom-data (requirements-dev.txt)")
    skin = cv2.GaussianBlur(lesion_phantom(384, hairs=4, seed=3)["image"], (0, 0), 1.0)  # less noise: a smaller PNG
    return {"mvg_chest_xray.png": read_dicom(rg1), "mvg_fundus.png": data.retina().astype(np.float32) / 255.0,
            "mvg_skin.png": skin}


def _denoised(name: str, image: np.ndarray) -> np.ndarray:
    """The fundus photo's sensor noise, slightly smoothed, keeps its PNG under 250 KB (217 KB at 512 px)."""
    return cv2.GaussianBlur(image, (0, 0), 0.7) if name == "mvg_fundus.png" else image


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, image in sources().items():
        _write(out / name, _denoised(name, _resized(image)))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
