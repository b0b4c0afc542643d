"""Automatic ROI methods on synthetic phantoms with known masks (exact Dice thresholds), and on the
licence-clean real images shipped in packages: scikit-image's retina (CC0) and pydicom's test files."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom, fundus_phantom, lesion_phantom
from mvg_backend.roi import segment, segment_detailed


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    pred = pred >= 0.5
    return 2 * float((pred & truth).sum()) / float(pred.sum() + truth.sum())


@pytest.fixture(scope="module")
def chest():
    return chest_phantom(256)


def test_lungs_on_the_chest_phantom(chest):
    result = segment_detailed(chest["image"], "chest_xray", "lungs")
    parts = result.analysis.parts
    assert dice(parts["right_lung"], chest["right_lung"]) >= 0.92
    assert dice(parts["left_lung"], chest["left_lung"]) >= 0.90
    assert dice(result.mask, chest["right_lung"] | chest["left_lung"]) >= 0.92
    assert not result.fallback and result.warnings == []
    assert result.components == 2


def test_right_and_left_are_the_patients_sides(chest):
    right = segment(chest["image"], "chest_xray", "right_lung")
    left = segment(chest["image"], "chest_xray", "left_lung")
    w = right.shape[1]
    assert right[:, : w // 2].sum() > 0.95 * right.sum(), "the patient's right lung is on the image's left"
    assert left[:, w // 2 :].sum() > 0.95 * left.sum()


def test_lungs_are_invariant_to_polarity_contrast_and_size(chest):
    base = segment(chest["image"], "chest_xray", "lungs")
    inverted = segment_detailed(1.0 - chest["image"], "chest_xray", "lungs")  # MONOCHROME1-style
    assert any("inverted polarity" in n for n in inverted.notes)
    assert dice(inverted.mask, base >= 0.5) >= 0.97
    washed = (0.55 + 0.3 * chest["image"]) ** 0.5  # washed-out, low-contrast export
    assert dice(segment(washed, "chest_xray", "lungs"), base >= 0.5) >= 0.95
    as16 = (chest["image"] * 65535).astype(np.uint16)
    assert dice(segment(as16, "chest_xray", "lungs"), base >= 0.5) >= 0.99
    big = chest_phantom(400, width=360)
    truth = big["right_lung"] | big["left_lung"]
    mask = segment(big["image"], "chest_xray", "lungs")
    assert mask.shape == (400, 360) and dice(mask, truth) >= 0.90


def test_lungs_with_black_padding_are_found_inside_the_content(chest):
    padded = np.pad(chest["image"], ((0, 0), (80, 80)))
    truth = np.pad(chest["right_lung"] | chest["left_lung"], ((0, 0), (80, 80)))
    result = segment_detailed(padded, "chest_xray", "lungs")
    assert any("uniform borders trimmed" in n for n in result.notes)
    assert dice(result.mask, truth) >= 0.90


def test_costophrenic_angles_stay_in_the_lung_mask(chest):
    mask = segment(chest["image"], "chest_xray", "lungs") >= 0.5
    truth = chest["right_lung"] | chest["left_lung"]
    rows = np.flatnonzero(truth.any(axis=1))
    low = slice(rows[-1] - (rows[-1] - rows[0]) // 10, rows[-1] + 1)  # the lowest tenth: the angles
    assert (mask[low] & truth[low]).sum() >= 0.75 * truth[low].sum()


def test_mediastinum_is_excluded(chest):
    mask = segment(chest["image"], "chest_xray", "lungs")
    w = mask.shape[1]
    assert mask[:, int(0.47 * w) : int(0.53 * w)].max() == 0.0


def test_fundus_phantom_right_and_left_eye():
    for eye in ("right", "left"):
        ph = fundus_phantom(320, eye=eye)
        result = segment_detailed(ph["image"], "fundus", "optic_disc")
        lm = result.analysis.landmarks
        assert dice(result.analysis.parts["fov"], ph["fov"]) >= 0.99
        assert dice(result.mask, ph["optic_disc"]) >= 0.90
        mx, my = ph["macula_xy"]
        assert np.hypot(lm["macula_x"] - mx, lm["macula_y"] - my) <= 0.5 * ph["disc_d"], eye
        assert lm["eye_right"] == float(eye == "right")
        # the eye widget overrides the automatic side: the wrong eye puts the macula on the other side
        wrong = segment_detailed(ph["image"], "fundus", "macula", eye="left" if eye == "right" else "right")
        assert np.sign(wrong.analysis.landmarks["macula_x"] - lm["disc_x"]) != np.sign(mx - lm["disc_x"])


def test_retina_is_the_fov_without_the_disc():
    ph = fundus_phantom(256)
    result = segment_detailed(ph["image"], "fundus", "retina")
    parts = result.analysis.parts
    assert result.mask[ph["optic_disc"]].mean() < 0.05
    assert dice(result.mask, ph["fov"] & ~ph["optic_disc"]) >= 0.97
    assert (parts["retina"] <= parts["fov"]).all()


def test_lesion_with_hairs_and_vignetting():
    ph = lesion_phantom(320)
    result = segment_detailed(ph["image"], "skin", "lesion")
    assert dice(result.mask, ph["lesion"]) >= 0.95
    assert any("hair removed" in n for n in result.notes)
    assert any("dark surround" in n for n in result.notes)
    assert result.components == 1


def test_lesion_nearest_the_centre_wins_over_a_larger_corner_blob():
    ph = lesion_phantom(240, hairs=0, vignette=False)
    image = ph["image"].copy()
    h, w = image.shape[:2]
    image[: h // 3, : w // 5] = (0.35, 0.2, 0.15)  # a big dark patch in a corner (e.g. a marker pen)
    mask = segment(image, "skin", "lesion")
    assert dice(mask, ph["lesion"]) >= 0.93
    assert mask[: h // 4, : w // 6].max() == 0.0


def test_skimage_retina_fov_disc_and_macula_are_plausible():
    data = pytest.importorskip("skimage.data")
    image = data.retina()  # CC0, 1411x1411 (a left eye: the disc is on the image's left)
    result = segment_detailed(image, "fundus", "optic_disc")
    lm, parts = result.analysis.landmarks, result.analysis.parts
    h, w = image.shape[:2]
    fov = parts["fov"] >= 0.5
    assert 0.6 < fov.mean() < 0.85 and fov[h // 2, w // 2] and not fov[0, 0]
    # the disc is the brightest region: its mean luminance is far above the retina's
    lum = image.astype(np.float32).mean(axis=2)
    disc = result.mask >= 0.5
    assert lum[disc].mean() > np.percentile(lum[fov], 95)
    assert 0.08 * lm["fov_d"] <= lm["disc_d"] <= 0.3 * lm["fov_d"]
    # the macula is temporal to the disc, 1.5-3.5 disc diameters away, roughly level with it
    dist = np.hypot(lm["macula_x"] - lm["disc_x"], lm["macula_y"] - lm["disc_y"]) / lm["disc_d"]
    assert 1.5 <= dist <= 3.5 and lm["macula_x"] > lm["disc_x"] and lm["eye_right"] == 0.0
    assert abs(lm["macula_y"] - lm["disc_y"]) < lm["disc_d"]
    assert not result.fallback and "macula" not in result.analysis.fallbacks
