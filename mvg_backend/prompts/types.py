"""``MVG_PROMPTS``: the ordered disease stages that drive progressive editing.

One value type flows between nodes: ReportToPrompts (or the hand-written ``MVG_PromptList``) builds a
:class:`PromptPlan`, ProgressiveEdit consumes it. It never holds report text, only a hash of it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import MVGInputError

DIRECTIONS = ("progression", "regression")
CERTAINTIES = ("positive", "negated", "uncertain")
# Per-stage overrides obey the same caps as MVG_ProgressiveEdit's widgets (rounds 1..200, strength 0.01..1).
MAX_STAGE_ROUNDS = 200
MIN_STAGE_STRENGTH = 0.01
MAX_PROMPT_CHARS = 2000  # a stage prompt or negative prompt (CLIP reads 77 tokens; ComfyUI chunks longer ones)


@dataclass(frozen=True)
class Finding:
    """One observation extracted from a report (filled by ReportToPrompts).

    ``evidence`` is the source sentence; ``extract_findings`` fills it, but a :class:`PromptPlan` keeps
    only ``sentence`` (its index in the report), so that no report text travels with ``MVG_PROMPTS``.
    """

    name: str
    certainty: str = "positive"  # positive / negated / uncertain
    laterality: str | None = None
    location: str | None = None
    severity: str | None = None
    evidence: str = ""
    sentence: int | None = None  # 0-based index of the source sentence in the report

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise MVGInputError("MVG_PROMPTS: a finding has an empty name; give every finding a name.")
        if self.certainty not in CERTAINTIES:
            raise MVGInputError(
                f"MVG_PROMPTS: finding {self.name!r} has certainty {self.certainty!r}; use one of {CERTAINTIES}."
            )

    def describe(self) -> str:
        """``"Effusion (positive; right; large; lower lobe)"``."""
        parts = [self.certainty] + [p for p in (self.laterality, self.severity, self.location) if p]
        return f"{self.name} ({'; '.join(parts)})"


def check_rounds(value: object) -> str | None:
    """None when ``value`` is a valid per-stage ``rounds`` (None, or an integer in 1..200), else the problem."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_STAGE_ROUNDS:
        return f"rounds={value!r}; use an integer in 1..{MAX_STAGE_ROUNDS} (the Progressive Edit node's cap)"
    return None


def check_strength(value: object) -> str | None:
    """None when ``value`` is a valid per-stage ``strength`` (None, or a number in 0.01..1), else the problem."""
    if value is None:
        return None
    try:
        ok = not isinstance(value, bool) and MIN_STAGE_STRENGTH <= float(value) <= 1.0
    except (TypeError, ValueError):
        ok = False
    if ok:
        return None
    return f"strength={value!r}; use a number in {MIN_STAGE_STRENGTH}..1 (the Progressive Edit node's cap)"


@dataclass(frozen=True)
class Stage:
    """One disease stage: its prompt, and optional overrides of the run's settings."""

    prompt: str
    negative_prompt: str = ""
    name: str = ""
    severity: float | None = None  # 0..1, informational
    rounds: int | None = None  # PIE rounds for this stage (default: share of the run's rounds)
    strength: float | None = None  # γ for this stage (default: the run's strength)
    roi_hint: str | None = None  # e.g. "right lower lung"

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise MVGInputError("MVG_PROMPTS: a stage has an empty prompt; give every stage a text prompt.")
        for what, text in (("prompt", self.prompt), ("negative prompt", self.negative_prompt)):
            if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS:
                size = f"{len(text)} characters" if isinstance(text, str) else type(text).__name__
                raise MVGInputError(f"MVG_PROMPTS: a stage {what} has {size}; use text of at most "
                                    f"{MAX_PROMPT_CHARS} characters (CLIP reads about 77 tokens).")
        problem = check_rounds(self.rounds) or check_strength(self.strength)
        if problem:
            raise MVGInputError(f"MVG_PROMPTS: stage {self.label!r} has {problem}.")
        if self.severity is not None and not 0.0 <= float(self.severity) <= 1.0:
            raise MVGInputError(
                f"MVG_PROMPTS: stage {self.label!r} has severity={self.severity!r}; use a value in [0, 1]."
            )

    @property
    def label(self) -> str:
        return (self.name or self.prompt)[:40]


@dataclass(frozen=True)
class PromptPlan:
    """The ``MVG_PROMPTS`` value: ordered stages plus where they came from.

    ``engine`` is ``"manual"``, ``"rules"`` or ``"llm:<model>"``. ``fallback_reason`` is set when the LLM
    engine failed and the rule engine wrote the plan instead; ``de_novo`` when the user allowed the LLM to
    stage a disease that the report does not mention, and it did.
    """

    stages: tuple[Stage, ...]
    domain: str = "other"
    direction: str = "progression"
    engine: str = "manual"
    findings: tuple[Finding, ...] = ()
    report_sha256: str | None = None
    notes: tuple[str, ...] = field(default=())
    fallback_reason: str | None = None
    de_novo: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "notes", tuple(self.notes))
        if not self.stages:
            raise MVGInputError(
                "MVG_PROMPTS has no stages: give at least one stage prompt (MVG_PromptList: one prompt per line)."
            )
        if self.direction not in DIRECTIONS:
            raise MVGInputError(f"MVG_PROMPTS: direction {self.direction!r} is not one of {DIRECTIONS}.")

    @classmethod
    def coerce(cls, value: PromptPlan | Stage | str | list | tuple | dict) -> PromptPlan:
        """Accept a plan, one prompt string, a list of prompts/stages, or a ``to_dict()`` mapping."""
        if isinstance(value, PromptPlan):
            return value
        if isinstance(value, Stage):
            return cls(stages=(value,))
        if isinstance(value, str):
            return cls(stages=(Stage(prompt=value),))
        if isinstance(value, dict):
            return cls.from_dict(value)
        if isinstance(value, (list, tuple)):
            return cls(stages=tuple(s if isinstance(s, Stage) else Stage(prompt=s) for s in value))
        raise MVGInputError(
            f"prompts: expected MVG_PROMPTS, a prompt string or a list of prompts, got {type(value).__name__}."
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptPlan:
        stages = tuple(Stage(**s) for s in data.get("stages", ()))
        findings = tuple(Finding(**f) for f in data.get("findings", ()))
        rest = {k: v for k, v in data.items() if k not in ("stages", "findings")}
        return cls(stages=stages, findings=findings, **rest)

    def with_stages(self, stages: tuple[Stage, ...]) -> PromptPlan:
        return replace(self, stages=tuple(stages))

    def describe(self) -> str:
        """A readable plan: where it came from, the findings, then one line per stage."""
        engine = self.engine + (f" (fallback: {self.fallback_reason})" if self.fallback_reason else "")
        lines = [f"MVG_PROMPTS: {self.domain}, {self.direction}, engine {engine}"
                 + (", DE-NOVO disease (not in the report)" if self.de_novo else "")]
        if self.report_sha256:
            lines.append(f"report sha256 {self.report_sha256[:16]}")
        lines.append("findings: " + ("; ".join(f.describe() for f in self.findings) if self.findings else "none"))
        lines.extend(f"note: {n}" for n in self.notes)
        for i, s in enumerate(self.stages, start=1):
            severity = "" if s.severity is None else f" [severity {s.severity:.2f}]"
            roi = f" (ROI: {s.roi_hint})" if s.roi_hint else ""
            negative = f" | {s.negative_prompt}" if s.negative_prompt else ""
            name = f" ({s.name})" if s.name else ""
            lines.append(f"stage {i}{name}{severity}: {s.prompt}{negative}{roi}")
        return "\n".join(lines)


_OPTIONS = re.compile(r"\{([^{}]*)\}\s*$")


def _parse_options(text: str, lineno: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep:
            raise MVGInputError(f"prompt line {lineno}: option {item!r} needs the form key=value, e.g. {{rounds=3}}.")
        try:
            if key == "rounds":
                options[key] = int(raw)
            elif key in ("strength", "severity"):
                options[key] = float(raw)
            elif key in ("name", "roi_hint"):
                options[key] = raw
            else:
                raise MVGInputError(
                    f"prompt line {lineno}: unknown option {key!r}; use rounds, strength, severity, name or roi_hint."
                )
        except ValueError as exc:
            if isinstance(exc, MVGInputError):
                raise
            raise MVGInputError(f"prompt line {lineno}: option {key}={raw[:40]!r} is not a number.") from None
        problem = {"rounds": check_rounds, "strength": check_strength}.get(key, lambda v: None)(options[key])
        if problem:
            raise MVGInputError(f"prompt line {lineno}: {problem}.")
    return options


def parse_prompt_lines(text: str, negative_prompt: str = "") -> PromptPlan:
    """Build a plan from multiline text, one stage per line.

    Line syntax: ``prompt [| negative prompt] [{rounds=3, strength=0.4, name=mild}]``. Blank lines and
    lines starting with ``#`` are skipped. ``negative_prompt`` applies to stages without their own.
    """
    stages = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        options: dict[str, Any] = {}
        match = _OPTIONS.search(line)
        if match:
            options = _parse_options(match.group(1), lineno)
            line = line[: match.start()].strip()
        prompt, _, negative = (s.strip() for s in line.partition("|"))
        if not prompt:
            raise MVGInputError(f"prompt line {lineno} has no prompt text before '|' or '{{'.")
        try:
            stages.append(Stage(prompt=prompt, negative_prompt=negative or negative_prompt, **options))
        except MVGInputError as exc:
            raise MVGInputError(f"prompt line {lineno}: {str(exc).removeprefix('MVG_PROMPTS: ')}") from None
    if not stages:
        raise MVGInputError(
            "prompt list is empty: write one stage prompt per line, e.g. 'a chest x-ray with a small pleural effusion'."
        )
    return PromptPlan(stages=tuple(stages))
