"""PIE backend over ComfyUI's MODEL/CLIP/VAE: each round is one ``comfy.sample.sample_custom`` call.

The schedule is ComfyUI's own: the full ``steps``-step sigmas of the chosen scheduler (as KSampler builds
them for the chosen sampler), of which the round runs the last ``n + 1`` (``n = ceil(γ·steps)``). That
is the S-step schedule cut to its low-noise end, as in the diffusers backend and the reference; KSampler's
``denoise=γ`` would instead spread ``n`` steps over an ``int(n/γ)``-step schedule, which often starts at
another noise level.

Re-anchoring uses ComfyUI's inpainting wrapper (``KSamplerX0Inpaint``): before a model call it replaces
the region outside ``noise_mask`` with ``latent_image + σ·noise``, and afterwards it puts ``latent_image``
into the denoised prediction there. This backend hands that wrapper the original's latents and the
engine's anchor noise, and lets the first model call through unmasked (the reference does not re-anchor
the first step), while the sampler starts from the round's start latents noised with the engine's noise.
"""

from __future__ import annotations

from typing import Any

import torch

import comfy.sample
import comfy.samplers

from ..mvg_backend.errors import MVGInputError
from ..mvg_backend.pie.backend import RoundSpec, StepCallback, TextConditioning


def count_clip_tokens(clip: Any, text: str) -> int:
    """Text tokens a ComfyUI CLIP's tokenizer makes of ``text`` (its weight syntax applies), without
    start/end/padding; the most over its tokenizers (SD 1.x has one). Used by the PIE and SEINE backends."""
    special = set()
    for tokenizer in vars(clip.tokenizer).values():
        special |= {getattr(tokenizer, k, None) for k in ("start_token", "end_token", "pad_token")}
    special.discard(None)
    counts = [sum(1 for chunk in chunks for token in chunk if token[0] not in special)
              for chunks in clip.tokenize(text).values()]
    return max(counts, default=0)


def round_sigmas(model: Any, sampler_name: str, scheduler: str, steps: int, denoise_steps: int) -> torch.Tensor:
    """The sigmas one round runs: the last ``denoise_steps + 1`` of ComfyUI's full ``steps``-step schedule."""
    full = comfy.samplers.KSampler(model, steps=steps, device="cpu", sampler=sampler_name, scheduler=scheduler,
                                   denoise=1.0, model_options=model.model_options).sigmas.cpu()
    return full[-(denoise_steps + 1):]


class _AnchoredCalls:
    """Stands between a ComfyUI sampler function and its ``KSamplerX0Inpaint`` model (everything else is
    delegated): points the re-anchoring at the original and the anchor noise, and lets the first call
    through without the mask."""

    def __init__(self, model_k: Any, original: torch.Tensor, anchor_noise: torch.Tensor) -> None:
        self._model_k = model_k
        base_model = model_k.inner_model.inner_model  # CFGGuider -> BaseModel
        like = model_k.latent_image
        model_k.latent_image = base_model.process_latent_in(original.to(like.device, like.dtype))
        model_k.noise = anchor_noise.to(like.device, like.dtype)
        self._calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, denoise_mask: Any = None, **kwargs: Any) -> Any:
        first = self._calls == 0
        self._calls += 1
        return self._model_k(x, sigma, denoise_mask=None if first else denoise_mask, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model_k, name)


def pie_sampler(sampler_name: str, original: torch.Tensor, anchor_noise: torch.Tensor) -> Any:
    """ComfyUI's sampler ``sampler_name`` (``ddim`` is its Euler step) with PIE's re-anchoring."""
    inner = comfy.samplers.sampler_object("euler" if sampler_name == "ddim" else sampler_name)
    function = inner.sampler_function

    def sampler_function(model_k: Any, x: torch.Tensor, sigmas: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return function(_AnchoredCalls(model_k, original, anchor_noise), x, sigmas, *args, **kwargs)

    return comfy.samplers.KSAMPLER(sampler_function, extra_options=inner.extra_options, inpaint_options={})


class ComfyBackend:
    """Implements ``mvg_backend.pie.PIEBackend`` with a ComfyUI MODEL, CLIP and VAE."""

    def __init__(self, model: Any, clip: Any, vae: Any, sampler_name: str, scheduler: str) -> None:
        for what, value, options in (("sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS),
                                     ("scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS)):
            if value not in options:
                raise MVGInputError(f"{what}={value!r} is not one of this ComfyUI's: {list(options)}.")
        self.model, self.clip, self.vae = model, clip, vae
        self.sampler_name, self.scheduler = sampler_name, scheduler
        self.vae_scale_factor = int(vae.spacial_compression_encode())

    def model_files(self) -> list[str]:
        return []

    def encode_image(self, image: torch.Tensor, *, sample_seed: int | None = None) -> torch.Tensor:
        if sample_seed is not None:
            raise MVGInputError("posterior='sample': ComfyUI's VAE encode gives the posterior mode only.")
        return self.vae.encode(image[..., :3])

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents)[..., :3].float().cpu()

    def count_tokens(self, text: str) -> int:
        return count_clip_tokens(self.clip, text)

    def encode_prompt(self, prompt: str, negative_prompt: str) -> TextConditioning:
        encode = self.clip.encode_from_tokens_scheduled
        return TextConditioning(positive=encode(self.clip.tokenize(prompt)),
                                negative=encode(self.clip.tokenize(negative_prompt)))

    def denoise(self, start: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, text: TextConditioning,
                spec: RoundSpec, callback: StepCallback | None = None) -> torch.Tensor:
        sigmas = round_sigmas(self.model, self.sampler_name, self.scheduler, spec.steps, spec.denoise_steps)
        sampler = pie_sampler(self.sampler_name, original, spec.anchor_noise)

        def on_step(step: int, _x0: Any, _x: Any, total: int) -> None:
            if callback is not None:
                callback(step + 1, total)

        samples = comfy.sample.sample_custom(
            self.model, spec.noise, spec.guidance, sampler, sigmas, text.positive, text.negative, start,
            noise_mask=mask, callback=on_step, disable_pbar=True, seed=spec.seed,
        )
        return samples.to(original.device, original.dtype)
