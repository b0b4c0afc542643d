"""The MVG_PROMPTS value and the hand-written prompt list syntax."""

from __future__ import annotations

import pytest

from mvg_backend.errors import MVGInputError
from mvg_backend.prompts import PromptPlan, Stage, parse_prompt_lines


def test_one_stage_per_line_with_comments_and_shared_negative():
    plan = parse_prompt_lines("# stages\nmild effusion\n\n  large effusion  \n", negative_prompt="text, letters")
    assert [s.prompt for s in plan.stages] == ["mild effusion", "large effusion"]
    assert {s.negative_prompt for s in plan.stages} == {"text, letters"}
    assert plan.engine == "manual" and plan.direction == "progression"


def test_per_line_negative_and_options():
    plan = parse_prompt_lines("small nodule | blurry {rounds=3, strength=0.4, name=early}\nlarge mass",
                              negative_prompt="global")
    first, second = plan.stages
    assert (first.prompt, first.negative_prompt, first.rounds, first.strength, first.name) == (
        "small nodule", "blurry", 3, 0.4, "early")
    assert (second.negative_prompt, second.rounds, second.strength) == ("global", None, None)


@pytest.mark.parametrize("text,match", [
    ("", "prompt list is empty"),
    ("# only a comment", "prompt list is empty"),
    ("x {rounds=a}", "line 1: option rounds='a' is not a number"),
    ("ok\nx {speed=3}", "line 2: unknown option 'speed'"),
    ("x {rounds}", "key=value"),
    ("| neg only", "line 1 has no prompt"),
    ("x {rounds=0}", "rounds=0"),
])
def test_bad_lines(text, match):
    with pytest.raises(MVGInputError, match=match):
        parse_prompt_lines(text)


def test_round_trip_dict_and_coerce():
    plan = parse_prompt_lines("a {rounds=2}\nb | neg")
    again = PromptPlan.from_dict(plan.to_dict())
    assert again == plan
    assert PromptPlan.coerce("one").stages == (Stage("one"),)
    assert PromptPlan.coerce(["a", Stage("b", rounds=1)]).stages[1].rounds == 1
    with pytest.raises(MVGInputError, match="direction"):
        PromptPlan(stages=(Stage("a"),), direction="sideways")
    with pytest.raises(MVGInputError, match="expected MVG_PROMPTS"):
        PromptPlan.coerce(3)


@pytest.mark.parametrize("text, match", [
    ("x {rounds=1000000}", r"line 1: rounds=1000000; use an integer in 1\.\.200 \(the Progressive Edit node's cap\)"),
    ("ok\nx {rounds=1_000_000}", r"line 2: rounds=1000000; use an integer in 1\.\.200"),
    ("x {rounds=201}", r"rounds=201; use an integer in 1\.\.200"),
    ("x {strength=0.001}", r"line 1: strength=0\.001; use a number in 0\.01\.\.1"),
    ("x {strength=1.5}", r"strength=1\.5; use a number in 0\.01\.\.1"),
    ("x {strength=nan}", r"strength=nan; use a number in 0\.01\.\.1"),
    ("x" * 2001, r"line 1: a stage prompt has 2001 characters; use text of at most 2000"),
])
def test_per_stage_overrides_obey_the_node_caps(text, match):
    with pytest.raises(MVGInputError, match=match):
        parse_prompt_lines(text)


def test_caps_hold_for_stages_built_in_code_or_loaded():
    plan = parse_prompt_lines("a {rounds=200, strength=0.01}\nb {rounds=1, strength=1}")
    assert [(s.rounds, s.strength) for s in plan.stages] == [(200, 0.01), (1, 1.0)]
    with pytest.raises(MVGInputError, match=r"stage 'a' has rounds=1000000; use an integer in 1\.\.200"):
        Stage("a", rounds=1_000_000)
    with pytest.raises(MVGInputError, match="rounds=True"):
        Stage("a", rounds=True)
    data = plan.to_dict()
    data["stages"][0]["rounds"] = 10**6
    with pytest.raises(MVGInputError, match=r"rounds=1000000; use an integer in 1\.\.200"):
        PromptPlan.from_dict(data)
