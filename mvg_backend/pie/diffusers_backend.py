"""PIE backend over diffusers components: UNet2DConditionModel + scheduler + AutoencoderKL + CLIP."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from ..errors import MVGInputError
from .backend import StepCallback, denoising_steps

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def make_scheduler(name: str, base: Any) -> Any:
    """A scheduler of kind ``name`` (see ``SCHEDULERS``) with the noise schedule of ``base``."""
    import diffusers

    if name not in SCHEDULERS:
        raise MVGInputError(f"scheduler {name!r} is not supported; choose one of {sorted(SCHEDULERS)}.")
    return getattr(diffusers, SCHEDULERS[name]).from_config(base.config)


class DiffusersBackend:
    """Runs the PIE round on diffusers components.

    Build it from components, from a loaded pipeline (:meth:`from_pipeline`), a diffusers folder
    (:meth:`from_pretrained`) or an original-layout SD 1.x single file (:meth:`from_single_file`); the
    loaders live in :mod:`mvg_backend.pie.loading`.
    """

    def __init__(self, unet: Any, vae: Any, text_encoder: Any, tokenizer: Any, scheduler: Any,
                 *, files: list[str] | None = None) -> None:
        self.unet = unet.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder.eval()
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.files = list(files or [])
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        params = inspect.signature(scheduler.step).parameters
        self._step_takes_generator = "generator" in params
        if unet.config.in_channels != vae.config.latent_channels:
            raise MVGInputError(
                f"the UNet takes {unet.config.in_channels} input channels but the VAE makes "
                f"{vae.config.latent_channels}: an inpainting or non-SD1.x UNet? Use a standard SD 1.x UNet."
            )

    @classmethod
    def from_pipeline(cls, pipe: Any, *, scheduler: str | None = None, files: list[str] | None = None) -> "DiffusersBackend":
        sched = make_scheduler(scheduler, pipe.scheduler) if scheduler else pipe.scheduler
        return cls(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, sched, files=files)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> "DiffusersBackend":
        """Load a local diffusers-format SD 1.x folder; see :func:`loading.load_pretrained`."""
        from .loading import load_pretrained

        return load_pretrained(folder, **kwargs)

    @classmethod
    def from_single_file(cls, path: str | Path, **kwargs: Any) -> "DiffusersBackend":
        """Load an original-layout SD 1.x ``.safetensors``; see :func:`loading.load_single_file`."""
        from .loading import load_single_file

        return load_single_file(path, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def model_files(self) -> list[str]:
        return list(self.files)

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(self.device, self.vae.dtype) * 2 - 1
        latents = self.vae.encode(x).latent_dist.mode()
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return ((latents - shift) * self.vae.config.scaling_factor).float()

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        z = latents.to(self.device, self.vae.dtype) / self.vae.config.scaling_factor + shift
        image = self.vae.decode(z).sample
        return ((image.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu()

    @torch.no_grad()
    def _embed(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0].to(self.dtype)

    def encode_prompt(self, prompt: str, negative_prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(negative, positive)`` CLIP last hidden states ``[1,77,D]``."""
        return self._embed(negative_prompt), self._embed(prompt)

    @torch.no_grad()
    def denoise(self, start: torch.Tensor, original: torch.Tensor, mask: torch.Tensor,
                cond: tuple[torch.Tensor, torch.Tensor], *, strength: float, steps: int, guidance: float,
                seed: int, callback: StepCallback | None = None) -> torch.Tensor:
        sched = self.scheduler
        sched.set_timesteps(steps, device=self.device)
        n = denoising_steps(strength, steps)
        begin = (steps - n) * sched.order
        timesteps = sched.timesteps[begin:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(begin)

        generator = torch.Generator("cpu").manual_seed(int(seed))
        dtype = self.dtype
        noise = torch.randn(start.shape, generator=generator, dtype=torch.float32).to(self.device, dtype)
        start, original, mask = (t.to(self.device, dtype) for t in (start, original, mask))
        latents = sched.add_noise(start, noise * mask, timesteps[:1])

        negative, positive = cond
        use_cfg = guidance > 1.0
        context = torch.cat([negative, positive]) if use_cfg else positive
        step_kwargs = {"generator": generator} if self._step_takes_generator else {}
        for i, t in enumerate(timesteps):
            if i > 0:
                latents = mask * latents + (1 - mask) * sched.add_noise(original, noise, t.reshape(1))
            model_input = torch.cat([latents] * 2) if use_cfg else latents
            model_input = sched.scale_model_input(model_input, t)
            eps = self.unet(model_input, t, encoder_hidden_states=context).sample
            if use_cfg:
                eps_uncond, eps_text = eps.chunk(2)
                eps = eps_uncond + guidance * (eps_text - eps_uncond)
            latents = sched.step(eps, t, latents, **step_kwargs).prev_sample
            if callback is not None:
                callback(i + 1, len(timesteps))
        return (mask * latents + (1 - mask) * original).float()
