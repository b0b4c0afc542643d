"""Heart and mediastinum regions (classical, from the lung fields), hints for every finding, and the keep mask."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom, fundus_phantom, lesion_phantom
from mvg_backend.prompts.vocab import get_vocab
from mvg_backend.roi import segment, segment_detailed
from mvg_backend.roi.batch import segment_batch
from mvg_backend.roi.evaluate import dice_iou, mediastinum_plausibility
from mvg_backend.roi.mediastinum import enlarged_heart


@pytest.fixture(scope="module")
def chest():
    return chest_phantom(256)


@pytest.fixture(scope="module")
def analysis(chest):
    return segment_detailed(chest["image"], "chest_xray", "heart").analysis


def test_heart_region_finds_the_phantom_heart(chest):
    result = segment_detailed(chest["image"], "chest_xray", "heart")
    heart = result.mask >= 0.5
    assert result.warnings == [] and not result.fallback
    dice, _ = dice_iou(heart, chest["heart"])
    assert dice > 0.6, dice
    lungs = result.analysis.parts["lungs"] >= 0.5
    assert not (heart & lungs).any()
    ys, xs = np.nonzero(heart)
    h, w = heart.shape
    assert 0.45 * h < ys.mean() < 0.85 * h and 0.4 * w < xs.mean() < 0.7 * w  # low, a little to the patient's left


def test_mediastinum_lies_between_the_lungs_and_holds_the_heart(chest, analysis):
    mediastinum = analysis.parts["mediastinum"] >= 0.5
    heart = analysis.parts["heart"] >= 0.5
    assert not (mediastinum & (analysis.parts["lungs"] >= 0.5)).any()
    assert (heart <= mediastinum).all() and mediastinum.sum() > heart.sum()
    between, overlap = mediastinum_plausibility(mediastinum, chest["right_lung"], chest["left_lung"])
    assert between > 0.8 and overlap < 0.1, (between, overlap)
    region = segment(chest["image"], "chest_xray", "mediastinum") >= 0.5
    np.testing.assert_array_equal(region, mediastinum)


def test_cardiomegaly_region_grows_the_heart_into_the_adjacent_lungs(chest, analysis):
    heart = analysis.parts["heart"] >= 0.5
    grown = enlarged_heart(analysis)
    lungs = analysis.parts["lungs"] >= 0.5
    assert (heart <= grown).all() and (grown & lungs).sum() > 0.2 * heart.sum()  # room for the silhouette to grow
    thorax = heart | lungs | (analysis.parts["mediastinum"] >= 0.5)
    assert (grown <= thorax).all()
    hinted = segment(chest["image"], "chest_xray", "auto", hint="heart and the adjacent lung fields") >= 0.5
    np.testing.assert_array_equal(hinted, grown)


def _hints(domain: str) -> set[str]:
    """Every ROI hint a vocabulary can emit: each concept's template over every side and zone."""
    vocab = get_vocab(domain)
    out = set()
    for concept, side, zone in itertools.product(vocab.concepts, ("", "right ", "left ", "bilateral "),
                                                 ("", "upper ", "middle ", "lower ")):
        zone = zone or (f"{concept.default_zone} " if concept.default_zone else "")
        hint = " ".join(concept.roi.replace("{side}", side).replace("{zone}", zone).split())
        out.add("both lungs" if hint == "lung" else hint)
    return out


@pytest.mark.parametrize("domain", ["chest_xray", "fundus", "skin"])
def test_every_hint_any_vocabulary_emits_resolves_without_a_warning(domain, chest):
    image = {"chest_xray": chest["image"], "fundus": fundus_phantom(192)["image"],
             "skin": lesion_phantom(192)["image"]}[domain]
    hints = _hints(domain)
    assert hints
    for hint in sorted(hints):
        result = segment_detailed(image, domain, "auto", hint=hint)
        assert result.warnings == [] and (result.mask >= 0.5).any(), (hint, result.warnings)


def test_stage_hints_of_a_plan_resolve_per_finding(chest):
    from mvg_backend.prompts import plan

    p = plan("Mild cardiomegaly. Small hiatal hernia. Small left pleural effusion.", "chest_xray", stages=3)
    masks, _, summary = segment_batch(chest["image"][None, ..., None].repeat(3, -1), "chest_xray", "auto", prompts=p)
    assert "WARNING" not in summary
    region = masks[0] >= 0.5
    parts = segment_detailed(chest["image"], "chest_xray", "heart").analysis.parts
    assert (region & (parts["heart"] >= 0.5)).any() and (region & (parts["left_lung"] >= 0.5)).any()


def test_keep_mask_stays_untouched_even_after_dilate_and_feather(chest):
    keep = np.zeros(chest["image"].shape, np.float32)
    keep[:, 60:66] = 1  # a line (a chest tube) across the right lung
    lungs = segment(chest["image"], "chest_xray", "lungs", dilate=4, feather=6)
    assert lungs[:, 60:66].max() > 0.5
    kept = segment_detailed(chest["image"], "chest_xray", "lungs", dilate=4, feather=6, keep_mask=keep)
    assert kept.mask[:, 60:66].max() == 0 and any("keep mask" in n for n in kept.notes)
    np.testing.assert_array_equal(kept.mask[:, :50], lungs[:, :50])
    subtracted = segment(chest["image"], "chest_xray", "lungs", user_mask=keep, combine="subtract", dilate=4, feather=6)
    assert subtracted[:, 60:66].max() == 0  # subtract: the user's mask stays out after post-processing too
    empty = segment_detailed(chest["image"], "chest_xray", "lungs", keep_mask=np.zeros((8, 8)))
    assert any("keep mask is empty" in n for n in empty.notes)
    everything = segment_detailed(chest["image"], "chest_xray", "lungs", keep_mask=np.ones((8, 8)))
    assert any("covers the whole edit region" in w for w in everything.warnings)


def test_batch_keep_masks_broadcast(chest):
    image = np.repeat(chest["image"][None, ..., None], 3, axis=-1)
    batch = np.concatenate([image, image])
    keep = np.zeros((1, 32, 32), np.float32)
    keep[0, :, 10:12] = 1
    masks, _, _ = segment_batch(batch, "chest_xray", "lungs", keep_masks=keep)
    assert masks.shape == (2, 256, 256) and masks[:, :, 81:95].max() == 0
