"""The contract between the PIE round logic (the engine) and a diffusion stack (diffusers, ComfyUI, ...).

The engine owns the round: the schedule length (``ceil(γ·steps)`` of a ``steps``-step schedule), the
noise (drawn from the round's seed, over the whole latent), the final re-anchoring of the region outside
the mask, the β blend and the pixel composite. A backend only encodes and decodes images, encodes text,
and runs one round's masked denoise from the :class:`RoundSpec` it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from ..sd_parts import MAX_PROMPT_TOKENS  # noqa: F401  (text tokens of one CLIP context; shared with SEINE)

StepCallback = Callable[[int, int], None]
"""``callback(step_done, steps_in_round)`` after every model step; raise from it to cancel."""


def denoising_steps(strength: float, steps: int) -> int:
    """Model steps one round runs: ``ceil(strength * steps)``, robust to float error (0.07*100)."""
    return max(1, min(steps, math.ceil(round(strength * steps, 6))))


@dataclass(frozen=True)
class TextConditioning:
    """One stage's text conditioning, in the backend's own form (tensors, ComfyUI CONDITIONING, ...)."""

    positive: Any
    negative: Any


@dataclass(frozen=True)
class RoundSpec:
    """Everything one round's denoise needs besides the latents, decided by the engine.

    ``steps`` is the length S of the full schedule; the round runs its last ``denoise_steps`` steps
    (``n = ceil(γ·S)``), so it starts at the noise level of step ``S - n`` of the S-step schedule.
    ``noise`` (the start) and ``anchor_noise`` (the re-anchoring, an independent draw as in the
    reference) are float32 CPU tensors of the latents' shape, drawn from ``seed`` by
    :func:`round_noise`. ``generator`` continues after those draws, for a scheduler's own per-step noise
    (ancestral samplers); a stack that cannot take a generator seeds its own from ``seed``.
    """

    steps: int
    denoise_steps: int
    guidance: float
    seed: int
    noise: torch.Tensor
    anchor_noise: torch.Tensor
    generator: torch.Generator


def round_noise(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """``(noise, anchor_noise, generator)``: two standard normal draws from a CPU generator seeded with ``seed``.

    The first draw is what ComfyUI's ``comfy.sample.prepare_noise(latent, seed)`` gives for the same seed.
    """
    generator = torch.Generator("cpu").manual_seed(int(seed))
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    anchor = torch.randn(shape, generator=generator, dtype=torch.float32)
    return noise, anchor, generator


class PIEBackend(Protocol):
    """Encode, decode, encode text, and run one round's masked denoise.

    Images cross the boundary as float ``[1,H,W,3]`` in 0..1 on the CPU; latents are whatever the backend
    uses (the engine only blends them linearly) and keep their device.
    """

    vae_scale_factor: int

    def encode_image(self, image: torch.Tensor, *, sample_seed: int | None = None) -> torch.Tensor:
        """Pixels ``[1,H,W,3]`` -> latents ``[1,C,h,w]``: the posterior mode, or with ``sample_seed`` a seeded
        sample from the posterior (a backend that cannot sample raises ``MVGInputError``)."""

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> pixels ``[1,H,W,3]`` float32 in 0..1 on the CPU."""

    def count_tokens(self, text: str) -> int:
        """How many text tokens (without start/end) the backend's tokenizer makes of ``text``."""

    def encode_prompt(self, prompt: str, negative_prompt: str) -> TextConditioning:
        """Text conditioning for one stage (encoded once per stage, reused by all its rounds). The engine
        has already cut both texts to ``MAX_PROMPT_TOKENS`` tokens."""

    def denoise(
        self,
        start: torch.Tensor,
        original: torch.Tensor,
        mask: torch.Tensor,
        text: TextConditioning,
        spec: RoundSpec,
        callback: StepCallback | None = None,
    ) -> torch.Tensor:
        """One PIE round's masked img2img from ``start`` toward ``text``; returns the last latents.

        Noise the WHOLE of ``start`` with ``spec.noise`` to the level of step ``S - n`` of the ``S =
        spec.steps`` schedule and run its last ``n = spec.denoise_steps`` steps with classifier-free
        guidance ``spec.guidance`` (``uncond + g·(cond − uncond)`` for every g ≥ 0; g = 1 runs the
        conditional pass only). The first model call sees the noised ``start`` everywhere; before every
        later model call the region outside the mask is re-anchored to the original re-noised to that
        call's level, ``z = mask*z + (1-mask)*noised(original, spec.anchor_noise, t)``. ``mask`` is
        ``[1,1,h,w]`` on the latent grid. The region outside the mask of the returned latents does not
        matter: the engine replaces it with ``original``.
        """

    def model_files(self) -> list[str]:
        """Weight files this backend loaded (for provenance hashes); may be empty."""
