"""PIE: progressive image editing (arXiv 2309.11745), staged over MVG's disease stages.

``progressive_edit(backend, image, mask, prompts, ...)`` is the one entry point; backends implement
:class:`PIEBackend` (``DiffusersBackend`` here, the ComfyUI one in the pack's ``nodes/``).
"""

from .backend import MAX_PROMPT_TOKENS, PIEBackend, RoundSpec, TextConditioning, denoising_steps, round_noise
from .diffusers_backend import DiffusersBackend
from .engine import (CHAIN_MODES, POSTERIOR_MODES, FrameRecord, PIEResult, blend_toward_original, latent_mask,
                     progressive_edit, schedule_rounds)
from .schedulers import SCHEDULERS

__all__ = [
    "CHAIN_MODES", "MAX_PROMPT_TOKENS", "POSTERIOR_MODES", "SCHEDULERS", "DiffusersBackend", "FrameRecord",
    "PIEBackend", "PIEResult", "RoundSpec", "TextConditioning", "blend_toward_original", "denoising_steps",
    "latent_mask", "progressive_edit", "round_noise", "schedule_rounds",
]
