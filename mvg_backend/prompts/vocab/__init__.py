"""Per-domain vocabularies of the rule engine: what to look for in a report, and how to caption each stage."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import MVGInputError

LEVEL_NAMES = ("minimal", "mild", "moderate", "severe", "very severe")
CAPTION_STYLES = ("mvg", "report", "short", "custom")
# max_severity: the most severe rung a plan may reach. "severe" (the default) stops short of end-stage wording.
MAX_SEVERITY = ("mild", "moderate", "severe", "end-stage")
_CEILING = {"mild": 0.35, "moderate": 0.6, "severe": 1.0, "end-stage": 1.0}


def level(severity: float) -> int:
    """0..4: trace/minimal, small/mild, moderate, large/severe, massive (see ``text.SEVERITY_WORDS``)."""
    for i, upper in enumerate((0.2, 0.4, 0.65, 0.85)):
        if severity < upper:
            return i
    return 4


def check_max_severity(value: str) -> str:
    if value not in MAX_SEVERITY:
        raise MVGInputError(f"max_severity: {value!r} is not one of {', '.join(MAX_SEVERITY)}.")
    return value


@dataclass(frozen=True)
class Rung:
    """One state on a disease's natural-history ladder: its caption and severity (0..1).

    ``main`` rungs are the disease's named grades (ICDR mild/moderate/severe NPDR, PDR; small/moderate/large
    effusion); the others are intermediate wordings, used only when a plan asks for more stages than the
    named grades give. ``end`` marks end-stage wording, reached only with ``max_severity="end-stage"``.
    The caption may use ``{side}`` ("right "), ``{loc}`` ("lower lobe ") and ``{lobe}`` (the lobe, else
    "lower lobe "); they are filled by plain replacement, never ``str.format``.
    """

    caption: str
    severity: float
    main: bool = True
    end: bool = False

    def allowed(self, max_severity: str) -> bool:
        return (not self.end or max_severity == "end-stage") and self.severity <= _CEILING[max_severity] + 1e-9

    def render(self, laterality: str | None = None, location: str | None = None) -> str:
        side = f"{laterality} " if laterality in ("right", "left", "bilateral") else ""
        loc = f"{location} " if location else ""
        lobe = loc if "lobe" in loc else "lower lobe "
        text = self.caption.replace("{side}", side).replace("{loc}", loc).replace("{lobe}", lobe)
        return re.sub(r"\s+", " ", text).strip()


def M(severity: float, caption: str) -> Rung:  # noqa: N802 - a named grade of the ladder
    return Rung(caption, severity)


def I(severity: float, caption: str) -> Rung:  # noqa: N802,E743 - an intermediate wording
    return Rung(caption, severity, main=False)


def E(severity: float, caption: str) -> Rung:  # noqa: N802 - end-stage wording
    return Rung(caption, severity, end=True)


@dataclass(frozen=True)
class Concept:
    """One observation: how it is mentioned, and its natural-history ladder of captions.

    ``ladder`` lists :class:`Rung` s in increasing severity. ``grades`` map a phrase near the mention to a
    severity (e.g. "proliferative" -> 0.9) before generic severity words are read; a negative grade marks a
    normal measurement (a cup-to-disc ratio of 0.3), and such a mention counts as negated. ``branch`` is an
    alternative advanced course (``(pattern, name, rungs)``: AMD's neovascular course), chosen when the
    reported grade word matches ``pattern``; rungs above the branch's first severity are replaced by it.
    ``kind="feature"`` marks an attribute (skin ABCD) that is appended to the lesion's caption ("with
    irregular borders") instead of being staged on its own. ``roi`` is the region hint, with ``{side}`` and
    ``{zone}`` (the reported zone, else ``default_zone``).
    """

    name: str
    mention: str
    ladder: tuple[Rung, ...]
    roi: str
    exclude: str | None = None
    grades: tuple[tuple[str, float], ...] = ()
    default_severity: float = 0.3
    kind: str = "lesion"
    default_zone: str = ""
    branch: tuple[str, str, tuple[Rung, ...]] | None = None
    course: str = ""  # the advanced state named in the plan's notes, e.g. "geographic atrophy (dry AMD)"
    mention_re: re.Pattern = field(init=False, repr=False, compare=False)
    exclude_re: re.Pattern | None = field(init=False, repr=False, compare=False)
    grade_res: tuple[tuple[re.Pattern, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mention_re", re.compile(self.mention))
        object.__setattr__(self, "exclude_re", re.compile(self.exclude) if self.exclude else None)
        object.__setattr__(self, "grade_res", tuple((re.compile(p), s) for p, s in self.grades))
        severities = [r.severity for r in self.ladder]
        if severities != sorted(set(severities)):
            raise ValueError(f"{self.name}: ladder severities must strictly increase")

    def rungs(self, grade_word: str | None = None) -> tuple[tuple[Rung, ...], str]:
        """The ladder for this report (the branch when ``grade_word`` names it) and the course it follows."""
        if self.branch and grade_word and re.search(self.branch[0], grade_word):
            _, name, rungs = self.branch
            return tuple(r for r in self.ladder if r.severity < rungs[0].severity) + rungs, name
        return self.ladder, self.course

    def caption(self, severity: float, laterality: str | None = None, location: str | None = None) -> str:
        """The caption of the highest rung at or below ``severity`` (the lowest rung below all of them)."""
        rung = next((r for r in reversed(self.ladder) if r.severity <= severity + 1e-9), self.ladder[0])
        return rung.render(laterality, location)


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
