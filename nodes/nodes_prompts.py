"""ReportToPrompts (a clinical report -> staged prompts), its optional LLM settings, and Prompt List (stages by
hand): the `MVG_PROMPTS` nodes.

``MVG_ReportToPromptsV2`` shows what every user sets (report, domain, stages, direction, engine, caption
style); the LLM engine's endpoint and options come from an ``MVG_LLMSettings`` node connected to ``llm``. The
legacy ``MVG_ReportToPrompts`` (LLM settings inline) stays registered, deprecated, so saved workflows and API
prompts still load and run; both run :func:`report_to_prompts`.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from ..mvg_backend.errors import MVGInputError
from ..mvg_backend.prompts import CAPTION_STYLES, DOMAINS, ENGINES, MAX_SEVERITY, LLMSettings, parse_prompt_lines, plan
from ..mvg_backend.prompts.stages import MAX_STAGES
from . import report_redaction
from .mvg_types import LLMChoice, MVGLLMSettings, MVGPrompts

EXAMPLE_REPORT_HINT = ("Paste the report (findings and impression), e.g. 'Moderate right pleural effusion. "
                       "No pneumothorax.' It is kept out of saved image/video metadata.")
NO_LLM_SETTINGS = ("llm: engine 'openai-compatible' needs to know where to ask: connect an MVG LLM Settings node to "
                   "llm: it names the endpoint and the key's environment variable (or set engine to 'rules', which "
                   "works offline).")
LLM_IGNORED = "the MVG LLM Settings connected to llm were ignored: engine is 'rules' (offline; nothing was sent)"
DEFAULT_LLM = LLMSettings()


def cache_dir() -> Path:
    """Plans from the LLM engine are cached in ComfyUI's user folder (survives restarts, never in outputs)."""
    return Path(folder_paths.get_user_directory()) / "ComfyUI-MVG" / "prompt_cache"


async def report_to_prompts(hidden: Any, report: str, domain: str, stages: int, direction: str, engine: str,
                            caption_style: str, template: str, max_severity: str,
                            llm: LLMChoice | None) -> io.NodeOutput:
    """The one execution of both ReportToPrompts nodes: redact, resolve the report, plan, describe.

    ``llm`` is None when no MVG LLM Settings is connected (the V2 node); the engine 'openai-compatible'
    then fails with the fix. With engine 'rules' connected settings are unused, and the plan says so.
    """
    # async: ComfyUI starts async nodes first, so this runs before any save node; no await comes before it
    REDACTION.redact_prompt(hidden.prompt)
    REDACTION.redact_workflow(hidden.extra_pnginfo)
    text = report_redaction.resolve_report(report)
    if engine == "openai-compatible" and llm is None:
        raise MVGInputError(NO_LLM_SETTINGS)
    choice = llm or LLMChoice(DEFAULT_LLM)
    result = await asyncio.to_thread(
        plan, text, domain, stages=stages, direction=direction, engine=engine, caption_style=caption_style,
        template=template, max_severity=max_severity, llm=choice.settings, fallback=choice.fallback,
        allow_de_novo=choice.allow_de_novo, cache_dir=cache_dir(),
        check_cancel=comfy.model_management.throw_exception_if_processing_interrupted)
    if llm is not None and engine == "rules":
        result = replace(result, notes=(*result.notes, LLM_IGNORED))
    return io.NodeOutput(result, result.describe())


# ------------------------------------------------------------------------------------------ shared inputs/outputs
def _report_input() -> io.String.Input:
    return io.String.Input("report", multiline=True, default="", dynamic_prompts=False,
                           placeholder=EXAMPLE_REPORT_HINT,
                           tooltip="The clinical report (findings and impression). Off the LLM engine it never "
                                   "leaves this machine; saved images/videos carry a hash token instead.")


def _domain_input() -> io.Combo.Input:
    return io.Combo.Input("domain", options=list(DOMAINS), default="chest_xray",
                          tooltip="The imaging domain. 'other' needs the openai-compatible engine (the rules know "
                                  "the first three). MVG ROI Mask set to 'auto' takes it from here.")


def _stages_input() -> io.Int.Input:
    return io.Int.Input("stages", default=3, min=1, max=MAX_STAGES,
                        tooltip="Number of disease stages after the current image.")


def _direction_input() -> io.Combo.Input:
    return io.Combo.Input("direction", options=["progression", "regression"], default="progression",
                          tooltip="progression: worsening; regression: response to treatment.")


def _caption_style_input() -> io.Combo.Input:
    return io.Combo.Input("caption_style", options=list(CAPTION_STYLES), default="mvg",
                          tooltip="mvg: 'a chest x-ray with ...'; report: 'Large right pleural effusion.'; "
                                  "short: findings only; custom: the template below.")


def _template_input() -> io.String.Input:
    return io.String.Input("template", default="", dynamic_prompts=False,
                           tooltip="Only used with caption_style 'custom' (ignored otherwise): e.g. "
                                   "'a {modality} with {findings}'. Fields: {findings}, {modality}, {stage}, "
                                   "{severity}.")


def _keep_input() -> io.Boolean.Input:
    return io.Boolean.Input("keep_report_in_metadata", default=False,
                            tooltip="Off: the report is replaced by a hash token in the workflow that Save "
                                    "Image/Video embed. On: saved files carry the report text.")


def _max_severity_input(optional: bool) -> io.Combo.Input:
    return io.Combo.Input("max_severity", options=list(MAX_SEVERITY), default="severe", optional=optional,
                          tooltip="Rule engine: the most severe state a plan may reach. 'severe' stops short of "
                                  "end-stage wording (massive cardiomegaly, tension pneumothorax, vitreous "
                                  "hemorrhage); 'end-stage' allows it.")


def _llm_inputs(optional: tuple[str, ...] = ()) -> dict[str, io.Input]:
    """The LLM widgets, shared by MVG LLM Settings and the legacy node (which declares them inline, the
    ``optional`` ones appended later)."""
    return {
        "model": io.String.Input("model", default=DEFAULT_LLM.model, tooltip="Model name served at base_url."),
        "base_url": io.String.Input("base_url", default=DEFAULT_LLM.base_url,
                                    tooltip="OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 for Ollama. "
                                            "The report is sent there."),
        "api_key_env": io.String.Input("api_key_env", default=DEFAULT_LLM.api_key_env,
                                       tooltip="NAME of the environment variable that holds the API key (never the "
                                               "key itself). Empty for a local server without a key."),
        "temperature": io.Float.Input("temperature", default=DEFAULT_LLM.temperature, min=0.0, max=2.0, step=0.05,
                                      tooltip="Sampling temperature sent to the LLM (low: more repeatable)."),
        "seed": io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Sent to the LLM (servers that honour it answer reproducibly); part of the "
                                     "cache key."),
        "fallback": io.Boolean.Input("fallback", default=True,
                                     tooltip="If the LLM fails, use the rule engine (the plan says so)."),
        "allow_de_novo": io.Boolean.Input("allow_de_novo", default=False,
                                          tooltip="Let the LLM stage a disease the report does not mention (the "
                                                  "plan is marked DE-NOVO). The rule engine never does."),
        "timeout": io.Float.Input("timeout", default=DEFAULT_LLM.timeout, min=1.0, max=600.0, step=1.0,
                                  optional="timeout" in optional,
                                  tooltip="Seconds one LLM request may take (Cancel works at any time)."),
        "max_retries": io.Int.Input("max_retries", default=DEFAULT_LLM.max_retries, min=0, max=5,
                                    optional="max_retries" in optional,
                                    tooltip="Further LLM attempts after a timeout, connection error, 429 or 5xx "
                                            "(waits between them are at most 10 s, a server's Retry-After "
                                            "included)."),
    }


def _llm_choice(model: str, base_url: str, api_key_env: str, temperature: float, seed: int, fallback: bool,
                allow_de_novo: bool, timeout: float, max_retries: int) -> LLMChoice:
    settings = LLMSettings(model=model.strip(), base_url=base_url.strip(), api_key_env=api_key_env.strip(),
                           temperature=temperature, seed=seed, timeout=float(timeout), max_retries=int(max_retries))
    return LLMChoice(settings, fallback=bool(fallback), allow_de_novo=bool(allow_de_novo))


def _outputs() -> list[io.Output]:
    return [MVGPrompts.Output(display_name="prompts",
                              tooltip="MVG_PROMPTS: the ordered disease stages, for MVG Progressive Edit; ROI Mask "
                                      "reads their region hints and domain, Evaluate their finding and direction."),
            io.String.Output(display_name="plan",
                             tooltip="The plan as text: engine, findings, notes and one line per stage (never the "
                                     "report's text).")]


DESCRIPTION = ("Clinical report -> disease stages (MVG_PROMPTS) for Progressive Edit. 'rules' works offline; "
               "'openai-compatible' asks an LLM (OpenAI, Azure, vLLM, Ollama, llama.cpp) ")


class ReportToPromptsV2(io.ComfyNode):
    """Reads a report and writes the ordered stage prompts that drive MVG_ProgressiveEdit."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_ReportToPromptsV2",
            display_name="MVG Report to Prompts",
            category="MVG",
            description=DESCRIPTION + "set up in an MVG LLM Settings node connected to llm. The report is kept out "
                                      "of saved image/video metadata unless keep_report_in_metadata is on.",
            inputs=[
                _report_input(), _domain_input(), _stages_input(), _direction_input(),
                io.Combo.Input("engine", options=list(ENGINES), default="rules",
                               tooltip="rules: offline, never invents a finding, the report never leaves this "
                                       "machine. openai-compatible: an LLM endpoint, named by an MVG LLM Settings "
                                       "node connected to llm."),
                _caption_style_input(), _template_input(), _keep_input(), _max_severity_input(optional=False),
                MVGLLMSettings.Input("llm", optional=True,
                                     tooltip="From MVG LLM Settings: only with engine 'openai-compatible' (with "
                                             "'rules' it is ignored, and the plan says so)."),
            ],
            outputs=_outputs(),
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    async def execute(cls, report: str, domain: str, stages: int, direction: str, engine: str, caption_style: str,
                      template: str, keep_report_in_metadata: bool, max_severity: str,
                      llm: LLMChoice | None = None) -> io.NodeOutput:
        return await report_to_prompts(cls.hidden, report, domain, stages, direction, engine, caption_style,
                                       template, max_severity, llm)


class LLMSettingsNode(io.ComfyNode):
    """Where and how MVG Report to Prompts' LLM engine asks."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_LLMSettings",
            display_name="MVG LLM Settings",
            category="MVG",
            description="The LLM endpoint for MVG Report to Prompts' engine 'openai-compatible': any OpenAI-"
                        "compatible chat-completions server (OpenAI, Azure, vLLM, Ollama, llama.cpp). The report "
                        "is sent to base_url; the key is read from the environment variable api_key_env names.",
            inputs=list(_llm_inputs().values()),
            outputs=[MVGLLMSettings.Output(display_name="llm",
                                           tooltip="Connect to MVG Report to Prompts' llm (used with engine "
                                                   "'openai-compatible').")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    async def execute(cls, model: str, base_url: str, api_key_env: str, temperature: float, seed: int,
                      fallback: bool, allow_de_novo: bool, timeout: float, max_retries: int) -> io.NodeOutput:
        # async for the same reason as report_to_prompts: a pasted key leaves the metadata before any save node
        REDACTION.redact_prompt(cls.hidden.prompt)
        REDACTION.redact_workflow(cls.hidden.extra_pnginfo)
        return io.NodeOutput(_llm_choice(model, base_url, api_key_env, temperature, seed, fallback, allow_de_novo,
                                         timeout, max_retries))


class ReportToPrompts(io.ComfyNode):
    """Deprecated (LLM settings inline): kept so that saved workflows and API prompts load and run."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        llm = _llm_inputs(optional=("timeout", "max_retries"))
        return io.Schema(
            node_id="MVG_ReportToPrompts",
            display_name="MVG Report to Prompts (legacy)",
            category="MVG",
            description="Deprecated: use MVG Report to Prompts with an MVG LLM Settings node (same plans). "
                        + DESCRIPTION + "set up inline. The report is kept out of saved image/video metadata "
                        "unless keep_report_in_metadata is on.",
            is_deprecated=True,
            inputs=[
                _report_input(), _domain_input(), _stages_input(), _direction_input(),
                io.Combo.Input("engine", options=list(ENGINES), default="rules",
                               tooltip="rules: offline, never invents a finding. openai-compatible: the LLM "
                                       "endpoint set below."),
                llm["model"], llm["base_url"], llm["api_key_env"], llm["temperature"], llm["seed"], llm["fallback"],
                _caption_style_input(), _template_input(), llm["allow_de_novo"], _keep_input(),
                # appended later: optional, so that API prompts written before them still validate
                llm["timeout"], llm["max_retries"], _max_severity_input(optional=True),
            ],
            outputs=_outputs(),
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    async def execute(cls, report: str, domain: str, stages: int, direction: str, engine: str, model: str,
                      base_url: str, api_key_env: str, temperature: float, seed: int, fallback: bool,
                      caption_style: str, template: str, allow_de_novo: bool,
                      keep_report_in_metadata: bool, timeout: float = DEFAULT_LLM.timeout,
                      max_retries: int = DEFAULT_LLM.max_retries, max_severity: str = "severe") -> io.NodeOutput:
        choice = _llm_choice(model, base_url, api_key_env, temperature, seed, fallback, allow_de_novo, timeout,
                             max_retries)
        # inline settings are always there: with engine 'rules' they are simply unused, as before
        return await report_to_prompts(cls.hidden, report, domain, stages, direction, engine, caption_style,
                                       template, max_severity, None if engine == "rules" else choice)


# widgets_values positions of report / keep_report_in_metadata / api_key_env, read from each schema above
REDACTION = report_redaction.Redaction.of(ReportToPromptsV2, ReportToPrompts, LLMSettingsNode)
report_redaction.install(REDACTION)


EXAMPLE_PROMPTS = (
    "a chest x-ray with a small right pleural effusion\n"
    "a chest x-ray with a moderate right pleural effusion\n"
    "a chest x-ray with a large right pleural effusion"
)


class PromptList(io.ComfyNode):
    """Stage prompts written by hand: one stage per line."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_PromptList",
            display_name="MVG Prompt List",
            category="MVG",
            description="One disease-stage prompt per line, in order. Optional per line: "
                        "'prompt | negative prompt {rounds=3, strength=0.4}'. Lines starting with # are skipped.",
            inputs=[
                io.String.Input("text", multiline=True, default=EXAMPLE_PROMPTS, dynamic_prompts=False),
                io.String.Input("negative", multiline=True, default="", dynamic_prompts=False,
                                tooltip="Negative prompt for every stage without its own ('| ...' on its line)."),
            ],
            outputs=[MVGPrompts.Output(display_name="prompts",
                                       tooltip="MVG_PROMPTS: these stages in order (domain 'other': set MVG ROI "
                                               "Mask's domain yourself), for MVG Progressive Edit.")],
        )

    @classmethod
    def execute(cls, text: str, negative: str) -> io.NodeOutput:
        return io.NodeOutput(parse_prompt_lines(text, negative))


NODES: list[type[io.ComfyNode]] = [ReportToPromptsV2, LLMSettingsNode, ReportToPrompts, PromptList]
