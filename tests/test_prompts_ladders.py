"""Clinically plausible plans (issue 13): distinct ordered stages along each disease's natural-history ladder."""

from __future__ import annotations

import pytest

from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import MAX_SEVERITY, plan
from mvg_backend.prompts.rules import aggregate, mentions
from mvg_backend.prompts.vocab import get_vocab

REPORTS = [
    ("chest_xray", "Moderate emphysema. Moderate pulmonary fibrosis."),
    ("chest_xray", "Mild cardiomegaly. Small hiatal hernia. Small left pleural effusion."),
    ("chest_xray", "Bibasilar atelectasis. Right upper lobe nodule."),
    ("chest_xray", "Small right apical pneumothorax."),
    ("chest_xray", "Left lower lobe pneumonia with consolidation. Interstitial edema."),
    ("chest_xray", "Right pleural thickening. Left lung mass. Infiltrate in the right base."),
    ("chest_xray", "Severe cardiomegaly. Trace left effusion."),
    ("fundus", "Intermediate AMD with large drusen."),
    ("fundus", "Moderate nonproliferative diabetic retinopathy. Mild macular edema. Cup-to-disc ratio 0.6."),
    ("fundus", "Mild NPDR."),
    ("skin", "An asymmetric, multi-coloured, irregular 8 mm pigmented lesion suspicious for melanoma."),
    ("skin", "Seborrheic keratosis. Actinic keratosis nearby."),
    ("skin", "Basal cell carcinoma, superficial."),
]


def _reported(report: str, domain: str) -> float:
    vocab = get_vocab(domain)
    return max((s for f, s in aggregate(mentions(report, vocab)) if f.certainty == "positive"
                and vocab.concept(f.name).kind != "feature"), default=0.0)


@pytest.mark.parametrize("domain, report", REPORTS)
@pytest.mark.parametrize("stages", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("direction", ["progression", "regression"])
def test_stages_are_distinct_ordered_and_beyond_the_report(domain, report, stages, direction):
    p = plan(report, domain, stages=stages, direction=direction)
    prompts = [s.prompt for s in p.stages]
    assert len(set(prompts)) == len(prompts), prompts  # no two stages share a prompt
    assert 1 <= len(prompts) <= stages
    if len(prompts) < stages:
        assert any("so the plan has" in n for n in p.notes), p.notes  # fewer stages: the plan says so
    severities = [s.severity for s in p.stages]
    steps = [b - a for a, b in zip(severities, severities[1:])]
    if direction == "progression":
        assert all(d > 0 for d in steps), severities
        if domain != "skin":
            assert severities[0] > _reported(report, domain) or "already at max_severity" in " ".join(p.notes)
    else:
        assert all(d < 0 for d in steps) and severities[-1] == 0.0, severities
        assert prompts[-1] == get_vocab(domain).normal


def test_icdr_ladder_mild_moderate_severe_npdr_then_pdr():
    p = plan("Mild nonproliferative diabetic retinopathy.", "fundus", stages=3)
    assert [s.prompt.split(" with ", 1)[1].split(" diabetic")[0] for s in p.stages] == [
        "moderate nonproliferative", "severe nonproliferative", "proliferative"]
    moderate = plan("Moderate NPDR.", "fundus", stages=3).stages
    assert "moderate nonproliferative" in moderate[0].prompt and "severe nonproliferative" in moderate[1].prompt
    assert moderate[-1].prompt.endswith("proliferative diabetic retinopathy with neovascularization")
    assert not any("vitreous" in s.prompt for s in moderate)  # end-stage wording needs max_severity="end-stage"
    end = plan("Moderate NPDR.", "fundus", stages=4, max_severity="end-stage").stages
    assert "vitreous hemorrhage" in end[-1].prompt


def test_amd_early_intermediate_advanced_and_the_course_is_named():
    early = plan("Early AMD with small drusen.", "fundus", stages=3)
    assert [s.prompt.split(" with ", 1)[1] for s in early.stages] == [
        "many medium drusen in the macula", "large soft drusen in the macula", "geographic atrophy of the macula"]
    assert any("geographic atrophy (dry AMD" in n for n in early.notes)
    intermediate = plan("Intermediate AMD with large drusen.", "fundus", stages=3)
    assert sum("geographic atrophy of the macula" == s.prompt.split(" with ", 1)[1] for s in intermediate.stages) == 1
    wet = plan("Drusen. Early neovascular AMD with choroidal neovascularization.", "fundus", stages=2,
               max_severity="end-stage")
    assert "subretinal" in wet.stages[0].prompt and "disciform scar" in wet.stages[-1].prompt
    assert any("choroidal neovascularisation" in n for n in wet.notes)
    assert [f.name for f in wet.findings] == ["Age-related macular degeneration"]  # CNV is no diabetic retinopathy


@pytest.mark.parametrize("report, words", [
    ("Small left pleural effusion.", ["small to moderate", "moderate", "large"]),
    ("Trace right pleural effusion.", ["small", "moderate", "large"]),
    ("Small right apical pneumothorax.", ["small right pneumothorax", "moderate", "large"]),
    ("Tiny left apical pneumothorax.", ["small left apical", "moderate", "large"]),
    ("Plate-like atelectasis in the right base.", ["subsegmental", "segmental", "collapse"]),
])
def test_chest_ladders(report, words):
    p = plan(report, "chest_xray", stages=3)
    for stage, word in zip(p.stages, words):
        assert word in stage.prompt, (stage.prompt, word)


def test_atelectasis_stops_at_lobar_collapse_by_default():
    p = plan("Bibasilar atelectasis.", "chest_xray", stages=3)
    assert p.stages[-1].prompt == "a chest x-ray with bilateral lower lobe collapse"
    assert not any("complete" in s.prompt for s in p.stages)
    end = plan("Bibasilar atelectasis.", "chest_xray", stages=6, max_severity="end-stage")
    assert "complete" in end.stages[-1].prompt


def test_max_severity_caps_the_terminal_state():
    report = "Trace right pleural effusion."
    for cap, last in (("mild", "a small right"), ("moderate", "a moderate right"), ("severe", "a large right"),
                      ("end-stage", "massive")):
        p = plan(report, "chest_xray", stages=4, max_severity=cap)
        assert last in p.stages[-1].prompt, (cap, p.stages[-1].prompt)
    assert MAX_SEVERITY == ("mild", "moderate", "severe", "end-stage")
    with pytest.raises(MVGInputError, match="max_severity"):
        plan(report, "chest_xray", max_severity="extreme")
    capped = plan("Severe emphysema with hyperinflated lungs.", "chest_xray", stages=3, max_severity="moderate")
    assert len(capped.stages) == 1 and any("already at max_severity" in n for n in capped.notes)


def test_fewer_stages_are_noted():
    p = plan("Moderate cardiomegaly.", "chest_xray", stages=6)
    assert len(p.stages) < 6 and any("so the plan has" in n for n in p.notes)


def test_pigmented_lesion_with_abcd_features_is_an_atypical_pigmented_lesion_not_melanoma():
    report = "An asymmetric, multi-coloured, irregular 8 mm pigmented lesion suspicious for melanoma."
    p = plan(report, "skin", stages=4)
    assert all("atypical pigmented lesion" in s.prompt and "melanoma" not in s.prompt for s in p.stages)
    assert any("melanoma is suspected but uncertain" in n for n in p.notes)
    assert "no positive finding" not in " ".join(p.notes)
    assert "diameter of about 8 mm" in p.stages[0].prompt  # the diameter grows first, then borders, colours
    assert "notched borders" in p.stages[1].prompt and "light and dark brown" in p.stages[2].prompt
    assert p.stages[0].roi_hint == "lesion and its surrounding skin"
    nevus = plan("Compound nevus with irregular borders.", "skin", stages=3)
    assert all("atypical pigmented lesion" in s.prompt for s in nevus.stages)
    melanoma = plan("Melanoma in situ with irregular borders.", "skin", stages=3)
    assert all("melanoma" in s.prompt for s in melanoma.stages)


def test_llm_plans_may_show_an_atypical_pigmented_lesion_for_abcd_features():
    from mvg_backend.prompts.planner import invented_by

    vocab = get_vocab("skin")
    invented = invented_by("Asymmetric lesion with irregular borders.", vocab)
    assert invented(["a dermoscopy image of an atypical pigmented lesion with irregular borders"]) == []
    assert invented(["a dermoscopy image of a melanoma"]) == ["Melanoma"]


@pytest.mark.parametrize("domain", ["chest_xray", "fundus", "skin"])
def test_every_rung_mentions_only_its_own_finding(domain):
    """A caption must not read as another finding (e.g. 'lung collapse' in a pneumothorax caption)."""
    vocab = get_vocab(domain)
    for concept in vocab.concepts:
        ladders = [concept.ladder] + ([concept.branch[2]] if concept.branch else [])
        for rung in (r for ladder in ladders for r in ladder):
            text = rung.render("right", "lower lobe")
            others = {m.concept.name for m in mentions(text, vocab) if m.concept.kind != "feature"}
            assert not others - {concept.name}, (concept.name, text, others)
