"""Per-domain vocabularies of the rule engine: what to look for in a report, and how to caption each stage."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import MVGInputError

LEVEL_NAMES = ("minimal", "mild", "moderate", "severe", "very severe")
CAPTION_STYLES = ("mvg", "report", "short", "custom")


def level(severity: float) -> int:
    """0..4: trace/minimal, small/mild, moderate, large/severe, massive (see ``text.SEVERITY_WORDS``)."""
    for i, upper in enumerate((0.2, 0.4, 0.65, 0.85)):
        if severity < upper:
            return i
    return 4


@dataclass(frozen=True)
class Concept:
    """One observation: how it is mentioned, and its caption at each of the 5 severity levels.

    ``phrases`` may use ``{side}`` (``"right "`` or empty) and ``{loc}`` (``"lower lobe "`` or empty).
    ``grades`` map a phrase near the mention to a severity (e.g. "proliferative" -> 0.95) before generic
    severity words are read; a negative grade marks a normal measurement (a cup-to-disc ratio of 0.3), and
    such a mention counts as negated. ``kind="feature"`` marks an attribute (skin ABCD) that is appended to the
    lesion's caption ("with irregular borders") instead of being staged on its own.
    """

    name: str
    mention: str
    phrases: tuple[str, str, str, str, str]
    roi: str
    exclude: str | None = None
    grades: tuple[tuple[str, float], ...] = ()
    default_severity: float = 0.3
    kind: str = "lesion"
    mention_re: re.Pattern = field(init=False, repr=False, compare=False)
    exclude_re: re.Pattern | None = field(init=False, repr=False, compare=False)
    grade_res: tuple[tuple[re.Pattern, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mention_re", re.compile(self.mention))
        object.__setattr__(self, "exclude_re", re.compile(self.exclude) if self.exclude else None)
        object.__setattr__(self, "grade_res", tuple((re.compile(p), s) for p, s in self.grades))

    def caption(self, severity: float, laterality: str | None = None, location: str | None = None) -> str:
        side = f"{laterality} " if laterality in ("right", "left", "bilateral") else ""
        loc = f"{location} " if location else ""
        text = self.phrases[level(severity)].format(side=side, loc=loc)
        return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class DomainVocab:
    """A domain's concepts, caption templates and defaults."""

    domain: str
    modality: str
    concepts: tuple[Concept, ...]
    normal: str
    negative: str
    example_finding: str
    locations: str = r"(?!x)x"
    styles: dict[str, str] = field(default_factory=lambda: {
        "mvg": "a {modality} with {findings}", "report": "{findings}.", "short": "{findings}"})
    location_re: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "location_re", re.compile(self.locations))

    def concept(self, name: str) -> Concept | None:
        return next((c for c in self.concepts if c.name == name), None)


def get_vocab(domain: str) -> DomainVocab:
    """The rule vocabulary of ``domain`` (``chest_xray``, ``fundus`` or ``skin``)."""
    from . import cxr, fundus, skin

    vocabs = {v.domain: v for v in (cxr.VOCAB, fundus.VOCAB, skin.VOCAB)}
    if domain not in vocabs:
        raise MVGInputError(
            f"domain {domain!r}: the rule engine knows {', '.join(vocabs)}; for another domain use the "
            "openai-compatible engine, or write the stages by hand with MVG Prompt List.")
    return vocabs[domain]
