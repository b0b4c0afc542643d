"""Keep a clinical report out of the metadata that saved images and videos carry.

ComfyUI's save nodes embed the run's API prompt (inputs by name) and its UI workflow (``widgets_values``,
by position) into every file. Both carry the report nodes' ``report`` widget. The functions here rewrite
both in place: the report becomes a token ``[MVG report redacted: sha256 <hex>]`` and its text is held in
this process's memory (``HeldReports``), where ``resolve_report`` finds it again, so a redacted workflow
re-runs while the process lives. A ``keep_report_in_metadata`` widget that is ``True`` opts out. An
``api_key_env`` value that is not an environment-variable name (a pasted key) is redacted too, in any node
whose layout has one (the LLM settings node has no report).

``widgets_values`` are positional, so the UI-workflow functions take the node's widget layout: the names
of its widgets in order, ``None`` for a slot without an input of its own (the value of a
``control_after_generate`` widget). ``widget_slots`` derives it from the node's inputs the way ComfyUI's
frontend lays the widgets out. No ComfyUI import: ``nodes/report_redaction.py`` registers the handler.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MVGInputError
from .secrets import looks_like_secret

__all__ = [
    "HELD", "KEY_REDACTED", "HeldReports", "WidgetInfo", "check_layout", "is_token", "redact_key_env",
    "redact_prompt", "redact_submission", "redact_workflow", "resolve_report", "widget_slots",
]

REPORT, KEEP, KEY_ENV = "report", "keep_report_in_metadata", "api_key_env"
TOKEN_PREFIX = "[MVG report redacted: sha256 "
_TOKEN = re.compile(r"^\[MVG report redacted: sha256 ([0-9a-f]{64})\]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_REDACTED = "[redacted: not an environment variable name]"
# the frontend gives an INT widget with these names a control widget unless the input says otherwise
_LEGACY_SEED_NAMES = ("seed", "noise_seed")


class HeldReports:
    """The report texts behind redaction tokens, newest ``capacity`` kept (thread-safe)."""

    def __init__(self, capacity: int = 256):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._texts)

    def token(self, text: str) -> str:
        """Hold ``text`` and return its token (the same text always gives the same token)."""
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self._lock:
            self._texts[digest] = text
            self._texts.move_to_end(digest)
            while len(self._texts) > self.capacity:
                self._texts.popitem(last=False)
        return f"{TOKEN_PREFIX}{digest}]"

    def text(self, token: str) -> str | None:
        """The text held for a token, or None (not a token, or no longer held)."""
        m = _TOKEN.match(token.strip()) if isinstance(token, str) else None
        if not m:
            return None
        with self._lock:
            return self._texts.get(m.group(1))


HELD = HeldReports()  # this process's store: the one the ComfyUI handler and the node share


def is_token(value: Any) -> bool:
    return isinstance(value, str) and _TOKEN.match(value.strip()) is not None


def resolve_report(value: str, store: HeldReports = HELD) -> str:
    """The report for a widget value: the value itself, or the text its redaction token stands for."""
    if not is_token(value):
        return value
    text = store.text(value)
    if text is None:
        raise MVGInputError("report: this workflow holds a redacted report (metadata never keeps its text) and this "
                            "ComfyUI process no longer has it (restarted since): paste the report into the report box "
                            "again.")
    return text


def _redact_text(value: Any, store: HeldReports) -> Any:
    if isinstance(value, str) and value.strip() and not is_token(value):
        return store.token(value)
    return value


def redact_key_env(value: Any) -> Any:
    """``api_key_env`` must name a variable; anything else, or a name shaped like a key, is replaced."""
    if isinstance(value, str) and value and (not _ENV_NAME.match(value) or looks_like_secret(value)):
        return KEY_REDACTED
    return value


# ------------------------------------------------------------------------------------------ widget layout
@dataclass(frozen=True)
class WidgetInfo:
    """One widget input of a node, as its schema declares it."""

    name: str
    io_type: str
    control_after_generate: bool | None = None
    optional: bool = False

    @property
    def slots(self) -> int:
        """Entries in ``widgets_values``: 2 when the frontend adds a control widget (fixed/randomize/...)."""
        control = self.control_after_generate
        if control is None:  # the frontend's legacy rule for inputs that do not say
            control = self.io_type == "INT" and self.name in _LEGACY_SEED_NAMES
        return 2 if control else 1


def widget_slots(widgets: Iterable[WidgetInfo]) -> tuple[str | None, ...]:
    """The names behind ``widgets_values`` positions: required widgets, then optional ones, each in order;
    ``None`` for the extra slot of a widget with a control widget."""
    widgets = list(widgets)
    out: list[str | None] = []
    for w in [w for w in widgets if not w.optional] + [w for w in widgets if w.optional]:
        out.append(w.name)
        out.extend([None] * (w.slots - 1))
    names = [n for n in out if n is not None]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate widget names: {names}")
    return tuple(out)


def check_layout(widgets: Sequence[str | None], node_type: str = "node") -> None:
    """A layout to redact by: a ``report`` widget with its ``keep_report_in_metadata`` opt-out, or an
    ``api_key_env`` widget, or both; ``ValueError`` otherwise."""
    names = set(widgets)
    if REPORT in names and KEEP not in names:
        raise ValueError(f"{node_type}: a {REPORT!r} widget needs its {KEEP!r} widget")
    if REPORT not in names and KEY_ENV not in names:
        raise ValueError(f"{node_type}: no {REPORT!r} or {KEY_ENV!r} widget to redact by in {list(widgets)}")


# ------------------------------------------------------------------------------------------ redaction
def _redact_named(values: dict, store: HeldReports) -> None:
    if KEY_ENV in values:
        values[KEY_ENV] = redact_key_env(values[KEY_ENV])
    if values.get(KEEP) is not True and REPORT in values:
        values[REPORT] = _redact_text(values[REPORT], store)


def redact_prompt(prompt: Any, node_type: str, store: HeldReports = HELD) -> None:
    """In place: the report of every ``node_type`` node of an API-format prompt (inputs by name)."""
    if not isinstance(prompt, dict):
        return
    for node in prompt.values():
        if isinstance(node, dict) and node.get("class_type") == node_type and isinstance(node.get("inputs"), dict):
            _redact_named(node["inputs"], store)


def _workflow_nodes(workflow: Any) -> Iterator[dict]:
    """Every node dict of a UI workflow, subgraph definitions (and theirs) included."""
    if not isinstance(workflow, dict):
        return
    for node in workflow.get("nodes") or ():
        if isinstance(node, dict):
            yield node
    definitions = workflow.get("definitions")
    for sub in (definitions.get("subgraphs") if isinstance(definitions, dict) else None) or ():
        yield from _workflow_nodes(sub)


def redact_workflow(extra_pnginfo: Any, node_type: str, widgets: Sequence[str | None],
                    store: HeldReports = HELD) -> None:
    """In place: the report (and a pasted key) of every ``node_type`` node of the UI workflow in
    ``extra_pnginfo["workflow"]``.

    ``widgets`` is the node's layout (``widget_slots``; see ``check_layout``). A list of values whose length
    differs from it (a workflow saved by another version of the node) keeps the positions it shares, and the
    opt-out counts only when the lengths agree: when in doubt, redact.
    """
    if not isinstance(extra_pnginfo, dict):
        return
    check_layout(widgets)
    slots = {name: i for i, name in enumerate(widgets) if name is not None}
    for node in _workflow_nodes(extra_pnginfo.get("workflow")):
        values = node.get("widgets_values")
        if node.get("type") != node_type or not values:
            continue
        if isinstance(values, dict):
            _redact_named(values, store)
        elif isinstance(values, list):
            if KEY_ENV in slots and slots[KEY_ENV] < len(values):
                values[slots[KEY_ENV]] = redact_key_env(values[slots[KEY_ENV]])
            kept = len(values) == len(widgets) and KEEP in slots and values[slots[KEEP]] is True
            if not kept and REPORT in slots and slots[REPORT] < len(values):
                values[slots[REPORT]] = _redact_text(values[slots[REPORT]], store)


def redact_submission(json_data: Any, node_type: str, widgets: Sequence[str | None],
                      store: HeldReports = HELD) -> Any:
    """A ``POST /prompt`` body (``prompt`` + ``extra_data.extra_pnginfo``), redacted in place and returned."""
    if isinstance(json_data, dict):
        redact_prompt(json_data.get("prompt"), node_type, store)
        extra = json_data.get("extra_data")
        redact_workflow(extra.get("extra_pnginfo") if isinstance(extra, dict) else None, node_type, widgets, store)
    return json_data
