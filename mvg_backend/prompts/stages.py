"""Findings -> ordered stage prompts, with per-domain caption styles or a user template."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace

from ..errors import MVGInputError
from .types import DIRECTIONS, Finding, Stage
from .vocab import CAPTION_STYLES, LEVEL_NAMES, Concept, DomainVocab, Rung, level

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


@dataclass(frozen=True)
class Track:
    """One finding's course over the plan: its caption at each stage, and the severity of each."""

    staged: Staged
    captions: list[str]
    severities: list[float]
    hint: str


def _current(rungs: tuple[Rung, ...], severity: float) -> Rung:
    """The rung that describes the reported state: the highest at or below ``severity`` (else the lowest)."""
    return next((r for r in reversed(rungs) if r.severity <= severity + 1e-9), rungs[0])


def candidates(rungs: tuple[Rung, ...], severity: float, direction: str, max_severity: str) -> list[Rung | None]:
    """The states a finding can move to, in order: rungs beyond the reported ``severity`` up to the cap
    (progression), or below it down to resolution (``None``; regression)."""
    if direction == "progression":
        return [r for r in rungs if r.severity > severity + 1e-9 and r.allowed(max_severity)]
    return [r for r in reversed(rungs) if r.severity < severity - 1e-9] + [None]


def choose(cands: list, count: int) -> list:
    """``count`` distinct states from ``cands`` (ordered), ending at the last: the named grades first, spread
    evenly; intermediate wordings fill in (nearest the reported state first) only when the grades are too few.
    Fewer than ``count`` when ``cands`` has fewer."""
    if len(cands) <= count:
        return list(cands)
    main = [i for i, r in enumerate(cands) if r is None or r.main]
    if len(main) >= count:
        picked = [main[round((k + 1) * len(main) / count) - 1] for k in range(count)]
    else:
        extra = [i for i, r in enumerate(cands) if not (r is None or r.main)][: count - len(main)]
        picked = sorted(main + extra)
    return [cands[i] for i in picked]


def _spread(cands: list, count: int) -> list:
    """``count`` states for a secondary finding: distinct if it has enough, else each held for a while."""
    if len(cands) >= count:
        return choose(cands, count)
    return [cands[max(0, -(-(k + 1) * len(cands) // count) - 1)] for k in range(count)]


def _hint(s: Staged) -> str:
    zone = _zone(s) or (f"{s.concept.default_zone} " if s.concept.default_zone else "")
    hint = _tidy(s.concept.roi.replace("{side}", _side(s)).replace("{zone}", zone))
    return "both lungs" if hint == "lung" else hint


def _track(s: Staged, states: list, rungs: tuple[Rung, ...]) -> Track:
    lobe = _lobe(s)
    captions = ["" if r is None else r.render(s.finding.laterality, lobe) for r in states]
    return Track(s, captions, [0.0 if r is None else r.severity for r in states], _hint(s))


def _feature_states(features: list[Staged], count: int, direction: str, max_severity: str) -> list[dict[str, Rung]]:
    """An atypical pigmented lesion's ABCD features, one step per stage: the next feature in ``FEATURE_ORDER``
    that can still grow (diameter, borders, colours, asymmetry) takes one more rung (one fewer in regression)."""
    from .vocab.skin import FEATURE_ORDER

    order = sorted(features, key=lambda f: FEATURE_ORDER.index(f.concept.name)
                   if f.concept.name in FEATURE_ORDER else len(FEATURE_ORDER))
    pos = {f.concept.name: (f.concept.ladder.index(_current(f.concept.ladder, f.severity)) if f.severity > 0 else -1)
           for f in order}
    out, turn = [], 0
    for _ in range(count):
        for step in range(len(order)):
            f = order[(turn + step) % len(order)]
            i = pos[f.concept.name] + (1 if direction == "progression" else -1)
            ladder = f.concept.ladder
            if 0 <= i < len(ladder) and (direction == "regression" or ladder[i].allowed(max_severity)):
                pos[f.concept.name] = i
                turn = (turn + step + 1) % len(order)
                break
            if direction == "regression" and i < 0 and pos[f.concept.name] >= 0:
                pos[f.concept.name] = -1
                turn = (turn + step + 1) % len(order)
                break
        else:
            break
        out.append({f.concept.name: f.concept.ladder[pos[f.concept.name]] for f in order if pos[f.concept.name] >= 0})
    return out


def build_stages(staged: list[Staged], features: list[Staged], vocab: DomainVocab, stages: int, direction: str,
                 template: str, max_severity: str = "severe", atypical: Staged | None = None
                 ) -> tuple[list[Stage], list[str]]:
    """Up to ``stages`` distinct stages after the current image, and notes on how they were made.

    Each finding moves along its natural-history ladder (``vocab`` ``Rung`` s): stage 1 is beyond the reported
    state, severity strictly increases (decreases in regression, down to the normal image), and no two stages
    share a prompt. The primary finding (the most severe one that can still move within ``max_severity``)
    names the stage and sets its severity; the others follow in step. When the primary's ladder has fewer
    states than ``stages``, the plan has fewer stages and a note says so. ``atypical``: a pigmented lesion
    whose ABCD ``features`` progress one step per stage (skin).
    """
    notes: list[str] = []
    if atypical is not None:
        return _atypical_stages(atypical, features, vocab, stages, direction, template, max_severity)
    ladders = {id(s): s.concept.rungs(s.finding.severity) for s in staged}
    moving = {id(s): candidates(ladders[id(s)][0], s.severity, direction, max_severity) for s in staged}
    movable = [s for s in staged if moving[id(s)]]
    if not movable:  # every finding is already at max_severity
        s = max(staged, key=lambda x: x.severity)
        rung = _current(ladders[id(s)][0], s.severity)
        notes.append(f"{s.concept.name} is already at max_severity '{max_severity}' in the report: nothing to "
                     "progress, so the one stage shows the reported state. Raise max_severity to go further.")
        track = _track(s, [rung], ladders[id(s)][0])
        return [_stage(1, [track], 0, vocab, template, [], rung.severity)], notes
    primary = max(movable, key=lambda x: x.severity)
    chosen = choose(moving[id(primary)], stages)
    count = len(chosen)
    if count < stages:
        where = f"up to max_severity '{max_severity}'" if direction == "progression" else "down to resolution"
        notes.append(f"{primary.concept.name}: its ladder has {count} distinct state(s) beyond the reported one "
                     f"{where}, so the plan has {count} stage(s), not {stages}.")
    tracks = [_track(primary, chosen, ladders[id(primary)][0])]
    for s in [x for x in staged if x is not primary][: MAX_CAPTION_FINDINGS - 1]:
        cands = moving[id(s)]
        states = _spread(cands, count) if cands else [_current(ladders[id(s)][0], s.severity)] * count
        tracks.append(_track(s, states, ladders[id(s)][0]))
    for s in staged:
        course = ladders[id(s)][1]
        if course and direction == "progression":
            notes.append(f"{s.concept.name}: the advanced stage is {course}.")
    feats = [_spread(candidates(f.concept.ladder, f.severity, direction, max_severity)
                     or [_current(f.concept.ladder, f.severity)], count) for f in features]
    out = []
    for i in range(count):
        shown = [fs[i].render() for fs in feats if fs[i] is not None]
        out.append(_stage(i + 1, tracks, i, vocab, template, shown, chosen[i].severity if chosen[i] else 0.0))
    return _distinct(out, notes), notes


def _atypical_stages(lesion: Staged, features: list[Staged], vocab: DomainVocab, stages: int, direction: str,
                     template: str, max_severity: str) -> tuple[list[Stage], list[str]]:
    notes = []
    names = {f.concept.name for f in features}
    if direction == "progression" and "Large diameter" not in names:  # an evolving lesion grows: its diameter
        grow = vocab.concept("Large diameter")  # is the first feature to change (below its first rung: unseen)
        features = [Staged(replace(lesion.finding, name=grow.name), grow, 0.0), *features]
        notes.append("the lesion's diameter grows as its features progress (the report gives no size over 6 mm).")
    states = _feature_states(features, stages, direction, max_severity)
    if direction == "regression":  # down to the normal image (the empty state) at the last stage
        states = [st for st in states if st][: stages - 1] + [{}]
    if not states:
        states = [{f.concept.name: _current(f.concept.ladder, f.severity) for f in features}]
        notes.append(f"the ABCD features are already at max_severity '{max_severity}': the one stage shows the "
                     "reported state. Raise max_severity to go further.")
    elif len(states) < stages:
        where = f"up to max_severity {max_severity!r}" if direction == "progression" else "down to normal"
        notes.append(f"{lesion.concept.name}: its features can change {len(states)} time(s) {where}, so the plan "
                     f"has {len(states)} stage(s), not {stages}.")
    hint = _hint(lesion)
    out = []
    for i, state in enumerate(states):
        if not state:
            out.append(Stage(prompt=vocab.normal, negative_prompt=vocab.negative, name="resolved", severity=0.0,
                             roi_hint=hint))
            continue
        from .vocab.skin import FEATURE_ORDER

        names = [n for n in FEATURE_ORDER if n in state] + [n for n in state if n not in FEATURE_ORDER]
        severity = min(1.0, sum(r.severity for r in state.values()) / max(1, len(features)))
        findings = "an atypical pigmented lesion with " + _join([state[n].render() for n in names])
        prompt = render_template(template, findings=findings, modality=vocab.modality, stage=f"stage {i + 1}",
                                 severity=LEVEL_NAMES[level(severity)])
        out.append(Stage(prompt=_tidy(prompt), negative_prompt=vocab.negative, name=LEVEL_NAMES[level(severity)],
                         severity=round(severity, 3), roi_hint=hint))
    return _distinct(out, notes), notes


def _stage(number: int, tracks: list[Track], i: int, vocab: DomainVocab, template: str, shown: list[str],
           severity: float) -> Stage:
    parts = [t.captions[i] for t in tracks if t.captions[i]]
    hints = list(dict.fromkeys(t.hint for t in tracks if t.captions[i] or t is tracks[0]))
    word = LEVEL_NAMES[level(severity)] if severity >= 0.05 else "resolved"
    if parts:
        findings = _join(parts)
        findings += f", showing {_join(shown)}" if shown else ""
        prompt = render_template(template, findings=findings, modality=vocab.modality, stage=f"stage {number}",
                                 severity=word)
    else:
        prompt = vocab.normal
    return Stage(prompt=_tidy(prompt), negative_prompt=vocab.negative, name=word, severity=round(severity, 3),
                 roi_hint="; ".join(hints))


def _distinct(out: list[Stage], notes: list[str]) -> list[Stage]:
    """The stages, checked: a custom template without ``{findings}`` can still repeat a prompt; say so."""
    prompts = [s.prompt for s in out]
    if len(set(prompts)) < len(prompts):
        notes.append("the caption template gives some stages the same prompt: add {findings} to it.")
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
