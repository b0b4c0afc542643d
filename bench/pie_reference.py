"""A reference-style PIE loop after PediaMedAI/PIE, over the same diffusers components as the engine.

``pipeline_stable_diffusion_pie.py`` is called once per round by ``run_pie.py``. Per round it tokenises and
encodes the prompt and the empty negative prompt again, runs the VAE encoder three times (the current image,
the original for the β blend, the original again for the per-step re-noised latents), runs the masked
denoising loop (the whole latent noised at the start; from the second step on the region outside the mask is
the original re-noised to the step), blends with β1/β2 in latent space, decodes once and hands the next round
an 8-bit image (as its PIL output does).

Deviations that cost nothing measurable: a seeded generator (the reference passes none), the step count from
``denoising_steps`` so that both sides make the same number of UNet calls (the reference floors γ·S; equal at
the settings benchmarked), and no PNG written per round (``run_pie.py`` saves each frame).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mvg_backend.pie import denoising_steps

PROMPT = "chest x-ray, opacity in the right lower lobe, progressing"
GUIDANCE = 7.5
BETA1, BETA2 = 0.01, 0.75
SEED = 0


@dataclass(frozen=True)
class Setting:
    steps: int
    strength: float
    rounds: int

    @property
    def unet_calls(self) -> int:
        return self.rounds * denoising_steps(self.strength, self.steps)

    @property
    def label(self) -> str:
        return f"{self.steps} steps γ{self.strength:g} R{self.rounds}"


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (image * 255).round().astype(np.uint8)


class ReferencePIE:
    """PediaMedAI/PIE's per-round work over a ``DiffusersBackend``'s parts; see the module docstring.

    ``ReferencePIE(backend)(image, mask, setting)`` returns the R frames as ``uint8 [H,W,3]`` arrays.
    """

    def __init__(self, backend: Any, *, prompt: str = PROMPT, guidance: float = GUIDANCE, beta1: float = BETA1,
                 beta2: float = BETA2, seed: int = SEED) -> None:
        self.b = backend
        self.prompt, self.guidance, self.beta1, self.beta2, self.seed = prompt, guidance, beta1, beta2, seed

    @torch.no_grad()
    def __call__(self, image: np.ndarray, mask: np.ndarray, setting: Setting) -> list[np.ndarray]:
        generator = torch.Generator().manual_seed(self.seed)
        init = to_uint8(image)
        current = init
        frames: list[np.ndarray] = []
        for _ in range(setting.rounds):
            current = self._round(current, init, mask, setting, generator)
            frames.append(current)
        return frames

    def _encode_prompt(self, prompt: str) -> torch.Tensor:
        tok, text_encoder = self.b.tokenizer, self.b.text_encoder
        ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        untruncated = tok(prompt, padding="longest", return_tensors="pt").input_ids
        if untruncated.shape[-1] > ids.shape[-1]:
            print(f"reference: prompt truncated to {tok.model_max_length} tokens", file=sys.stderr)
        positive = text_encoder(ids)[0]
        uncond = tok([""], padding="max_length", max_length=ids.shape[-1], truncation=True, return_tensors="pt")
        negative = text_encoder(uncond.input_ids)[0]
        return torch.cat([negative, positive])

    def _encode(self, image_u8: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        h, w = image_u8.shape[:2]
        resized = np.asarray(Image.fromarray(image_u8).resize((w - w % 8, h - h % 8), Image.LANCZOS))
        pixels = torch.from_numpy(resized.astype(np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
        latents = self.b.vae.encode(pixels).latent_dist.sample(generator)
        return self.b.vae.config.scaling_factor * latents

    def _round(self, image: np.ndarray, init: np.ndarray, mask: np.ndarray, setting: Setting,
               generator: torch.Generator) -> np.ndarray:
        unet, vae, sched = self.b.unet, self.b.vae, self.b.scheduler
        context = self._encode_prompt(self.prompt)
        factor = self.b.vae_scale_factor
        mask_lat = F.interpolate(torch.from_numpy(mask)[None, None],
                                 size=(mask.shape[0] // factor, mask.shape[1] // factor), mode="bilinear")

        sched.set_timesteps(setting.steps)
        n = denoising_steps(setting.strength, setting.steps)
        timesteps = sched.timesteps[setting.steps - n:]

        latents = self._encode(image, generator)
        noise = torch.randn(latents.shape, generator=generator)  # the whole latent (prepare_latents, mask=None)
        latents = sched.add_noise(latents, noise, timesteps[:1])
        init_latents = self._encode(init, generator)
        inter = self._encode(init, generator)
        inter = sched.add_noise(inter, torch.randn(inter.shape, generator=generator), timesteps)  # [n,C,h,w]

        for i, t in enumerate(timesteps):
            if i > 0:
                latents = inter[i:i + 1] * (1 - mask_lat) + latents * mask_lat
            model_input = sched.scale_model_input(torch.cat([latents] * 2), t)
            eps = unet(model_input, t, encoder_hidden_states=context).sample
            eps_uncond, eps_text = eps.chunk(2)
            eps = eps_uncond + self.guidance * (eps_text - eps_uncond)
            latents = sched.step(eps, t, latents, eta=0.0, generator=generator).prev_sample

        delta = latents - init_latents
        latents = (init_latents + self.beta1 * delta) * (1 - mask_lat) + (init_latents + self.beta2 * delta) * mask_lat
        decoded = vae.decode(latents / vae.config.scaling_factor).sample
        frame = (decoded / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).float().numpy()
        if not np.isfinite(frame).all():
            raise FloatingPointError("reference: NaN/Inf in the decoded frame (random weights overflowed)")
        return to_uint8(frame)
