"""The offline rule engine: findings from report text (per-domain vocabularies + assertion rules)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from ..errors import MVGInputError
from .text import Sentence, Terminators, assertion, laterality_near, sentences, severity_near
from .types import Finding
from .vocab import Concept, DomainVocab, get_vocab

_PRIORITY = {"positive": 2, "uncertain": 1, "negated": 0}


def check_text(text: object) -> str:
    """``text`` if it is a string; a clear error for bytes (decode them first) and other types."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise MVGInputError("report: got bytes, but the report must be text; decode it first, e.g. "
                            "data.decode('utf-8') (or open the file with encoding='utf-8').")
    if not isinstance(text, str):
        raise MVGInputError(f"report: expected text (str), got {type(text).__name__}.")
    return text


@dataclass(frozen=True)
class Mention:
    """One mention of a concept in one sentence, with its assertion and attributes."""

    concept: Concept
    sentence: Sentence
    certainty: str
    laterality: str | None
    location: str | None
    severity_word: str | None
    severity: float


def _window(norm: str, start: int, end: int, reach: int = 40) -> str:
    """``norm`` around ``[start, end)``, cut at word boundaries."""
    a, b = max(0, start - reach), min(len(norm), end + reach)
    while 0 < a < start and norm[a - 1].isalnum():
        a += 1
    while end < b < len(norm) and norm[b].isalnum():
        b -= 1
    return norm[a:b]


def _grade(concept: Concept, norm: str, start: int, end: int,
           bounds: tuple[int, int]) -> tuple[str | None, float | None]:
    window = _window(norm, start, end)
    for pattern, value in concept.grade_res:
        m = pattern.search(window)
        if m:
            return m.group(0), value
    return severity_near(norm, start, end, bounds=bounds)


def _inside(spans: list[tuple[int, int]], starts: list[int], start: int, end: int) -> bool:
    """Whether ``[start, end)`` begins or ends inside one of ``spans`` (ordered, non-overlapping)."""
    i = bisect_right(starts, start) - 1  # the last span that starts at or before ``start``
    if i >= 0 and spans[i][0] <= start < spans[i][1]:
        return True
    j = bisect_right(starts, end - 1) - 1  # the last span that starts before ``end``
    return j >= 0 and spans[j][0] < end <= spans[j][1]


def mentions(report: str, vocab: DomainVocab) -> list[Mention]:
    """Every mention of the domain's concepts, in report order. Linear in the report's length."""
    out = []
    for sent in sentences(report):
        norm = sent.norm
        terms = Terminators(norm)
        for concept in vocab.concepts:
            excluded = [m.span() for m in concept.exclude_re.finditer(norm)] if concept.exclude_re else []
            starts = [a for a, _ in excluded]
            for m in concept.mention_re.finditer(norm):
                start, end = m.span()
                if excluded and _inside(excluded, starts, start, end):
                    continue
                bounds = terms.clause(start, end)
                word, value = _grade(concept, norm, start, end, bounds)
                certainty = assertion(norm, start, end, bounds)
                if value is not None and value < 0:  # a normal measurement, e.g. "cup-to-disc ratio 0.3"
                    certainty, value = "negated", 0.0
                loc = vocab.location_re.search(_window(norm, start, end))
                out.append(Mention(
                    concept, sent, certainty, laterality_near(norm, start, end, bounds),
                    loc.group(0) if loc else None, word, concept.default_severity if value is None else value))
    return out


def aggregate(found: list[Mention]) -> list[tuple[Finding, float]]:
    """One finding per concept: positive beats uncertain beats negated; the strongest such mention wins.

    Returns ``(finding, severity 0..1)`` in order of first mention.
    """
    by_name: dict[str, list[Mention]] = {}
    for m in found:
        by_name.setdefault(m.concept.name, []).append(m)
    out = []
    for group in by_name.values():
        best_certainty = max((m.certainty for m in group), key=_PRIORITY.__getitem__)
        chosen = [m for m in group if m.certainty == best_certainty]
        top = max(chosen, key=lambda m: m.severity)
        sides = {m.laterality for m in chosen if m.laterality}
        side = "bilateral" if "bilateral" in sides or {"left", "right"} <= sides else next(iter(sides), None)
        location = top.location or next((m.location for m in chosen if m.location), None)
        out.append((Finding(name=top.concept.name, certainty=best_certainty, laterality=side, location=location,
                            severity=top.severity_word, evidence=top.sentence.text, sentence=top.sentence.index),
                    top.severity))
    return out


def extract_findings(text: str, domain: str) -> list[Finding]:
    """Findings of a report: one per observation mentioned, with certainty, laterality, severity and evidence.

    ``domain`` is ``chest_xray``, ``fundus`` or ``skin``. For chest X-rays ``name`` is one of the 14
    ChestX-ray14 labels (Atelectasis, Cardiomegaly, Effusion, ..., Pleural_Thickening, Hernia).
    """
    check_text(text)
    return [f for f, _ in aggregate(mentions(text, get_vocab(domain)))]
