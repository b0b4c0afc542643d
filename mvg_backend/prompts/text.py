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

Text is cleaned first (``clean_text``): HTML entities are decoded ("No&nbsp;pneumothorax"), Unicode is
NFKC-normalised (full-width letters, ligatures), zero-width characters are dropped and every other whitespace
character (NBSP, tabs, U+2028...) becomes a space or a line break. Work is linear in the report's length: a
trigger reaches at most ``SCOPE_CHARS`` characters of its clause on either side of a mention.
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_left, bisect_right
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
SCOPE_CHARS = 300  # a clause is read at most this far on either side of a mention (keeps the work linear)

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_LINE_BREAK = re.compile("\r\n?|[\u2028\u2029\x0b\x0c\x85\x1c-\x1e]")
_SPACE_RUN = re.compile(r"\s+")

LATERALITY = re.compile(r"\b(right|left|bilateral(?:ly)?|both|bibasilar|bibasal|bi-?apical|right-sided|left-sided|"
                        r"OD|OS|OU)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str  # original text, as written (redaction tokens included)
    norm: str  # lower case, redaction tokens neutralised, whitespace collapsed


def clean_text(text: str) -> str:
    """Report text as the rules read it: HTML entities decoded, NFKC, no zero-width characters, every run of
    whitespace one space (or one line break when it holds one). Linear in the length of ``text``."""
    text = unicodedata.normalize("NFKC", html.unescape(text))
    text = _LINE_BREAK.sub("\n", _INVISIBLE.sub("", text))
    return _SPACE_RUN.sub(lambda m: "\n" if "\n" in m.group(0) else " ", text)


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
    """The report's finding-bearing sentences, indexed in order (after :func:`clean_text`)."""
    out = []
    for part in _SENTENCE_END.split(strip_sections(clean_text(report))):
        norm = normalise(part or "")
        if re.search(r"[a-z]", norm):
            out.append(Sentence(len(out), part.strip(), norm))
    return out


class Terminators:
    """The scope terminators of one sentence, found once, for clause look-ups in O(log n)."""

    def __init__(self, norm: str):
        spans = [m.span() for m in _TERMINATORS.finditer(norm)]
        self.length = len(norm)
        self.starts = [a for a, _ in spans]
        self.ends = [b for _, b in spans]
        self.norm = norm

    def clause(self, start: int, end: int) -> tuple[int, int]:
        """The clause that holds ``[start, end)``, cut to ``SCOPE_CHARS`` on either side at word boundaries."""
        i = bisect_right(self.ends, start)  # terminators that end at or before the mention: [0, i)
        left = self.ends[i - 1] if i else 0
        j = bisect_left(self.starts, end)  # the first terminator that starts at or after its end
        right = self.starts[j] if j < len(self.starts) else self.length
        norm = self.norm
        if start - left > SCOPE_CHARS:
            left = start - SCOPE_CHARS
            while left < start and norm[left - 1].isalnum():
                left += 1
        if right - end > SCOPE_CHARS:
            right = end + SCOPE_CHARS
            while right > end and norm[right].isalnum():
                right -= 1
        return left, right


def clause_bounds(norm: str, start: int, end: int, terms: Terminators | None = None) -> tuple[int, int]:
    """The span of the clause (between scope terminators) that holds ``norm[start:end]``, at most
    ``SCOPE_CHARS`` on either side. Pass ``terms`` (built once per sentence) to make this O(log n)."""
    return (terms or Terminators(norm)).clause(start, end)


def _last_words(text: str, n: int) -> str:
    return " ".join(text.split()[-n:])


def assertion(norm: str, start: int, end: int, bounds: tuple[int, int] | None = None) -> str:
    """``positive`` / ``negated`` / ``uncertain`` for the mention at ``norm[start:end]`` (``bounds``: its
    clause, from :func:`clause_bounds`)."""
    left, right = bounds or clause_bounds(norm, start, end)
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


def severity_near(norm: str, start: int, end: int, window: int = 40,
                  bounds: tuple[int, int] | None = None) -> tuple[str | None, float | None]:
    """The strongest severity word just before the mention or right after it (same clause)."""
    left, right = bounds or clause_bounds(norm, start, end)
    a = max(left, start - window)
    while left < a < start and norm[a - 1].isalnum():
        a += 1
    span = norm[a: min(right, end + 25)]
    words = [m.group(1) for m in _SEVERITY_RE.finditer(span)]
    if not words:
        return None, None
    word = max(words, key=SEVERITY_WORDS.__getitem__)
    return word, SEVERITY_WORDS[word]


def laterality_near(text: str, start: int, end: int, bounds: tuple[int, int] | None = None) -> str | None:
    """``right`` / ``left`` / ``bilateral`` from the clause of the mention (nearest words win)."""
    left, right = bounds or clause_bounds(text.lower(), start, end)
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


# --- report text in other text (an LLM's answer, an error message) ----------------------------------------
_QUOTE_SPLIT = re.compile(r"[^0-9a-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def clean_field(text: str) -> str:
    """A free-text field of an LLM answer made safe to show: :func:`clean_text`, no control characters,
    one line."""
    return " ".join(_CONTROL.sub(" ", clean_text(text)).split())


class ReportQuotes:
    """Finds verbatim spans of a report in other text, after normalisation (HTML entities, NFKC, case,
    punctuation and whitespace do not matter).

    A text quotes the report when it shares ``words`` consecutive words with it, or (``chars=True``) a
    ``chars``-character run, or any identifier-like token of the report (4 or more digits: record numbers,
    dates, phone numbers). Building is linear in the report's length; a look-up in the text's.
    """

    def __init__(self, report: str, words: int = 8, chars: int = 40):
        norm = self._norm(report)
        tokens = norm.split()
        self.words, self.chars = words, chars
        self._word_grams = {" ".join(tokens[i:i + words]) for i in range(len(tokens) - words + 1)}
        self._char_grams = {norm[i:i + chars] for i in range(len(norm) - chars + 1)}
        self._ids = {t for t in tokens if sum(c.isdigit() for c in t) >= 4}

    @staticmethod
    def _norm(text: str) -> str:
        return " ".join(_QUOTE_SPLIT.split(clean_text(text).lower())).strip()

    def quotes(self, text: str | None, chars: bool = True) -> bool:
        if not text:
            return False
        norm = self._norm(text)
        tokens = norm.split()
        if any(t in self._ids for t in tokens):
            return True
        if any(" ".join(tokens[i:i + self.words]) in self._word_grams for i in range(len(tokens) - self.words + 1)):
            return True
        return chars and any(norm[i:i + self.chars] in self._char_grams for i in range(len(norm) - self.chars + 1))
