"""Findings -> ordered stage prompts, with per-domain caption styles or a user template."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from ..errors import MVGInputError
from .types import DIRECTIONS, Finding, Stage
from .vocab import CAPTION_STYLES, LEVEL_NAMES, Concept, DomainVocab, level

TEMPLATE_FIELDS = ("findings", "modality", "stage", "severity")
_FIELD_LIST = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
MAX_TEMPLATE_CHARS = 500
MAX_CAPTION_CHARS = 1000  # a rendered caption (the engine's own bound, below MVG_PROMPTS' 2000)
MAX_STAGES = 16
MAX_CAPTION_FINDINGS = 3
_ZONE = re.compile(r"\b(upper|middle|lower) (lobe|lung|zone)")


@dataclass(frozen=True)
class Staged:
    """A positive finding with its reported severity (0..1): the starting point of its trajectory."""

    finding: Finding
    concept: Concept
    severity: float


def check_stage_args(stages: int, direction: str) -> None:
    if not isinstance(stages, int) or isinstance(stages, bool) or not 1 <= stages <= MAX_STAGES:
        raise MVGInputError(f"stages: {stages!r} is not an integer in 1..{MAX_STAGES}.")
    if direction not in DIRECTIONS:
        raise MVGInputError(f"direction: {direction!r} is not one of {', '.join(DIRECTIONS)}.")


def resolve_template(vocab: DomainVocab, caption_style: str, template: str = "") -> str:
    """The caption template to use: a style preset, or the user's template with ``caption_style="custom"``."""
    if caption_style not in CAPTION_STYLES:
        raise MVGInputError(f"caption_style: {caption_style!r} is not one of {', '.join(CAPTION_STYLES)}.")
    template = (template or "").strip()
    if caption_style != "custom":
        if template:
            raise MVGInputError(f"template is set but caption_style is {caption_style!r}: set caption_style to "
                                "'custom' to use the template, or clear the template.")
        return vocab.styles[caption_style]
    if not template:
        raise MVGInputError("caption_style 'custom' needs a template, e.g. 'a {modality} with {findings}'. "
                            f"Fields: {_FIELD_LIST}.")
    fields = {name for _, name in parse_template(template) if name}
    if not fields & {"findings", "severity", "stage"}:
        raise MVGInputError("template: without {findings}, {severity} or {stage} every stage gets the same prompt; "
                            "add {findings}.")
    return template


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """``[(literal text, field name or None), ...]`` of a caption template, checked.

    Only the plain fields ``{findings}``, ``{modality}``, ``{stage}`` and ``{severity}`` are allowed: no
    attribute or index (``{findings.__class__}``), no conversion (``!r``) and no format spec (``:>20``), so a
    template can neither reach into Python objects nor blow up the prompt's size. At most
    ``MAX_TEMPLATE_CHARS`` characters.
    """
    if not isinstance(template, str):
        raise MVGInputError(f"template: expected text, got {type(template).__name__}.")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise MVGInputError(f"template: {len(template)} characters is more than {MAX_TEMPLATE_CHARS}; write one "
                            "short caption, e.g. 'a {modality} with {findings}'.")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise MVGInputError(f"template {template!r} is not a valid format string ({exc}); write literal braces "
                            "as {{ and }}.") from None
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (spec or conversion):
            raise MVGInputError(f"template: {{{name}{'!' + conversion if conversion else ''}"
                                f"{':' + spec if spec else ''}}} has a format spec or conversion; write plain "
                                f"fields only ({_FIELD_LIST}), and literal braces as {{{{ and }}}}.")
        if name is not None and name not in TEMPLATE_FIELDS:
            raise MVGInputError(f"template: unknown field {{{name}}}; use {_FIELD_LIST} (no attributes, indexes or "
                                "positional fields).")
        out.append((literal, name))
    return out


def render_template(template: str, **values: str) -> str:
    """``template`` with its fields replaced by ``values`` (plain text substitution, no ``str.format``); the
    result is at most ``MAX_CAPTION_CHARS`` characters."""
    text = "".join(literal + (str(values[name]) if name else "") for literal, name in parse_template(template))
    if len(text) > MAX_CAPTION_CHARS:
        raise MVGInputError(f"template: the prompt it renders has {len(text)} characters, more than "
                            f"{MAX_CAPTION_CHARS}; shorten the template (use each field once).")
    return text


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def trajectory(start: float, t: float, direction: str) -> float:
    """Severity at fraction ``t`` (0..1] of the way: up to 1 (progression) or down to 0 (regression)."""
    return start + (1.0 - start) * t if direction == "progression" else start * (1.0 - t)


def build_stages(staged: list[Staged], features: list[Staged], vocab: DomainVocab, stages: int, direction: str,
                 template: str) -> list[Stage]:
    """``stages`` stages after the current image: every positive finding moves along its trajectory together.

    The first finding listed is the primary one (most severe in the report); it names the stage and gives its
    severity and ROI hint. A finding whose severity reaches 0 drops out of the caption; when none is left
    the caption is the domain's normal one.
    """
    primary = max(staged, key=lambda s: s.severity)
    ordered = [primary] + [s for s in staged if s is not primary]
    out = []
    for i in range(1, stages + 1):
        t = i / stages
        parts = []
        for s in ordered[:MAX_CAPTION_FINDINGS]:
            value = trajectory(s.severity, t, direction)
            if value >= 0.05:
                parts.append(s.concept.caption(value, s.finding.laterality, _lobe(s)))
        severity = trajectory(primary.severity, t, direction)
        word = LEVEL_NAMES[level(severity)] if severity >= 0.05 else "resolved"
        if parts:
            findings = _join(parts)
            shown = [f.concept.phrases[-1] for f in features if f.concept.phrases[-1] not in findings]
            findings += f", showing {_join(shown)}" if shown else ""
            prompt = render_template(template, findings=findings, modality=vocab.modality, stage=f"stage {i}",
                                     severity=word)
        else:
            prompt = vocab.normal
        roi = primary.concept.roi.format(side=_side(primary), loc=_zone(primary))
        out.append(Stage(prompt=_tidy(prompt), negative_prompt=vocab.negative, name=word,
                         severity=round(severity, 3), roi_hint=_tidy(roi)))
    return out


def _side(s: Staged) -> str:
    return f"{s.finding.laterality} " if s.finding.laterality in ("right", "left", "bilateral") else ""


def _lobe(s: Staged) -> str | None:
    """``"lower lobe"`` for captions, when the finding's location names a lobe or zone."""
    m = _ZONE.search(s.finding.location or "")
    return m.group(0) if m else None


def _zone(s: Staged) -> str:
    """``"lower "`` for ROI hints such as "right lower lung"."""
    m = _ZONE.search(s.finding.location or "")
    return f"{m.group(1)} " if m else ""


def _tidy(text: str) -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] if text.endswith(".") else text
