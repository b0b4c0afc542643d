"""ROI Mask's domain 'auto' (mvg_backend.roi.batch.resolve_domain): the domain of the connected MVG_PROMPTS,
or an error that names the input and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.roi_phantoms import chest_phantom
from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import parse_prompt_lines, plan
from mvg_backend.roi.batch import resolve_domain, segment_batch

FUNDUS_REPORT = "Mild non-proliferative diabetic retinopathy with scattered microaneurysms."


def test_auto_takes_the_plan_domain_and_a_named_domain_wins():
    fundus = plan(FUNDUS_REPORT, "fundus", stages=2)
    assert resolve_domain("auto", fundus) == "fundus"
    assert resolve_domain("chest_xray", fundus) == "chest_xray"  # explicit: kept (segment_batch warns)
    assert resolve_domain("skin", None) == "skin"
    assert resolve_domain("auto", fundus.to_dict()) == "fundus"  # any MVG_PROMPTS form


def test_auto_without_a_domain_to_take_fails_with_the_fix():
    with pytest.raises(MVGInputError, match=r"^domain: 'auto'.*connect MVG Report to Prompts' prompts"):
        resolve_domain("auto", None)
    with pytest.raises(MVGInputError, match=r"^domain: 'auto'.*hand-written.*pick the domain"):
        resolve_domain("auto", parse_prompt_lines("a chest x-ray with a small effusion"))


def test_segment_batch_with_auto_segments_the_plan_domain():
    image = chest_phantom(96)["image"][None, ..., None].repeat(3, -1)
    cxr = plan("Small right pleural effusion.", "chest_xray", stages=2)
    auto_masks, _, summary = segment_batch(image, "auto", "lungs", prompts=cxr)
    named_masks, _, _ = segment_batch(image, "chest_xray", "lungs", prompts=cxr)
    np.testing.assert_array_equal(auto_masks, named_masks)
    assert summary.startswith("MVG ROIMask: domain chest_xray (auto: the prompts' domain), region lungs")
