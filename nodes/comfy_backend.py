"""PIE backend over ComfyUI's MODEL/CLIP/VAE: each round is one ``comfy.sample.sample`` call.

ComfyUI's sampler already re-anchors the latents outside ``noise_mask`` to ``latent_image + σ·noise``
before every model call (``KSamplerX0Inpaint``), so the start latent is anchored to the original
outside the ROI and the mask is passed as ``noise_mask``.
"""

from __future__ import annotations

from typing import Any

import torch

import comfy.sample

from ..mvg_backend.pie.backend import StepCallback, denoising_steps


class ComfyBackend:
    """Implements ``mvg_backend.pie.PIEBackend`` with a ComfyUI MODEL, CLIP and VAE."""

    def __init__(self, model: Any, clip: Any, vae: Any, sampler_name: str, scheduler: str) -> None:
        self.model, self.clip, self.vae = model, clip, vae
        self.sampler_name, self.scheduler = sampler_name, scheduler
        self.vae_scale_factor = int(vae.spacial_compression_encode())

    def model_files(self) -> list[str]:
        return []

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image[..., :3])

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents)[..., :3].float().cpu()

    def encode_prompt(self, prompt: str, negative_prompt: str) -> tuple[Any, Any]:
        """``(positive, negative)`` CONDITIONING."""
        encode = self.clip.encode_from_tokens_scheduled
        return encode(self.clip.tokenize(prompt)), encode(self.clip.tokenize(negative_prompt))

    def denoise(self, start: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, cond: tuple[Any, Any], *,
                strength: float, steps: int, guidance: float, seed: int,
                callback: StepCallback | None = None) -> torch.Tensor:
        positive, negative = cond
        latent_image = mask * start + (1 - mask) * original
        noise = comfy.sample.prepare_noise(latent_image, seed)
        n = denoising_steps(strength, steps)

        def on_step(step: int, _x0: Any, _x: Any, total: int) -> None:
            if callback is not None:
                callback(step + 1, total)

        # KSampler spreads ``n`` steps over int(n / strength) and runs the last n: the noise level the
        # diffusers backend starts from, with the same number of model calls.
        samples = comfy.sample.sample(
            self.model, noise, n, guidance, self.sampler_name, self.scheduler, positive, negative, latent_image,
            denoise=strength, noise_mask=mask, callback=on_step, disable_pbar=True, seed=seed,
        )
        samples = samples.to(original.device, original.dtype)
        return mask * samples + (1 - mask) * original
