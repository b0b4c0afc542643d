"""The LLM engine: any OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp).

The API key is read from the environment variable that ``LLMSettings.api_key_env`` *names*, at call time;
it is never stored in settings, plans, cache files, logs or error messages. The answer must match a JSON
schema (structured output) and is validated; one repair request is made when it does not. The ``openai``
client retries timeouts, connection errors, 408/409/429 and 5xx answers ``max_retries`` times with
exponential backoff; every failure that is left ends as an :class:`LLMError` whose ``kind`` names its class.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import MVGInputError, MVGRuntimeError
from .types import Finding, PromptPlan, Stage

log = logging.getLogger("mvg.prompts")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PROMPT_VERSION = 1  # bump when the system prompt or the schema changes (part of the cache key)


class LLMError(MVGRuntimeError):
    """The LLM engine failed. ``kind``: missing_key, timeout, connection, auth, not_found, bad_request,
    rate_limit, server, http, invalid_body, html_body, truncated, refused or invalid_output."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to ask. ``api_key_env`` is the NAME of an environment variable (empty: no key, e.g. a
    local server that needs none)."""

    model: str = "gpt-4o-mini"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.2
    seed: int | None = 0
    timeout: float = 120.0
    max_retries: int = 2
    max_tokens: int = 2048

    def check(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise MVGInputError("model: empty; name the model the server serves, e.g. gpt-4o-mini or llama3.1:8b.")
        url = urlparse(self.base_url or "")
        if url.scheme not in ("http", "https") or not url.netloc:
            raise MVGInputError("base_url: give the server's OpenAI-compatible API root, e.g. "
                                "https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (Ollama).")
        if self.api_key_env and not _ENV_NAME.match(self.api_key_env):
            # never echo the value: it may be a pasted key
            raise MVGInputError("api_key_env takes the NAME of an environment variable that holds the key (e.g. "
                                "OPENAI_API_KEY), not the key itself; set the key in that variable before starting.")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise MVGInputError(f"temperature: {self.temperature!r} is outside 0..2.")
        if self.timeout <= 0 or self.max_retries < 0 or self.max_tokens < 64:
            raise MVGInputError("LLM settings: timeout must be > 0 s, max_retries >= 0 and max_tokens >= 64.")

    def api_key(self) -> str:
        if not self.api_key_env:
            return "no-key"
        key = os.environ.get(self.api_key_env, "")
        if not key.strip():
            raise LLMError("missing_key", f"the environment variable {self.api_key_env} is not set or empty: set it "
                           "to your API key before starting ComfyUI (or leave api_key_env empty for a local server "
                           "that needs no key).")
        return key.strip()

    def cache_parts(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url.rstrip("/"), "temperature": float(self.temperature),
                "seed": self.seed, "max_tokens": self.max_tokens}


# --- the structured output (mirrors MVG_PROMPTS) -------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMFinding(_Strict):
    name: str
    certainty: Literal["positive", "negated", "uncertain"]
    laterality: str | None
    location: str | None
    severity: str | None


class LLMStage(_Strict):
    name: str
    severity: float
    prompt: str
    negative_prompt: str
    roi_hint: str | None


class LLMPlan(_Strict):
    findings: list[LLMFinding]
    stages: list[LLMStage]
    direction: Literal["progression", "regression"]
    de_novo: bool
    notes: list[str]


def response_format() -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": "mvg_prompts", "strict": True, "schema": LLMPlan.model_json_schema()}}


def system_prompt(domain: str, stages: int, direction: str, example: str, labels: tuple[str, ...],
                  allow_de_novo: bool) -> str:
    trend = ("increasing severity, from the state in the report toward advanced disease" if direction == "progression"
             else "decreasing severity, a response to treatment from the state in the report toward resolution")
    lines = [
        f"You plan a medical image-editing sequence for a {domain.replace('_', ' ')} image from its clinical report.",
        "1. List the report's findings: name, certainty (positive, negated or uncertain), laterality, location and "
        "severity word, as written. Mentions that are negated ('no effusion', 'resolved') or hedged ('cannot "
        "exclude pneumonia') are findings with that certainty.",
        f"2. Write a clinically plausible trajectory of exactly {stages} stage(s) after the current image, "
        f"direction '{direction}': {trend}. Stage severities are numbers in 0..1 that change monotonically.",
        "3. Each stage prompt is one short caption in the vocabulary of image-generation models fine-tuned on "
        f"this modality, like: '{example}'. Give a short negative prompt (image defects to avoid) and an ROI "
        "hint: where in the image the change happens (e.g. 'right lower lung').",
    ]
    if labels:
        lines.append(f"Name findings with these labels where one fits: {', '.join(labels)}.")
    if allow_de_novo:
        lines.append("Stage only the positive findings of the report. If it has none, you MAY stage a plausible "
                     "new disease: then set de_novo to true and say so in notes.")
    else:
        lines.append("Stage only positive findings of the report. NEVER invent a finding that the report does not "
                     "state. If there is no positive finding, write stages that keep the image normal, say so in "
                     "notes, and set de_novo to false.")
    lines.append("Write no patient identifiers. Answer with one JSON object that matches the schema, nothing else.")
    return "\n".join(lines)


def _validate(content: str, stages: int, direction: str, allow_de_novo: bool) -> LLMPlan:
    """Parse and check the answer; raise ``ValueError`` with a short reason the model can act on."""
    try:
        parsed = LLMPlan.model_validate_json(content)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"the JSON does not match the schema ({problems})") from None
    if len(parsed.stages) != stages:
        raise ValueError(f"expected exactly {stages} stages, got {len(parsed.stages)}")
    if parsed.direction != direction:
        raise ValueError(f"direction must be {direction!r}")
    values = [s.severity for s in parsed.stages]
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError("every stage severity must be in 0..1")
    ordered = sorted(values) if direction == "progression" else sorted(values, reverse=True)
    if values != ordered:
        raise ValueError(f"stage severities must {'rise' if direction == 'progression' else 'fall'} monotonically")
    if any(not s.prompt.strip() for s in parsed.stages):
        raise ValueError("every stage needs a non-empty prompt")
    if any(not f.name.strip() for f in parsed.findings):
        raise ValueError("every finding needs a name")
    if parsed.de_novo and not allow_de_novo:
        raise ValueError("de_novo is not allowed: stage only findings that the report states")
    return parsed


def _http_error(exc: Exception, settings: LLMSettings) -> LLMError:
    """Map an ``openai`` exception to a clear :class:`LLMError` (no key, no request body in the message)."""
    import openai

    where = f"{settings.base_url} (model {settings.model})"
    tries = f"after {settings.max_retries + 1} attempt(s)"
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("timeout", f"the LLM at {where} did not answer within {settings.timeout:g} s {tries}: raise "
                        "the timeout, use a smaller model, or check that the server is not overloaded.")
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("connection", f"cannot connect to {settings.base_url} {tries}: is the server running and is "
                        "base_url right (scheme, host, port, usually ending in /v1)?")
    if isinstance(exc, openai.APIStatusError):
        code, detail = exc.status_code, _detail(exc)
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return LLMError("auth", f"{where} refused the key ({code}{detail}): put a valid key in the environment "
                            f"variable {settings.api_key_env or '(none given)'}.")
        if isinstance(exc, openai.NotFoundError):
            return LLMError("not_found", f"{where} answered 404{detail}: check the model name and that base_url is "
                            "the API root (e.g. .../v1).")
        if isinstance(exc, openai.RateLimitError):
            return LLMError("rate_limit", f"{where} is rate-limiting (429{detail}) {tries}: wait, or raise your quota.")
        if code >= 500:
            return LLMError("server", f"{where} failed with HTTP {code}{detail} {tries}: retry later or check the "
                            "server's log.")
        if code in (400, 422):
            return LLMError("bad_request", f"{where} rejected the request ({code}{detail}): the model or server may "
                            "not support JSON-schema structured output, or max_tokens is too large.")
        return LLMError("http", f"{where} answered HTTP {code}{detail}.")
    return LLMError("invalid_body", f"{where}: unexpected answer ({type(exc).__name__}).")


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if not message and isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
    return f": {str(message)[:200]}" if message else ""


class LLMEngine:
    """Asks the endpoint for a plan and validates it (one repair request when the answer is invalid)."""

    def __init__(self, settings: LLMSettings):
        settings.check()
        self.settings = settings

    def _client(self):
        import openai

        return openai.OpenAI(base_url=self.settings.base_url, api_key=self.settings.api_key(),
                             timeout=self.settings.timeout, max_retries=self.settings.max_retries)

    def _ask(self, client, messages: list[dict[str, str]]) -> str:
        import openai

        s = self.settings
        try:
            response = client.chat.completions.create(
                model=s.model, messages=messages, temperature=s.temperature, seed=s.seed, max_tokens=s.max_tokens,
                response_format=response_format())
        except json.JSONDecodeError:
            raise LLMError("invalid_body", f"{s.base_url} answered with a body that is not JSON: is base_url an "
                           "OpenAI-compatible API root (e.g. .../v1)?") from None
        except openai.OpenAIError as exc:
            raise _http_error(exc, s) from None
        if isinstance(response, str):
            raise LLMError("html_body", f"{s.base_url} answered with a web page (text/html), not the API: base_url "
                           "probably points at a website or proxy; use the API root (e.g. .../v1).")
        if not getattr(response, "choices", None):
            raise LLMError("invalid_body", f"{s.base_url} answered without choices: not an OpenAI-compatible "
                           "chat-completions answer.")
        choice = response.choices[0]
        if choice.finish_reason == "length":
            raise LLMError("truncated", f"the answer of {s.model} was cut off at max_tokens={s.max_tokens}: raise "
                           "max_tokens or ask for fewer stages.")
        if getattr(choice.message, "refusal", None):
            raise LLMError("refused", f"{s.model} refused to answer: {str(choice.message.refusal)[:200]}")
        return choice.message.content or ""

    def plan(self, report: str, *, domain: str, stages: int, direction: str, example: str,
             labels: tuple[str, ...], allow_de_novo: bool, report_sha256: str) -> PromptPlan:
        client = self._client()
        messages = [{"role": "system", "content": system_prompt(domain, stages, direction, example, labels,
                                                                allow_de_novo)},
                    {"role": "user", "content": report}]
        log.info("MVG ReportToPrompts: asking %s (model %s)", self.settings.base_url, self.settings.model)
        content = self._ask(client, messages)
        try:
            parsed = _validate(content, stages, direction, allow_de_novo)
        except ValueError as first:
            log.info("MVG ReportToPrompts: invalid answer (%s); one repair request", first)
            messages += [{"role": "assistant", "content": content},
                         {"role": "user", "content": f"That answer is invalid: {first}. Answer again with only the "
                                                     "corrected JSON object."}]
            content = self._ask(client, messages)
            try:
                parsed = _validate(content, stages, direction, allow_de_novo)
            except ValueError as second:
                raise LLMError("invalid_output", f"{self.settings.model} gave an invalid plan twice (last: {second}); "
                               "try another model, a lower temperature, or the rules engine.") from None
        return PromptPlan(
            stages=tuple(Stage(prompt=s.prompt.strip(), negative_prompt=s.negative_prompt.strip(), name=s.name.strip(),
                               severity=round(s.severity, 3), roi_hint=(s.roi_hint or None)) for s in parsed.stages),
            domain=domain, direction=direction, engine=f"llm:{self.settings.model}",
            findings=tuple(Finding(name=f.name, certainty=f.certainty, laterality=f.laterality, location=f.location,
                                   severity=f.severity) for f in parsed.findings),
            report_sha256=report_sha256, notes=tuple(parsed.notes), de_novo=parsed.de_novo)
