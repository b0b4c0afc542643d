"""Keep report text out of the metadata that ComfyUI's save nodes embed (PNG text chunks, video tags).

Save Image / Save Video write the API prompt (``prompt``) and the UI workflow (``extra_pnginfo["workflow"]``)
of the run into every file. Both carry MVG_ReportToPrompts' ``report`` widget. At submission (an
``on_prompt`` handler, before validation and before any node runs) the report in both is replaced by a token
``[MVG report redacted: sha256 <hex>]`` and the text is held in this process's memory, where the node finds
it. So no file written by any branch of the graph carries the report, cached re-runs keep working (the token
is stable per report), and ``/history`` holds no report either. The node repeats the redaction in place on
its hidden ``prompt``/``extra_pnginfo`` inputs for prompts queued without the handler.

``keep_report_in_metadata`` (the node's last widget) opts out. An ``api_key_env`` value that is not an
environment-variable name (a pasted key) is redacted the same way.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

from ..mvg_backend.errors import MVGInputError

NODE_ID = "MVG_ReportToPrompts"
REPORT_INPUT, KEEP_INPUT, KEY_ENV_INPUT = "report", "keep_report_in_metadata", "api_key_env"
KEY_ENV_WIDGET = 7  # position of api_key_env among the node's widgets (widgets_values are positional)
_TOKEN = re.compile(r"^\[MVG report redacted: sha256 ([0-9a-f]{64})\]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KEY_REDACTED = "[redacted: not an environment variable name]"
_MAX_HELD = 256

_held: OrderedDict[str, str] = OrderedDict()
_lock = threading.Lock()


def _token(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with _lock:
        _held[digest] = text
        _held.move_to_end(digest)
        while len(_held) > _MAX_HELD:
            _held.popitem(last=False)
    return f"[MVG report redacted: sha256 {digest}]"


def resolve_report(value: str) -> str:
    """The report text for a widget value: itself, or the text a redaction token stands for."""
    m = _TOKEN.match(value.strip()) if isinstance(value, str) else None
    if not m:
        return value
    with _lock:
        text = _held.get(m.group(1))
    if text is None:
        raise MVGInputError("report: this workflow holds a redacted report (metadata never keeps its text) and this "
                            "ComfyUI process no longer has it (restarted since): paste the report into the report box "
                            "again.")
    return text


def _redact_text(value: Any) -> Any:
    if isinstance(value, str) and value.strip() and not _TOKEN.match(value.strip()):
        return _token(value)
    return value


def _redact_key_env(value: Any) -> Any:
    return _KEY_REDACTED if isinstance(value, str) and value and not _ENV_NAME.match(value) else value


def redact_prompt(prompt: Any) -> None:
    """In place: the API-format prompt's MVG_ReportToPrompts reports (unless they opted out)."""
    if not isinstance(prompt, dict):
        return
    for node in prompt.values():
        if not isinstance(node, dict) or node.get("class_type") != NODE_ID:
            continue
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            continue
        if KEY_ENV_INPUT in inputs:
            inputs[KEY_ENV_INPUT] = _redact_key_env(inputs[KEY_ENV_INPUT])
        if inputs.get(KEEP_INPUT) is not True and REPORT_INPUT in inputs:
            inputs[REPORT_INPUT] = _redact_text(inputs[REPORT_INPUT])


def _workflow_nodes(workflow: Any):
    """Every node dict of a UI workflow, subgraph definitions included."""
    if not isinstance(workflow, dict):
        return
    for node in workflow.get("nodes") or ():
        if isinstance(node, dict):
            yield node
    for sub in (workflow.get("definitions") or {}).get("subgraphs") or ():
        yield from _workflow_nodes(sub)


def redact_workflow(extra_pnginfo: Any) -> None:
    """In place: the report widget (the first) of every MVG_ReportToPrompts node in the UI workflow."""
    if not isinstance(extra_pnginfo, dict):
        return
    for node in _workflow_nodes(extra_pnginfo.get("workflow")):
        values = node.get("widgets_values")
        if node.get("type") != NODE_ID or not values:
            continue
        if isinstance(values, dict):
            if KEY_ENV_INPUT in values:
                values[KEY_ENV_INPUT] = _redact_key_env(values[KEY_ENV_INPUT])
            if values.get(KEEP_INPUT) is not True and REPORT_INPUT in values:
                values[REPORT_INPUT] = _redact_text(values[REPORT_INPUT])
        elif isinstance(values, list):
            if len(values) > KEY_ENV_WIDGET:
                values[KEY_ENV_WIDGET] = _redact_key_env(values[KEY_ENV_WIDGET])
            if values[-1] is not True:  # keep_report_in_metadata is the last widget
                values[0] = _redact_text(values[0])


def redact_submission(json_data: dict) -> dict:
    """``PromptServer`` on_prompt handler: redact the queued prompt and workflow before anything runs."""
    if isinstance(json_data, dict):
        redact_prompt(json_data.get("prompt"))
        extra = json_data.get("extra_data")
        redact_workflow(extra.get("extra_pnginfo") if isinstance(extra, dict) else None)
    return json_data


def install() -> bool:
    """Register the handler with ComfyUI's server (once). False when no server runs (e.g. in-process use)."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    if redact_submission not in instance.on_prompt_handlers:
        instance.add_on_prompt_handler(redact_submission)
    return True
