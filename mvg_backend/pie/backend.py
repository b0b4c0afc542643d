"""The small protocol between the PIE round logic and a diffusion stack (diffusers, ComfyUI, ...)."""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import torch

StepCallback = Callable[[int, int], None]
"""``callback(step_done, steps_in_round)`` after every model step; raise from it to cancel."""


def denoising_steps(strength: float, steps: int) -> int:
    """Model steps one round runs: ``ceil(strength * steps)``, robust to float error (0.07*100)."""
    return max(1, min(steps, math.ceil(round(strength * steps, 6))))


class PIEBackend(Protocol):
    """Encode, decode, encode text, and run one masked img2img denoise.

    Images cross the boundary as float ``[1,H,W,3]`` in 0..1 on the CPU; latents are whatever the backend
    uses (the engine only blends them linearly) and keep their device.
    """

    vae_scale_factor: int

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Pixels ``[1,H,W,3]`` -> latents ``[1,C,h,w]`` (deterministic: the posterior mean)."""

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> pixels ``[1,H,W,3]`` float32 in 0..1 on the CPU."""

    def encode_prompt(self, prompt: str, negative_prompt: str) -> Any:
        """Text conditioning for one stage (encoded once per stage, reused by all its rounds)."""

    def denoise(
        self,
        start: torch.Tensor,
        original: torch.Tensor,
        mask: torch.Tensor,
        cond: Any,
        *,
        strength: float,
        steps: int,
        guidance: float,
        seed: int,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """One PIE round's masked img2img from ``start`` toward ``cond``.

        Noise ``start`` to the level set by ``strength`` (the noise multiplied by ``mask``), then run
        ``denoising_steps(strength, steps)`` model steps of a ``steps``-step schedule. Before every step
        after the first, and after the last, the latents where ``mask < 1`` are replaced by ``original``
        re-noised to that step's level: ``z = mask*z + (1-mask)*noised(original, t)`` (``t = 0`` at the
        end, so outside the ROI the result equals ``original`` exactly). ``mask`` is ``[1,1,h,w]``.
        """

    def model_files(self) -> list[str]:
        """Weight files this backend loaded (for provenance hashes); may be empty."""
