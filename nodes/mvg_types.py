"""The pack's own ComfyUI socket types (ids carry the ``MVG_`` prefix and never change)."""

from __future__ import annotations

from dataclasses import dataclass

from comfy_api.latest import io

from ..mvg_backend.prompts import LLMSettings

MVGPrompts = io.Custom("MVG_PROMPTS")
"""A :class:`mvg_backend.prompts.PromptPlan`: the ordered disease stages."""

MVGLLMSettings = io.Custom("MVG_LLM_SETTINGS")
"""An :class:`LLMChoice`: where the LLM engine of MVG Report to Prompts asks, and what it may do."""


@dataclass(frozen=True)
class LLMChoice:
    """The value of an ``MVG_LLM_SETTINGS`` socket: the endpoint settings plus the two plan options that only
    the LLM engine reads."""

    settings: LLMSettings
    fallback: bool = True
    allow_de_novo: bool = False
