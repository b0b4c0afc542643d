"""The LLM engine: any OpenAI-compatible chat-completions endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp).

The API key is read from the environment variable that ``LLMSettings.api_key_env`` *names*, at call time;
it is never stored in settings, plans, cache files, logs or error messages (``secrets.scrub`` removes it, and
any ``user:password@`` of ``base_url``, from every message, even when the server quotes it). The answer must
match a JSON schema (structured output) and is validated: one repair request is made when it is not valid.
Its free-text fields are cleaned and bounded, and a field that quotes the report is dropped (or, for a stage
prompt, repaired), so that no report text reaches the plan or the cache.

Waiting is bounded: each attempt lasts at most ``timeout`` seconds (wall clock), transient failures
(timeouts, connection errors, 408/409/429, 5xx) are retried ``max_retries`` times with a backoff of at most
``max_retry_wait`` seconds (a server's ``Retry-After`` included), and the request runs in a worker thread
while the caller's ``check_cancel`` is polled every ``POLL_S`` seconds. Every failure that is left ends as an
:class:`LLMError` whose ``kind`` names its class; Cancel ends as the caller's own exception (or
:class:`LLMCancelled`), which never falls back.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import MVGInputError, MVGRuntimeError
from .secrets import looks_like_secret, plausible_env_name, scrub, split_userinfo
from .text import ReportQuotes, clean_field
from .types import Finding, PromptPlan, Stage

log = logging.getLogger("mvg.prompts")

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PROMPT_VERSION = 2  # bump when the system prompt, the schema or the checks change (part of the cache key)
MAX_TIMEOUT_S = 600.0
MAX_RETRIES = 5
MAX_RETRY_WAIT_S = 60.0
POLL_S = 0.1  # how often check_cancel is called while waiting
# Bounds of the answer's free-text fields (characters) and lists.
FIELD_CHARS = {"name": 80, "laterality": 40, "location": 100, "severity": 60, "stage name": 60, "prompt": 1000,
               "negative prompt": 500, "roi hint": 100, "note": 300}
MAX_FINDINGS = 32
MAX_NOTES = 8
CheckCancel = Callable[[], Any]


class LLMError(MVGRuntimeError):
    """The LLM engine failed. ``kind``: missing_key, timeout, connection, truncated_body, auth, not_found,
    bad_request, rate_limit, server, http, invalid_body, html_body, truncated, refused or invalid_output.
    ``retryable`` marks transient failures; ``retry_after`` is the server's Retry-After (seconds), if any."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


class LLMCancelled(MVGRuntimeError):
    """Cancel was requested while the engine waited for the LLM (``check_cancel`` returned True)."""


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to ask. ``api_key_env`` is the NAME of an environment variable (empty: no key, e.g. a
    local server that needs none). ``timeout``: seconds one attempt may take (wall clock, 0 < t <= 600);
    ``max_retries``: further attempts after a transient failure (0..5); ``max_retry_wait``: the longest wait
    between attempts, a server's Retry-After included (seconds, 0..60)."""

    model: str = "gpt-4o-mini"
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.2
    seed: int | None = 0
    timeout: float = 120.0
    max_retries: int = 2
    max_tokens: int = 2048
    max_retry_wait: float = 10.0

    def check(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise MVGInputError("model: empty; name the model the server serves, e.g. gpt-4o-mini or llama3.1:8b.")
        if looks_like_secret(self.model):
            raise MVGInputError("model: this looks like an API key, not a model name (the value is not shown); name "
                                "the model, e.g. gpt-4o-mini, and put the key in the variable that api_key_env names.")
        url = urlparse(self.url if isinstance(self.base_url, str) else "")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise MVGInputError("base_url: give the server's OpenAI-compatible API root, e.g. "
                                "https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (Ollama).")
        env = self.api_key_env
        if not isinstance(env, str) or (env and (not _ENV_NAME.match(env) or looks_like_secret(env))):
            # never echo the value: it may be a pasted key
            raise MVGInputError("api_key_env takes the NAME of an environment variable that holds the key (e.g. "
                                "OPENAI_API_KEY), not the key itself; this value looks like a key (it is not shown). "
                                "Set the key in that variable before starting, and revoke the key if it was shared.")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise MVGInputError(f"temperature: {self.temperature!r} is outside 0..2.")
        if not (isinstance(self.timeout, (int, float)) and math.isfinite(self.timeout)
                and 0 < self.timeout <= MAX_TIMEOUT_S):
            raise MVGInputError(f"timeout: {self.timeout!r} s; use a number of seconds in (0, {MAX_TIMEOUT_S:g}].")
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) \
                or not 0 <= self.max_retries <= MAX_RETRIES:
            raise MVGInputError(f"max_retries: {self.max_retries!r}; use an integer in 0..{MAX_RETRIES}.")
        if not (isinstance(self.max_retry_wait, (int, float)) and 0 <= self.max_retry_wait <= MAX_RETRY_WAIT_S):
            raise MVGInputError(f"max_retry_wait: {self.max_retry_wait!r} s; use a number in 0..{MAX_RETRY_WAIT_S:g}.")
        if self.max_tokens < 64:
            raise MVGInputError("max_tokens: use at least 64.")

    @property
    def url(self) -> str:
        """``base_url`` without ``user:password@``: what messages, logs and the cache key show."""
        return split_userinfo(self.base_url)[0] if isinstance(self.base_url, str) else ""

    @property
    def key_name(self) -> str:
        """How messages name the key's variable: its name when that is a plausible variable name."""
        return self.api_key_env if plausible_env_name(self.api_key_env) else "named in api_key_env"

    def api_key(self) -> str:
        if not self.api_key_env:
            return "no-key"
        key = os.environ.get(self.api_key_env, "")
        if not key.strip():
            raise LLMError("missing_key", f"the environment variable {self.key_name} is not set or empty: set it "
                           "to your API key before starting ComfyUI (or leave api_key_env empty for a local server "
                           "that needs no key).")
        return key.strip()

    def secrets(self) -> tuple[str, ...]:
        """Every credential these settings can reach: the key and the URL's user and password."""
        _, user, password = split_userinfo(self.base_url) if isinstance(self.base_url, str) else ("", None, None)
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return tuple(s for s in (key, key.strip(), user, password) if s)

    def cache_parts(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.url.rstrip("/"), "temperature": float(self.temperature),
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


def _validate(content: str, stages: int, direction: str, allow_de_novo: bool, quotes: ReportQuotes | None = None,
              invented: Callable[[list[str]], list[str]] | None = None) -> LLMPlan:
    """Parse and check the answer; raise ``ValueError`` with a short reason the model can act on.

    ``quotes`` finds report text (a stage prompt that copies the report is refused); ``invented`` returns the
    findings that given texts show but the report does not state as present (refused unless ``allow_de_novo``).
    """
    try:
        parsed = LLMPlan.model_validate_json(content)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(f"the JSON does not match the schema ({problems[:500]})") from None
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if len(parsed.stages) != stages:
        raise ValueError(f"expected exactly {stages} stages, got {len(parsed.stages)}")
    if len(parsed.findings) > MAX_FINDINGS:
        raise ValueError(f"list at most {MAX_FINDINGS} findings")
    if parsed.direction != direction:
        raise ValueError(f"direction must be {direction!r}")
    values = [s.severity for s in parsed.stages]
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError("every stage severity must be in 0..1")
    ordered = sorted(values) if direction == "progression" else sorted(values, reverse=True)
    if values != ordered:
        raise ValueError(f"stage severities must {'rise' if direction == 'progression' else 'fall'} monotonically")
    for i, s in enumerate(parsed.stages, start=1):
        prompt = clean_field(s.prompt) if len(s.prompt) <= 2 * FIELD_CHARS["prompt"] else s.prompt
        if not prompt:
            raise ValueError("every stage needs a non-empty prompt")
        if len(prompt) > FIELD_CHARS["prompt"]:
            raise ValueError(f"the prompt of stage {i} has {len(prompt)} characters; write one short caption "
                             f"(at most {FIELD_CHARS['prompt']} characters)")
        if quotes is not None and quotes.quotes(prompt, chars=False):
            raise ValueError(f"the prompt of stage {i} copies the report's wording; write a short image caption, "
                             "not report sentences, and no identifiers")
    if any(not f.name.strip() for f in parsed.findings):
        raise ValueError("every finding needs a name")
    if parsed.de_novo and not allow_de_novo:
        raise ValueError("de_novo is not allowed: stage only findings that the report states")
    if invented is not None and not allow_de_novo:
        shown = [s.prompt for s in parsed.stages]  # each at most FIELD_CHARS["prompt"], checked above
        shown += [f.name[:2 * FIELD_CHARS["name"]] for f in parsed.findings if f.certainty == "positive"]
        new = invented(shown)
        if new:
            raise ValueError(f"the plan shows {', '.join(new)}, which the report does not state as present; stage "
                             "only the report's positive findings (or keep the image normal) and set de_novo to "
                             "false")
    return parsed


def _sanitise(parsed: LLMPlan, quotes: ReportQuotes | None) -> tuple[LLMPlan, list[str]]:
    """The answer with every free-text field cleaned (one line, no control characters) and bounded: an optional
    field (laterality, location, severity, negative prompt, ROI hint, stage name, note) that is too long or
    quotes the report is dropped, and so is a finding whose name does. Returns the answer and what was dropped."""
    dropped: list[str] = []

    def field(value: str | None, what: str) -> str | None:
        if value is None:
            return None
        text = clean_field(value) if len(value) <= 2 * FIELD_CHARS[what] else value
        if len(text) > FIELD_CHARS[what] or (quotes is not None and quotes.quotes(text)):
            dropped.append(what)
            return None
        return text or None

    findings = []
    for f in parsed.findings:
        name = field(f.name, "name")  # a finding whose name quotes the report is dropped
        if name:
            findings.append(f.model_copy(update={"name": name, "laterality": field(f.laterality, "laterality"),
                                                 "location": field(f.location, "location"),
                                                 "severity": field(f.severity, "severity")}))
    stages = [s.model_copy(update={"name": field(s.name, "stage name") or "", "prompt": clean_field(s.prompt),
                                   "negative_prompt": field(s.negative_prompt, "negative prompt") or "",
                                   "roi_hint": field(s.roi_hint, "roi hint")}) for s in parsed.stages]
    notes = [n for n in (field(n, "note") for n in parsed.notes[:MAX_NOTES]) if n]
    if len(parsed.notes) > MAX_NOTES:
        dropped.append(f"{len(parsed.notes) - MAX_NOTES} note(s) over {MAX_NOTES}")
    return parsed.model_copy(update={"findings": findings, "stages": stages, "notes": notes}), dropped


def _retry_after(response: Any) -> float | None:
    """Seconds from a response's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), or None."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms"):
            value = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after"):
            raw = headers["retry-after"].strip()
            try:
                value = float(raw)
            except ValueError:
                value = email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
        else:
            return None
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, value) if math.isfinite(value) else None


def retry_delay(attempt: int, retry_after: float | None, cap: float) -> float:
    """Seconds to wait before attempt ``attempt + 1``: the server's Retry-After, else 0.5 s doubling per attempt
    (at most 8 s, with jitter); never more than ``cap``."""
    if retry_after is not None:
        return min(retry_after, cap)
    return min(0.5 * 2 ** (attempt - 1), 8.0, cap) * random.uniform(0.75, 1.0)


def _chain(exc: BaseException) -> list[str]:
    names, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        names.append(type(exc).__name__)
        exc = exc.__cause__ or exc.__context__
    return names


class LLMEngine:
    """Asks the endpoint for a plan and validates it (one repair request when the answer is invalid).

    ``check_cancel`` (optional) is called at least every ``POLL_S`` seconds while waiting: it cancels by
    raising (ComfyUI's ``throw_exception_if_processing_interrupted``) or by returning True (:class:`LLMCancelled`).
    """

    def __init__(self, settings: LLMSettings, check_cancel: CheckCancel | None = None):
        settings.check()
        self.settings = settings
        self.check_cancel = check_cancel
        self._quotes: ReportQuotes | None = None

    # --- waiting ----------------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        if self.check_cancel is not None and self.check_cancel() is True:
            raise LLMCancelled("cancelled while waiting for the LLM.")

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._checkpoint()
            time.sleep(min(POLL_S, left))
        self._checkpoint()

    def _client(self):
        import openai

        url, user, password = split_userinfo(self.settings.base_url)
        headers = {}
        if user is not None or password is not None:  # as before: URL credentials are HTTP Basic auth
            import base64

            token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        # the client never retries: _ask does, with bounded waits and Cancel checks
        return openai.OpenAI(base_url=url, api_key=self.settings.api_key(), timeout=self.settings.timeout,
                             max_retries=0, default_headers=headers or None)

    def _attempt(self, messages: list[dict[str, str]], attempt: int) -> str:
        """One request in a worker thread; the caller polls Cancel and a wall-clock deadline meanwhile."""
        s = self.settings
        client = self._client()
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["response"] = client.chat.completions.create(
                    model=s.model, messages=messages, temperature=s.temperature, seed=s.seed, max_tokens=s.max_tokens,
                    response_format=response_format())
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        try:
            threading.Thread(target=work, name="mvg-llm-request", daemon=True).start()
            deadline = time.monotonic() + s.timeout
            while not done.wait(min(POLL_S, max(0.0, deadline - time.monotonic()) + 0.01)):
                self._checkpoint()
                if time.monotonic() > deadline:
                    raise LLMError("timeout", f"the LLM at {self._where} did not answer within {s.timeout:g} s "
                                   f"({attempt} attempt(s)): raise the timeout, use a smaller model, or check that "
                                   "the server is not overloaded.", retryable=True)
        finally:
            client.close()  # an abandoned request ends at its socket timeout; its thread is a daemon
        if "error" in box:
            raise self._error(box["error"], attempt) from None
        return self._content(box["response"])

    def _ask(self, messages: list[dict[str, str]]) -> str:
        s = self.settings
        attempts = s.max_retries + 1
        for attempt in range(1, attempts + 1):
            self._checkpoint()
            try:
                return self._attempt(messages, attempt)
            except LLMError as exc:
                if not exc.retryable or attempt == attempts:
                    raise
                delay = retry_delay(attempt, exc.retry_after, s.max_retry_wait)
                log.info("MVG ReportToPrompts: %s from %s; retry %d of %d in %.1f s", exc.kind, self._where, attempt,
                         s.max_retries, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    # --- answers and failures ---------------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"{self.settings.url} (model {self.settings.model})"

    def _server_text(self, text: object, limit: int = 200) -> str:
        """A message the server wrote, fit to show: one line, bounded, never report text."""
        text = clean_field(str(text))[:limit]
        if self._quotes is not None and self._quotes.quotes(text):
            return "(not shown: it quotes the report)"
        return text

    def _detail(self, exc: Exception) -> str:
        body = getattr(exc, "body", None)
        message = body.get("message") if isinstance(body, dict) else None
        if not message and isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
        return f": {self._server_text(message)}" if message else ""

    def _error(self, exc: BaseException, attempt: int) -> LLMError:
        """Map a failure of the ``openai`` client to a clear :class:`LLMError` (no key, no request body)."""
        import openai

        s, where = self.settings, self._where
        tries = f"({attempt} attempt(s))"
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, json.JSONDecodeError):
            return LLMError("invalid_body", f"{s.url} answered with a body that is not JSON: is base_url an "
                            "OpenAI-compatible API root (e.g. .../v1)?")
        if isinstance(exc, RecursionError):
            return LLMError("invalid_body", f"{s.url} answered with a JSON body nested too deeply to read: not an "
                            "OpenAI-compatible chat-completions answer.")
        if isinstance(exc, openai.APITimeoutError):
            return LLMError("timeout", f"the LLM at {where} did not answer within {s.timeout:g} s {tries}: raise "
                            "the timeout, use a smaller model, or check that the server is not overloaded.",
                            retryable=True)
        if isinstance(exc, openai.APIConnectionError):
            causes = _chain(exc)
            if not any(n in ("ConnectError", "ConnectTimeout") for n in causes) and any(
                    n in ("RemoteProtocolError", "ReadError", "DecodingError", "ProtocolError") for n in causes):
                return LLMError("truncated_body", f"the answer from {where} broke off {tries}: the connection closed "
                                "before the whole body arrived (a truncated or invalid HTTP response); check the "
                                "server or the proxy in front of it.", retryable=True)
            return LLMError("connection", f"cannot connect to {s.url} {tries}: is the server running and is "
                            "base_url right (scheme, host, port, usually ending in /v1)?", retryable=True)
        if isinstance(exc, openai.APIStatusError):
            code, detail = exc.status_code, self._detail(exc)
            after = _retry_after(getattr(exc, "response", None))
            if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
                return LLMError("auth", f"{where} refused the key ({code}{detail}): put a valid key in the "
                                f"environment variable {s.key_name if s.api_key_env else '(none given)'}.")
            if isinstance(exc, openai.NotFoundError):
                return LLMError("not_found", f"{where} answered 404{detail}: check the model name and that base_url "
                                "is the API root (e.g. .../v1).")
            if isinstance(exc, openai.RateLimitError):
                return LLMError("rate_limit", f"{where} is rate-limiting (429{detail}) {tries}: wait, or raise your "
                                "quota.", retryable=True, retry_after=after)
            if code >= 500:
                return LLMError("server", f"{where} failed with HTTP {code}{detail} {tries}: retry later or check "
                                "the server's log.", retryable=True, retry_after=after)
            if code in (400, 422):
                return LLMError("bad_request", f"{where} rejected the request ({code}{detail}): the model or server "
                                "may not support JSON-schema structured output, or max_tokens is too large.")
            return LLMError("http", f"{where} answered HTTP {code}{detail}.", retryable=code in (408, 409),
                            retry_after=after)
        return LLMError("invalid_body", f"{where}: unexpected answer ({type(exc).__name__}).")

    def _content(self, response: Any) -> str:
        s = self.settings
        if isinstance(response, str):
            raise LLMError("html_body", f"{s.url} answered with a web page (text/html), not the API: base_url "
                           "probably points at a website or proxy; use the API root (e.g. .../v1).")
        if not getattr(response, "choices", None):
            raise LLMError("invalid_body", f"{s.url} answered without choices: not an OpenAI-compatible "
                           "chat-completions answer.")
        choice = response.choices[0]
        if choice.finish_reason == "length":
            raise LLMError("truncated", f"the answer of {s.model} was cut off at max_tokens={s.max_tokens}: raise "
                           "max_tokens or ask for fewer stages.")
        if getattr(choice.message, "refusal", None):
            raise LLMError("refused", f"{s.model} refused to answer: {self._server_text(choice.message.refusal)}")
        content = choice.message.content or ""
        return content if isinstance(content, str) else str(content)

    # --- the plan ---------------------------------------------------------------------------------------
    def plan(self, report: str, *, domain: str, stages: int, direction: str, example: str,
             labels: tuple[str, ...], allow_de_novo: bool, report_sha256: str,
             invented: Callable[[list[str]], list[str]] | None = None) -> PromptPlan:
        """Ask, validate (one repair request), clean. ``invented(texts)`` names the findings that ``texts``
        show but the report does not state as present (None: no such check, e.g. for ``domain="other"``)."""
        self._quotes = ReportQuotes(report)
        try:
            return self._plan(report, domain, stages, direction, example, labels, allow_de_novo, report_sha256,
                              invented)
        except LLMError as exc:  # the last net: no credential leaves in a message, even one the server echoed
            raise LLMError(exc.kind, scrub(str(exc), self.settings.secrets())) from None

    def _plan(self, report, domain, stages, direction, example, labels, allow_de_novo, report_sha256,
              invented) -> PromptPlan:
        s = self.settings
        messages = [{"role": "system", "content": system_prompt(domain, stages, direction, example, labels,
                                                                allow_de_novo)},
                    {"role": "user", "content": report}]
        log.info("MVG ReportToPrompts: asking %s (model %s)", s.url, scrub(s.model, s.secrets()))
        content = self._ask(messages)
        check = dict(quotes=self._quotes, invented=invented)
        try:
            parsed = _validate(content, stages, direction, allow_de_novo, **check)
        except ValueError as first:
            log.info("MVG ReportToPrompts: invalid answer (%s); one repair request", scrub(str(first), s.secrets()))
            messages += [{"role": "assistant", "content": content},
                         {"role": "user", "content": f"That answer is invalid: {first}. Answer again with only the "
                                                     "corrected JSON object."}]
            content = self._ask(messages)
            try:
                parsed = _validate(content, stages, direction, allow_de_novo, **check)
            except ValueError as second:
                raise LLMError("invalid_output", f"{s.model} gave an invalid plan twice (last: {second}); try "
                               "another model, a lower temperature, or the rules engine.") from None
        parsed, dropped = _sanitise(parsed, self._quotes)
        notes = list(parsed.notes)
        if dropped:
            notes.append(f"dropped from the LLM's answer (too long or quoting the report): {', '.join(dropped)}")
        de_novo = parsed.de_novo
        new = invented([st.prompt for st in parsed.stages]) if invented is not None and allow_de_novo else []
        if new and not de_novo:
            de_novo = True
            notes.append(f"the stages show {', '.join(new)}, which the report does not state: marked DE-NOVO")
        return PromptPlan(
            stages=tuple(Stage(prompt=st.prompt, negative_prompt=st.negative_prompt, name=st.name,
                               severity=round(st.severity, 3), roi_hint=st.roi_hint) for st in parsed.stages),
            domain=domain, direction=direction, engine=f"llm:{s.model}",
            findings=tuple(Finding(name=f.name, certainty=f.certainty, laterality=f.laterality, location=f.location,
                                   severity=f.severity) for f in parsed.findings),
            report_sha256=report_sha256, notes=tuple(notes), de_novo=de_novo)
