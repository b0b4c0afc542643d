"""Stage prompts (the ``MVG_PROMPTS`` value) and how to build them."""

from .types import PromptPlan, Stage, parse_prompt_lines

__all__ = ["PromptPlan", "Stage", "parse_prompt_lines"]
