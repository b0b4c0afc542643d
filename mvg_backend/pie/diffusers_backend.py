"""PIE backend over diffusers components: UNet2DConditionModel + scheduler + AutoencoderKL + CLIP."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import MVGInputError
from ..sd_parts import clip_last_hidden_state, count_text_tokens, vae_decode, vae_encode, vae_scale_shift
from .backend import RoundSpec, StepCallback, TextConditioning
from .schedulers import check_scheduler_class, make_scheduler, round_timesteps

_INT_TIMESTEP_SCHEDULERS = ("DDIMScheduler", "DDPMScheduler", "PNDMScheduler")

if TYPE_CHECKING:
    from .loading import SDComponents


class DiffusersBackend:
    """Runs the PIE round on diffusers components.

    Build it from components (the constructor, or :meth:`from_components` with what a loader in
    :mod:`mvg_backend.pie.loading` returns), from a loaded pipeline (:meth:`from_pipeline`), a diffusers
    folder (:meth:`from_pretrained`) or an original-layout SD 1.x single file (:meth:`from_single_file`).

    Precision: the UNet and text encoder run in their own dtype (fp16/bf16/fp32); latents, the scheduler and
    the engine's blends stay float32. An fp16 VAE is upcast to fp32 (see :func:`~mvg_backend.sd_parts.vae_decode`).
    ``compile=True`` runs the UNet through ``torch.compile`` (compiled on the first round; worth it on a GPU
    for long runs, see ``bench/device.py``).
    """

    def __init__(self, unet: Any, vae: Any, text_encoder: Any, tokenizer: Any, scheduler: Any,
                 *, files: list[str] | None = None, compile: bool = False) -> None:
        check_scheduler_class(scheduler)
        self.unet = unet.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder.eval()
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.files = list(files or [])
        self.compile = bool(compile)
        self._compiled: Any = None
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self._step_takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        if unet.config.in_channels != vae.config.latent_channels:
            raise MVGInputError(
                f"the UNet takes {unet.config.in_channels} input channels but the VAE makes "
                f"{vae.config.latent_channels}: an inpainting or non-SD1.x UNet? Use a standard SD 1.x UNet."
            )

    @classmethod
    def from_components(cls, parts: SDComponents, *, scheduler: str | None = None,
                        compile: bool = False) -> DiffusersBackend:
        """From loaded components; ``scheduler`` (a name in ``SCHEDULERS``) replaces their scheduler's kind."""
        sched = make_scheduler(scheduler, parts.scheduler) if scheduler else parts.scheduler
        return cls(parts.unet, parts.vae, parts.text_encoder, parts.tokenizer, sched, files=parts.files,
                   compile=compile)

    @classmethod
    def from_pipeline(cls, pipe: Any, *, scheduler: str | None = None, files: list[str] | None = None,
                      compile: bool = False) -> DiffusersBackend:
        sched = make_scheduler(scheduler, pipe.scheduler) if scheduler else pipe.scheduler
        return cls(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, sched, files=files, compile=compile)

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, scheduler: str = "ddim", compile: bool = False,
                        **kwargs: Any) -> DiffusersBackend:
        """Load a local diffusers-format SD 1.x folder; see :func:`loading.load_pretrained`."""
        from .loading import load_pretrained

        return cls.from_components(load_pretrained(folder, **kwargs), scheduler=scheduler, compile=compile)

    @classmethod
    def from_single_file(cls, path: str | Path, *, scheduler: str = "ddim", compile: bool = False,
                         **kwargs: Any) -> DiffusersBackend:
        """Load an original-layout SD 1.x ``.safetensors``; see :func:`loading.load_single_file`."""
        from .loading import load_single_file

        return cls.from_components(load_single_file(path, **kwargs), scheduler=scheduler, compile=compile)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def model_files(self) -> list[str]:
        return list(self.files)

    def encode_image(self, image: torch.Tensor, *, sample_seed: int | None = None) -> torch.Tensor:
        generator = None if sample_seed is None else torch.Generator("cpu").manual_seed(int(sample_seed))
        scale, shift = vae_scale_shift(self.vae)
        return vae_encode(self.vae, image, scale=scale, shift=shift, generator=generator)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        scale, shift = vae_scale_shift(self.vae)
        return vae_decode(self.vae, latents, scale=scale, shift=shift)

    def count_tokens(self, text: str) -> int:
        return count_text_tokens(self.tokenizer, text)

    def _embed(self, text: str) -> torch.Tensor:
        return clip_last_hidden_state(self.tokenizer, self.text_encoder, text).to(self.device, self.dtype)

    def encode_prompt(self, prompt: str, negative_prompt: str) -> TextConditioning:
        """CLIP last hidden states ``[1,77,D]`` of both texts."""
        return TextConditioning(positive=self._embed(prompt), negative=self._embed(negative_prompt))

    @torch.no_grad()
    def denoise(self, start: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, text: TextConditioning,
                spec: RoundSpec, callback: StepCallback | None = None) -> torch.Tensor:
        """One round (see :class:`~.backend.PIEBackend`). Latents and the scheduler's arithmetic stay float32;
        only the UNet runs in the model's dtype. Everything the loop needs is put on the device before it, so
        the loop itself makes no host-device copy (``bench/device.py`` counts them on a GPU)."""
        sched = self.scheduler
        device, dtype = self.device, self.dtype
        # DDIM/DDPM/PNDM index their tables with the timestep: a Python int does that without a device sync
        # (a 0-d device tensor would be read back to the host at every step); the others count steps themselves
        # and keep their schedule on the device
        if type(sched).__name__ in _INT_TIMESTEP_SCHEDULERS:
            timesteps = round_timesteps(sched, spec.steps, spec.denoise_steps)
            steps_as_int: list[Any] = timesteps.tolist()
            timesteps = timesteps.to(device)
        else:
            timesteps = round_timesteps(sched, spec.steps, spec.denoise_steps, device=device)
            steps_as_int = list(timesteps)
        noise, anchor_noise, start, original, mask = (
            t.to(device, torch.float32) for t in (spec.noise, spec.anchor_noise, start, original, mask))
        latents = sched.add_noise(start, noise, timesteps[:1])  # the whole latent, as the reference

        use_cfg = not math.isclose(spec.guidance, 1.0)  # g = 1 is the conditional pass alone
        context = torch.cat([text.negative, text.positive]) if use_cfg else text.positive
        context = context.to(device, dtype)
        step_kwargs = {"generator": self._step_generator(spec)} if self._step_takes_generator else {}
        unet = self.unet_forward
        for i, (t, t_step) in enumerate(zip(timesteps, steps_as_int)):
            if i > 0:
                latents = mask * latents + (1 - mask) * sched.add_noise(original, anchor_noise, t.reshape(1))
            model_input = torch.cat([latents] * 2) if use_cfg else latents
            model_input = sched.scale_model_input(model_input, t_step)
            eps = unet(model_input.to(dtype), t, encoder_hidden_states=context).sample.float()
            if use_cfg:
                eps_uncond, eps_text = eps.chunk(2)
                eps = eps_uncond + spec.guidance * (eps_text - eps_uncond)
            latents = sched.step(eps, t_step, latents, **step_kwargs).prev_sample
            if callback is not None:  # PNDM's warm-up pair is one step: n + 1 calls report 1..n, n
                callback(min(i + 1, spec.denoise_steps), spec.denoise_steps)
        return latents.float()

    def _step_generator(self, spec: RoundSpec) -> torch.Generator:
        """The generator for a scheduler's per-step noise: the round's CPU generator on the CPU; on another device
        one on that device seeded from the round's seed, so the noise is drawn there (no copy per step)."""
        if self.device.type in ("cpu", "meta"):  # meta: shape-only runs (the tests' copy counter)
            return spec.generator
        return torch.Generator(self.device).manual_seed(int(spec.seed))

    @property
    def unet_forward(self) -> Any:
        """The UNet, or its ``torch.compile`` d version when the backend was built with ``compile=True``."""
        if not self.compile:
            return self.unet
        if self._compiled is None:
            self._compiled = torch.compile(self.unet)
        return self._compiled
