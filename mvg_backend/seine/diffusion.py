"""The diffusion SEINE was trained with (ADM's Gaussian diffusion) and its two samplers, DDPM and DDIM.

- 1000 training steps, linear betas from 1e-4 to 0.02 (not SD's "scaled_linear"), epsilon prediction.
- Sampling with N steps keeps N of the 1000 timesteps (ADM "respacing", about ``round(i·999/(N−1))``) and
  re-derives the betas between kept steps from the cumulative alphas, so each step jumps the right amount.
- DDPM (the official default, 250 steps) draws ``x_{t-1} ~ N(posterior mean, β_t)``: ADM's "fixed large"
  variance, no clipping of the predicted ``x0``. DDIM (eta 0) is deterministic on the same timesteps.
- Classifier-free guidance: one batched call on ``[cond; uncond]`` text with identical mask and
  masked-video channels, ``eps = uncond + cfg·(cond − uncond)``.

:func:`sample` is the sampler, with everything passed in (network, initial noise, conditioning, generator),
so a run can be replayed step for step against the official code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MVGInputError

NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02
SAMPLERS = ("ddpm", "ddim")

StepCallback = Callable[[int, int], None]
"""``callback(steps_done, steps_total)`` after every model step; raise from it to cancel."""


def respaced_timesteps(steps: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """The training timesteps ADM keeps for ``steps`` sampling steps, ascending: about ``round(i·(T−1)/(N−1))``.

    As in ADM, the position advances by the fractional stride ``(T−1)/(N−1)`` (summed, not multiplied)
    and Python's ``round`` picks the step. The float sum lands just below some exact halves, so for 283 of
    the 1000 possible N a step differs from the multiplied formula (N=21 keeps 499, not 500); this is
    the official sampler's choice.
    """
    if not 1 <= steps <= num_train_timesteps:
        raise MVGInputError(f"steps={steps}: use 1..{num_train_timesteps} sampling steps (the official run uses 250).")
    stride = 1.0 if steps == 1 else (num_train_timesteps - 1) / (steps - 1)
    kept, position = [], 0.0
    for _ in range(steps):
        kept.append(round(position))
        position += stride
    return kept


@dataclass(frozen=True)
class RespacedSchedule:
    """ADM's linear schedule restricted to ``timesteps`` (float64, ascending; index 0 is the last step)."""

    timesteps: np.ndarray
    alphas_cumprod: np.ndarray
    alphas_cumprod_prev: np.ndarray

    @classmethod
    def create(cls, steps: int) -> RespacedSchedule:
        betas = np.linspace(BETA_START, BETA_END, NUM_TRAIN_TIMESTEPS, dtype=np.float64)
        timesteps = np.array(respaced_timesteps(steps))
        alphas_cumprod = np.cumprod(1.0 - betas)[timesteps]
        return cls(timesteps, alphas_cumprod, np.append(1.0, alphas_cumprod[:-1]))

    @property
    def betas(self) -> np.ndarray:
        """The respaced betas: one step from a kept timestep to the previous kept one."""
        return 1.0 - self.alphas_cumprod / self.alphas_cumprod_prev

    def predict_x0(self, i: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``x0 = (x − √(1−ᾱ)·eps) / √ᾱ`` at step index ``i`` (written as ADM does, in two float64 factors)."""
        acp = self.alphas_cumprod[i]
        return float(np.sqrt(1.0 / acp)) * x - float(np.sqrt(1.0 / acp - 1.0)) * eps

    def ddpm_step(self, i: int, x: torch.Tensor, eps: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """``x_{t-1}`` = posterior mean of ``q(x_{t-1} | x_t, x0)`` + ``√β_t``·noise (none at the last step)."""
        acp, acp_prev, beta = self.alphas_cumprod[i], self.alphas_cumprod_prev[i], self.betas[i]
        coef_x0 = beta * np.sqrt(acp_prev) / (1.0 - acp)
        coef_xt = (1.0 - acp_prev) * np.sqrt(1.0 - beta) / (1.0 - acp)
        mean = float(coef_x0) * self.predict_x0(i, x, eps) + float(coef_xt) * x
        return mean if noise is None else mean + float(np.sqrt(beta)) * noise

    def ddim_step(self, i: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Deterministic DDIM (eta 0): ``x_{t-1} = √ᾱ_prev·x0 + √(1−ᾱ_prev)·eps``."""
        acp_prev = self.alphas_cumprod_prev[i]
        return float(np.sqrt(acp_prev)) * self.predict_x0(i, x, eps) + float(np.sqrt(1.0 - acp_prev)) * eps


def _check_inputs(noise: torch.Tensor, mask: torch.Tensor, masked_video: torch.Tensor, cond: torch.Tensor,
                  uncond: torch.Tensor | None, sampler: str, generator: torch.Generator | None) -> None:
    if sampler not in SAMPLERS:
        raise MVGInputError(f"sampler {sampler!r}: use one of {SAMPLERS} (the official run uses ddpm).")
    if sampler == "ddpm" and generator is None:
        raise MVGInputError("the ddpm sampler draws noise at every step: pass a seeded torch.Generator.")
    if noise.ndim != 5:
        raise MVGInputError(f"initial noise must be [batch, channels, frames, h, w], got {tuple(noise.shape)}.")
    b, _, f, h, w = noise.shape
    if tuple(mask.shape) != (b, 1, f, h, w) or tuple(masked_video.shape) != tuple(noise.shape):
        raise MVGInputError(
            f"mask {tuple(mask.shape)} / masked-video latents {tuple(masked_video.shape)} do not fit the noise "
            f"{tuple(noise.shape)}: expected [{b}, 1, {f}, {h}, {w}] and the noise's shape."
        )
    for name, text in (("cond", cond), ("uncond", uncond)):
        if text is not None and (text.ndim != 3 or text.shape[0] != b):
            raise MVGInputError(f"{name} text embeddings must be [{b}, tokens, dim], got {tuple(text.shape)}.")


@torch.no_grad()
def sample(unet: torch.nn.Module, noise: torch.Tensor, mask: torch.Tensor, masked_video: torch.Tensor,
           cond: torch.Tensor, uncond: torch.Tensor | None, *, steps: int = 250, cfg: float = 8.0,
           sampler: str = "ddpm", generator: torch.Generator | None = None,
           callback: StepCallback | None = None) -> torch.Tensor:
    """Denoise ``noise`` into SEINE latents; returns float32 ``[b, 4, f, h, w]`` (scaled by 0.18215).

    ``noise`` is the initial ``x_T``; ``mask [b, 1, f, h, w]`` is 1 on frames to generate; ``masked_video``
    holds the known frames' latents (unknown frames: the latents of a mid-grey frame). ``cond``/``uncond`` are
    CLIP last hidden states ``[b, 77, 768]``; ``uncond=None`` runs without guidance. DDPM draws
    ``torch.randn`` from ``generator`` at every step but the last, shaped like the batch the network sees
    (``2b`` with guidance, of which the first ``b`` are used, as in the official sampler), so a run seeded
    like the official one replays it.
    """
    _check_inputs(noise, mask, masked_video, cond, uncond, sampler, generator)
    schedule = RespacedSchedule.create(steps)
    device = noise.device
    guided = uncond is not None
    conditioning, context = torch.cat([mask, masked_video], dim=1).float(), cond
    if guided:  # one batched call: [cond; uncond] text, identical mask and masked-video channels
        conditioning, context = torch.cat([conditioning, conditioning]), torch.cat([cond, uncond])
    x = noise.float()
    for n, i in enumerate(reversed(range(steps))):
        t = int(schedule.timesteps[i])
        model_input = torch.cat([torch.cat([x, x]) if guided else x, conditioning], dim=1)
        timesteps = torch.full((model_input.shape[0],), t, device=device, dtype=torch.long)
        eps = unet(model_input, timesteps, context).float()
        if guided:
            eps_cond, eps_uncond = eps.chunk(2)
            eps = eps_uncond + cfg * (eps_cond - eps_uncond)
        if sampler == "ddim":
            x = schedule.ddim_step(i, x, eps)
        else:
            step_noise = None
            if i > 0:
                shape = (model_input.shape[0], *x.shape[1:])
                step_noise = torch.randn(shape, generator=generator, device=generator.device)[: x.shape[0]].to(device)
            x = schedule.ddpm_step(i, x, eps, step_noise)
        if callback is not None:
            callback(n + 1, steps)
    return x
