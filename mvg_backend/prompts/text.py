"""Report text handling for the rule engine: sections, sentences, and NegEx/CheXpert-style assertion rules.

A mention of an observation is *negated*, *uncertain* or *positive* depending on trigger phrases in its
clause (the part of the sentence between scope terminators such as "but", "however", ";"):

- uncertainty that contains a negation word is checked first ("cannot exclude", "not ruled out");
- then negation before the mention ("no", "without", "negative for", "resolution of") or after it
  ("is not seen", "has resolved"); phrases that only look negative are ignored first ("no change in");
- then uncertainty before ("possible", "may represent", "concerning for") or after it ("is suspected").

High-likelihood wording ("probable", "likely", "most suggestive of") and named alternatives ("atelectasis or
scarring", "infiltrate versus atelectasis") keep a mention positive: the report asserts an abnormality and
names its readings. A hedge reaches ``UNCERTAINTY_WINDOW`` words; a negation reaches its whole clause.

Redaction tokens such as "XXXX" are replaced by a neutral word so that they cannot act as triggers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEVERITY_WORDS: dict[str, float] = {
    # 0..1 on a common scale: trace < small/mild < moderate < large/severe < massive
    "trace": 0.1, "tiny": 0.1, "minimal": 0.15, "minute": 0.1, "subtle": 0.15, "slight": 0.2, "slightly": 0.2,
    "small": 0.25, "mild": 0.25, "mildly": 0.25, "minor": 0.25, "borderline": 0.15, "early": 0.2,
    "moderate": 0.5, "moderately": 0.5, "intermediate": 0.5,
    "large": 0.75, "severe": 0.75, "severely": 0.75, "marked": 0.75, "markedly": 0.75, "extensive": 0.8,
    "significant": 0.7, "advanced": 0.8, "prominent": 0.6, "substantial": 0.7,
    "massive": 0.95, "huge": 0.95, "very large": 0.9, "gross": 0.85,
}
_SEVERITY_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, SEVERITY_WORDS), key=len, reverse=True)) + r")\b")

_REDACTED = re.compile(r"\bX{2,}\b")
_SECTION = re.compile(r"(?im)^\s*([A-Za-z][A-Za-z /]{2,40}):")
_SKIP_SECTIONS = re.compile(r"(?i)^(indication|indications|history|clinical (history|information|indication)|"
                            r"reason( for (exam|study))?|comparison|technique|procedure|examination|exam)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+|\s+(?=\d{1,2}[.)]\s)|(?<=[a-z])\.(?=[A-Z])")

# Scope terminators: a trigger does not reach across them. Alternatives ("atelectasis or scarring",
# "infiltrate versus atelectasis") are not hedges: the report asserts an abnormality and names each reading.
_TERMINATORS = re.compile(
    r";|:|\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\bexcept\b|\baside from\b|\bapart from\b|\bwhereas\b|"
    r"\bwhich\b|\bwho\b|\byet\b|\bnevertheless\b|\bstill\b|\bthere (?:is|are)\b|"
    r"\b(?:is|are) (?:again )?(?:seen|noted|present|identified|demonstrated)\b")

_PSEUDO_NEGATION = re.compile(
    r"\bno (?:significant |interval |appreciable |substantial |definite )?(?:change|increase|decrease|"
    r"progression|worsening|improvement)\b|\bnot (?:significantly )?(?:changed|increased|decreased|only|"
    r"improved|worsened)\b|\bwithout (?:significant |interval )?(?:change|increase)\b"
)
_NEGATED_UNCERTAINTY = re.compile(
    r"\b(?:cannot|can ?not|could not|can't|not|difficult to|unable to)\s+(?:be\s+)?(?:entirely\s+|completely\s+|"
    r"totally\s+|definitely\s+)?(?:exclude[ds]?|excluded|ruled? out|rule out|excluding)\b|"
    r"\bnot (?:entirely |completely )?excluded\b")
_PRE_NEGATION = re.compile(
    r"\b(?:no|not|without|nor|neither|negative for|free of|clear of|absence of|absent|resolution of|"
    r"resolved|interval clearing of|clearing of|removal of|rule[sd]? out|ruled out|excluded?|"
    r"no (?:evidence|signs?|suggestion|findings?|definite evidence|radiographic evidence) (?:of|for|to suggest))\b")
_POST_NEGATION = re.compile(
    r"^[^.]*?\b(?:(?:is|are|was|were|has been|have been)\s+)?(?:not|no longer)\s+(?:\w+ly\s+|well[- ])?(?:seen|"
    r"identified|present|visuali[sz]ed|demonstrated|evident|appreciated|noted|visible|detected|apparent|"
    r"shown|included)\b|^[^.]*?\b(?:has|have|had)?\s*(?:resolved|cleared|disappeared)\b|"
    r"^[^.]*?\b(?:is|are) (?:absent|gone|unlikely)\b")
_PRE_UNCERTAINTY = re.compile(  # hedges; "probable", "likely", "most suggestive of" keep a finding positive
    r"\b(?:may|might|could|can|would|possible|possibly|question of|questionable|question|suspicious (?:for|of)|"
    r"suspected|suspect|suspicion (?:of|for)|concern(?:ing)? for|worrisome for|differential(?: diagnosis)?"
    r"(?: includes?)?|consider(?:ed|ation)?|equivocal|indeterminate|uncertain|cannot be determined|"
    r"evaluat(?:e|ion) for|assess for|correlate (?:clinically )?for|to exclude|r/o|rule out|"
    r"(?<!most )suggest(?:s|ed|ing|ive)?(?: of)?)\b")
_CLAUSE_UNCERTAINTY = re.compile(  # hedges that open a list: "differential considerations include A, B or C"
    r"\bdifferential\b|\bconsiderations? (?:would |could )?includes?\b|\bdiagnostic possibilities\b|"
    r"\bin the (?:appropriate|right|proper) clinical (?:setting|context)\b")
_POST_UNCERTAINTY = re.compile(
    r"^[^.]*?\b(?:is|are|was|were) (?:also |still |thought )?(?:suspected|questioned|possible|not excluded|"
    r"questionable|suggested|considered|a (?:possibility|consideration|concern))\b|"
    r"^[^.]*?\bcannot be (?:excluded|ruled out)\b|^\s*\?")

UNCERTAINTY_WINDOW = 10  # words: a hedge reaches the next few words (NegEx's window), a negation the whole clause

LATERALITY = re.compile(r"\b(right|left|bilateral(?:ly)?|both|bibasilar|bibasal|bi-?apical|right-sided|left-sided|"
                        r"OD|OS|OU)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str  # original text, as written (redaction tokens included)
    norm: str  # lower case, redaction tokens neutralised, whitespace collapsed


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", _REDACTED.sub("redacted", text)).strip().lower()


def strip_sections(report: str) -> str:
    """Drop indication / history / comparison / technique sections (their mentions are not findings)."""
    matches = list(_SECTION.finditer(report))
    if not matches:
        return report
    kept = [report[: matches[0].start()]]
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(report)
        if not _SKIP_SECTIONS.match(m.group(1).strip()):
            kept.append(report[m.end():end])
    return "\n".join(kept)


def sentences(report: str) -> list[Sentence]:
    """The report's finding-bearing sentences, indexed in order."""
    out = []
    for part in _SENTENCE_END.split(strip_sections(report)):
        norm = normalise(part or "")
        if re.search(r"[a-z]", norm):
            out.append(Sentence(len(out), part.strip(), norm))
    return out


def clause_bounds(norm: str, start: int, end: int) -> tuple[int, int]:
    """The span of the clause (between scope terminators) that holds ``norm[start:end]``."""
    left, right = 0, len(norm)
    for m in _TERMINATORS.finditer(norm):
        if m.end() <= start:
            left = m.end()
        elif m.start() >= end:
            right = m.start()
            break
    return left, right


def _last_words(text: str, n: int) -> str:
    return " ".join(text.split()[-n:])


def assertion(norm: str, start: int, end: int) -> str:
    """``positive`` / ``negated`` / ``uncertain`` for the mention at ``norm[start:end]``."""
    left, right = clause_bounds(norm, start, end)
    before = _PSEUDO_NEGATION.sub(" ", norm[left:end])
    after = norm[end:right]
    if _NEGATED_UNCERTAINTY.search(norm[left:right]):
        return "uncertain"
    if _PRE_NEGATION.search(before) or _POST_NEGATION.search(_PSEUDO_NEGATION.sub(" ", after)):
        return "negated"
    hedge_before = _last_words(norm[left:start], UNCERTAINTY_WINDOW)
    if _PRE_UNCERTAINTY.search(hedge_before) or _CLAUSE_UNCERTAINTY.search(norm[left:start]) \
            or _POST_UNCERTAINTY.search(after):
        return "uncertain"
    return "positive"


def severity_near(norm: str, start: int, end: int, window: int = 40) -> tuple[str | None, float | None]:
    """The strongest severity word just before the mention or right after it (same clause)."""
    left, right = clause_bounds(norm, start, end)
    a = max(left, start - window)
    while left < a < start and norm[a - 1].isalnum():
        a += 1
    span = norm[a: min(right, end + 25)]
    words = [m.group(1) for m in _SEVERITY_RE.finditer(span)]
    if not words:
        return None, None
    word = max(words, key=SEVERITY_WORDS.__getitem__)
    return word, SEVERITY_WORDS[word]


def laterality_near(text: str, start: int, end: int) -> str | None:
    """``right`` / ``left`` / ``bilateral`` from the clause of the mention (nearest words win)."""
    left, right = clause_bounds(text.lower(), start, end)
    sides = set()
    for m in LATERALITY.finditer(text[left:right]):
        word = m.group(1).lower()
        if word in ("od",):
            sides.add("right")
        elif word in ("os",):
            sides.add("left")
        elif word.startswith(("right", "left")):
            sides.add(word.split("-")[0])
        else:
            sides.add("bilateral")
    if "bilateral" in sides or {"right", "left"} <= sides:
        return "bilateral"
    return next(iter(sides), None)
