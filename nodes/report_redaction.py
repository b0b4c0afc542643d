"""ComfyUI glue for the report redaction (the logic is ``mvg_backend.prompts.redaction``).

Save Image / Save Video embed the run's API prompt and UI workflow into every file; both carry the
``report`` widget of MVG Report to Prompts (V2 and the legacy node) and the ``api_key_env`` widget of MVG LLM
Settings (and of the legacy node). ``install`` registers an ``on_prompt`` handler with ComfyUI's server that
redacts both at submission, before validation and before any node runs, so no file written by any branch of
the graph, and no ``/history`` entry, holds the report or a pasted key. The nodes repeat the redaction on
their hidden ``prompt``/``extra_pnginfo`` inputs for prompts queued without the handler.

The position of each widget in ``widgets_values`` comes from each node's V3 schema (``layout``), never
from hard-coded indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from comfy_api.latest import io

from ..mvg_backend.prompts import redaction


@dataclass(frozen=True)
class RedactionLayout:
    """What the redaction needs to know about a node: its id and its ``widgets_values`` layout."""

    node_type: str
    widgets: tuple[str | None, ...]


@dataclass(frozen=True)
class Redaction:
    """The redaction of every node type that carries a report or a key's variable name; the ``PromptServer``
    on_prompt handler."""

    layouts: tuple[RedactionLayout, ...]

    @classmethod
    def of(cls, *nodes: type[io.ComfyNode]) -> Redaction:
        return cls(tuple(layout(node.define_schema()) for node in nodes))

    def redact_prompt(self, prompt: Any) -> None:
        for lay in self.layouts:
            redaction.redact_prompt(prompt, lay.node_type)

    def redact_workflow(self, extra_pnginfo: Any) -> None:
        for lay in self.layouts:
            redaction.redact_workflow(extra_pnginfo, lay.node_type, lay.widgets)

    def __call__(self, json_data: dict) -> dict:
        for lay in self.layouts:
            redaction.redact_submission(json_data, lay.node_type, lay.widgets)
        return json_data


def widget_infos(schema: io.Schema) -> list[redaction.WidgetInfo]:
    """The widget inputs of a V3 schema, in declaration order (a ``force_input`` widget is a socket)."""
    out = []
    for inp in schema.inputs:
        if not isinstance(inp, io.WidgetInput) or getattr(inp, "force_input", False):
            continue
        out.append(redaction.WidgetInfo(name=inp.id, io_type=str(inp.get_io_type()),
                                        control_after_generate=getattr(inp, "control_after_generate", None),
                                        optional=bool(inp.optional)))
    return out


def layout(schema: io.Schema) -> RedactionLayout:
    """The node's redaction layout; fails at import when the schema has nothing to redact by (a report
    widget needs its keep_report_in_metadata widget)."""
    widgets = redaction.widget_slots(widget_infos(schema))
    redaction.check_layout(widgets, schema.node_id)
    return RedactionLayout(schema.node_id, widgets)


def resolve_report(value: str) -> str:
    return redaction.resolve_report(value)


def install(handler: Redaction) -> bool:
    """Register the handler with ComfyUI's server (once). False when no server runs."""
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    if not any(isinstance(h, Redaction) for h in instance.on_prompt_handlers):
        instance.add_on_prompt_handler(handler)
    return True
