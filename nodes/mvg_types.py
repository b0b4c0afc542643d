"""The pack's own ComfyUI socket types (ids carry the ``MVG_`` prefix and never change)."""

from __future__ import annotations

from comfy_api.latest import io

MVGPrompts = io.Custom("MVG_PROMPTS")
"""A :class:`mvg_backend.prompts.PromptPlan`: the ordered disease stages."""
