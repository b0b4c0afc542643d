"""scripts/make_roi_figures.py regenerates the README's ROI figures from licence-clean images, each < 200 KB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_make_roi_figures(tmp_path):
    pytest.importorskip("pydicom")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "scripts/make_roi_figures.py", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    if run.returncode and "pydicom-data" in run.stderr + run.stdout:
        pytest.skip("RG1_UNCR.dcm is not installed (pip install pydicom-data)")
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in tmp_path.glob("*.png"))
    assert names == ["roi_chest_heart.png", "roi_chest_lungs.png", "roi_fundus_disc_macula.png", "roi_skin_lesion.png"]
    for p in tmp_path.glob("*.png"):
        assert 10_000 < p.stat().st_size < 200_000, p
        assert (ROOT / "docs" / p.name).is_file(), f"docs/{p.name} is not committed"
