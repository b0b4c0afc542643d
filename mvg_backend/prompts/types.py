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


@dataclass(frozen=True)
class Finding:
    """One observation extracted from a report (filled by ReportToPrompts)."""

    name: str
    certainty: str = "positive"  # positive / negated / uncertain
    laterality: str | None = None
    location: str | None = None
    severity: str | None = None
    evidence: str = ""


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
        if self.rounds is not None and (not isinstance(self.rounds, int) or self.rounds < 1):
            raise MVGInputError(f"MVG_PROMPTS: stage {self.label!r} has rounds={self.rounds!r}; use an integer >= 1.")
        if self.strength is not None and not 0.0 < float(self.strength) <= 1.0:
            raise MVGInputError(
                f"MVG_PROMPTS: stage {self.label!r} has strength={self.strength!r}; use a value in (0, 1]."
            )

    @property
    def label(self) -> str:
        return self.name or self.prompt[:40]


@dataclass(frozen=True)
class PromptPlan:
    """The ``MVG_PROMPTS`` value: ordered stages plus where they came from."""

    stages: tuple[Stage, ...]
    domain: str = "other"
    direction: str = "progression"
    engine: str = "manual"
    findings: tuple[Finding, ...] = ()
    report_sha256: str | None = None
    notes: tuple[str, ...] = field(default=())

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
            raise MVGInputError(f"prompt line {lineno}: option {key}={raw!r} is not a number.") from None
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
        stages.append(Stage(prompt=prompt, negative_prompt=negative or negative_prompt, **options))
    if not stages:
        raise MVGInputError(
            "prompt list is empty: write one stage prompt per line, e.g. 'a chest x-ray with a small pleural effusion'."
        )
    return PromptPlan(stages=tuple(stages))
