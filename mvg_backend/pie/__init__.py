"""PIE: progressive image editing (arXiv 2309.11745), staged over MVG's disease stages.

``progressive_edit(backend, image, mask, prompts, ...)`` is the one entry point; backends implement
:class:`PIEBackend` (``DiffusersBackend`` here, the ComfyUI one in the pack's ``nodes/``).
"""

from .backend import PIEBackend, denoising_steps
from .diffusers_backend import SCHEDULERS, DiffusersBackend
from .engine import CHAIN_MODES, FrameRecord, PIEResult, blend_toward_original, progressive_edit, schedule_rounds

__all__ = [
    "CHAIN_MODES", "SCHEDULERS", "DiffusersBackend", "FrameRecord", "PIEBackend", "PIEResult",
    "blend_toward_original", "denoising_steps", "progressive_edit", "schedule_rounds",
]
