"""ReportToPrompts (a clinical report -> staged prompts) and Prompt List (stages by hand): the `MVG_PROMPTS` nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from ..mvg_backend.prompts import CAPTION_STYLES, DOMAINS, ENGINES, MAX_SEVERITY, LLMSettings, parse_prompt_lines, plan
from ..mvg_backend.prompts.stages import MAX_STAGES
from . import report_redaction
from .mvg_types import MVGPrompts

EXAMPLE_REPORT_HINT = ("Paste the report (findings and impression), e.g. 'Moderate right pleural effusion. "
                       "No pneumothorax.' It is kept out of saved image/video metadata.")


def cache_dir() -> Path:
    """Plans from the LLM engine are cached in ComfyUI's user folder (survives restarts, never in outputs)."""
    return Path(folder_paths.get_user_directory()) / "ComfyUI-MVG" / "prompt_cache"


class ReportToPrompts(io.ComfyNode):
    """Reads a report and writes the ordered stage prompts that drive MVG_ProgressiveEdit."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_ReportToPrompts",
            display_name="MVG Report to Prompts",
            category="MVG",
            description="Clinical report -> disease stages (MVG_PROMPTS) for Progressive Edit. 'rules' works offline; "
                        "'openai-compatible' asks an LLM (OpenAI, Azure, vLLM, Ollama, llama.cpp). The report is "
                        "kept out of saved image/video metadata unless keep_report_in_metadata is on.",
            inputs=[
                io.String.Input("report", multiline=True, default="", dynamic_prompts=False,
                                placeholder=EXAMPLE_REPORT_HINT),
                io.Combo.Input("domain", options=list(DOMAINS), default="chest_xray",
                               tooltip="'other' needs the openai-compatible engine (the rules know the first three)."),
                io.Int.Input("stages", default=3, min=1, max=MAX_STAGES,
                             tooltip="Number of disease stages after the current image."),
                io.Combo.Input("direction", options=["progression", "regression"], default="progression",
                               tooltip="progression: worsening; regression: response to treatment."),
                io.Combo.Input("engine", options=list(ENGINES), default="rules",
                               tooltip="rules: offline, never invents a finding. openai-compatible: an LLM endpoint."),
                io.String.Input("model", default="gpt-4o-mini", tooltip="Model name served at base_url."),
                io.String.Input("base_url", default="https://api.openai.com/v1",
                                tooltip="OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 for Ollama."),
                io.String.Input("api_key_env", default="OPENAI_API_KEY",
                                tooltip="NAME of the environment variable that holds the API key (never the key "
                                        "itself). Empty for a local server without a key."),
                io.Float.Input("temperature", default=0.2, min=0.0, max=2.0, step=0.05),
                io.Int.Input("seed", default=0, min=0, max=2**31 - 1, control_after_generate=False,
                             tooltip="Sent to the LLM (servers that honour it answer reproducibly); part of the "
                                     "cache key."),
                io.Boolean.Input("fallback", default=True,
                                 tooltip="If the LLM fails, use the rule engine (the plan says so)."),
                io.Combo.Input("caption_style", options=list(CAPTION_STYLES), default="mvg",
                               tooltip="mvg: 'a chest x-ray with ...'; report: 'Large right pleural effusion.'; "
                                       "short: findings only; custom: the template below."),
                io.String.Input("template", default="", dynamic_prompts=False,
                                tooltip="With caption_style 'custom': e.g. 'a {modality} with {findings}'. Fields: "
                                        "{findings}, {modality}, {stage}, {severity}."),
                io.Boolean.Input("allow_de_novo", default=False,
                                 tooltip="Let the LLM stage a disease the report does not mention (the plan is "
                                         "marked DE-NOVO). The rule engine never does."),
                io.Boolean.Input("keep_report_in_metadata", default=False,
                                 tooltip="Off: the report is replaced by a hash token in the workflow that Save "
                                         "Image/Video embed. On: saved files carry the report text."),
                # appended later: optional, so that API prompts written before them still validate
                io.Float.Input("timeout", default=120.0, min=1.0, max=600.0, step=1.0, optional=True,
                               tooltip="Seconds one LLM request may take (Cancel works at any time)."),
                io.Int.Input("max_retries", default=2, min=0, max=5, optional=True,
                             tooltip="Further LLM attempts after a timeout, connection error, 429 or 5xx (waits "
                                     "between them are at most 10 s, a server's Retry-After included)."),
                io.Combo.Input("max_severity", options=list(MAX_SEVERITY), default="severe", optional=True,
                               tooltip="Rule engine: the most severe state a plan may reach. 'severe' stops short of "
                                       "end-stage wording (massive cardiomegaly, tension pneumothorax, vitreous "
                                       "hemorrhage); 'end-stage' allows it."),
            ],
            outputs=[MVGPrompts.Output(display_name="prompts"), io.String.Output(display_name="plan")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    async def execute(cls, report: str, domain: str, stages: int, direction: str, engine: str, model: str,
                      base_url: str, api_key_env: str, temperature: float, seed: int, fallback: bool,
                      caption_style: str, template: str, allow_de_novo: bool,
                      keep_report_in_metadata: bool, timeout: float = 120.0, max_retries: int = 2,
                      max_severity: str = "severe") -> io.NodeOutput:
        # async: ComfyUI starts async nodes first, so this runs before any save node; no await comes before it
        REDACTION.redact_prompt(cls.hidden.prompt)
        REDACTION.redact_workflow(cls.hidden.extra_pnginfo)
        text = report_redaction.resolve_report(report)
        settings = LLMSettings(model=model.strip(), base_url=base_url.strip(), api_key_env=api_key_env.strip(),
                               temperature=temperature, seed=seed, timeout=float(timeout),
                               max_retries=int(max_retries))
        result = await asyncio.to_thread(
            plan, text, domain, stages=stages, direction=direction, engine=engine, caption_style=caption_style,
            template=template, max_severity=max_severity, llm=settings, fallback=fallback,
            allow_de_novo=allow_de_novo, cache_dir=cache_dir(),
            check_cancel=comfy.model_management.throw_exception_if_processing_interrupted)
        return io.NodeOutput(result, result.describe())


# widgets_values positions of report / keep_report_in_metadata / api_key_env, read from the schema above
REDACTION = report_redaction.layout(ReportToPrompts.define_schema())
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
            outputs=[MVGPrompts.Output(display_name="prompts")],
        )

    @classmethod
    def execute(cls, text: str, negative: str) -> io.NodeOutput:
        return io.NodeOutput(parse_prompt_lines(text, negative))


NODES: list[type[io.ComfyNode]] = [ReportToPrompts, PromptList]
