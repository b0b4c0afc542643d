"""SD 1.x's VAE and CLIP text encoder as diffusers/transformers parts, shared by the PIE and SEINE backends.

Pixels cross as float ``[N,H,W,3]`` in 0..1; latents are the VAE's, times ``scale`` after subtracting
``shift`` (SD 1.x: 0.18215 and 0). :func:`fit_prompt` cuts a prompt to what one CLIP context holds, for both
engines and every backend (anything with ``count_tokens(text)``).

Precision policy: SD's VAE overflows in fp16 (the decoder's activations pass 65504 at 512 px and above, and
the frames come out NaN or black), so an fp16 VAE is upcast to float32 in place before its first use
(:func:`upcast_fp16_vae`, as diffusers' ``force_upcast``); a VAE whose config says ``force_upcast=False`` (an
fp16-safe VAE) stays fp16. bf16 has fp32's exponent range and stays bf16. Latents always cross as float32.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


def vae_scale_shift(vae: Any) -> tuple[float, float]:
    """``(scaling_factor, shift_factor)`` from a diffusers ``AutoencoderKL`` config."""
    return float(vae.config.scaling_factor), float(getattr(vae.config, "shift_factor", None) or 0.0)


def vae_compute_dtype(vae: Any) -> torch.dtype:
    """The dtype the VAE runs in under the policy above: float32 for an fp16 VAE (unless it is fp16-safe)."""
    dtype = vae.dtype
    if dtype == torch.float16 and getattr(vae.config, "force_upcast", True):
        return torch.float32
    return dtype


def upcast_fp16_vae(vae: Any) -> Any:
    """Cast an fp16 VAE to float32 in place (once) unless its config declares it fp16-safe; returns it."""
    if vae_compute_dtype(vae) != vae.dtype:
        vae.to(torch.float32)
    return vae


@torch.no_grad()
def vae_encode(vae: Any, images: torch.Tensor, *, scale: float, shift: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixels -> latents (float32): the posterior mode, or a sample drawn with ``generator``."""
    # contiguous NCHW: on a channels-last view the GroupNorm of a flat (grey) image is ill-conditioned and
    # its latents would depend on what else is in the batch
    upcast_fp16_vae(vae)
    x = images.permute(0, 3, 1, 2).contiguous().to(vae.device, vae.dtype) * 2 - 1
    posterior = vae.encode(x).latent_dist
    latents = posterior.mode() if generator is None else posterior.sample(generator=generator)
    return ((latents.float() - shift) * scale).float()


@torch.no_grad()
def vae_decode(vae: Any, latents: torch.Tensor, *, scale: float, shift: float = 0.0) -> torch.Tensor:
    """Latents -> pixels ``[N,H,W,3]`` float32 in 0..1 on the CPU; an fp16 VAE decodes in float32 (see above)."""
    upcast_fp16_vae(vae)
    images = vae.decode((latents / scale + shift).to(vae.device, vae.dtype)).sample
    return ((images.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu()


@torch.no_grad()
def clip_last_hidden_state(tokenizer: Any, text_encoder: Any, text: str) -> torch.Tensor:
    """CLIP's last hidden state (after the final LayerNorm) for ``text`` padded/cut to the context, ``[1,77,D]``."""
    ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return text_encoder(ids.to(text_encoder.device)).last_hidden_state


def count_text_tokens(tokenizer: Any, text: str) -> int:
    """Text tokens of ``text`` without the start and end tokens."""
    return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids)


MAX_PROMPT_TOKENS = 75
"""Text tokens that fit one CLIP context (77 positions minus the start and end tokens)."""


class TokenCounter(Protocol):
    def count_tokens(self, text: str) -> int:
        """Text tokens (without start/end) the backend's tokenizer makes of ``text``."""


def fit_prompt(backend: TokenCounter, text: str) -> tuple[str, int, str]:
    """``(kept, tokens, dropped)``: ``text`` cut to the longest run of whole words that fits one CLIP context
    (``MAX_PROMPT_TOKENS``), as the backend then sees it; ``dropped`` is empty when all of it fits."""
    tokens = int(backend.count_tokens(text))
    if tokens <= MAX_PROMPT_TOKENS:
        return text, tokens, ""
    words = text.split()
    lo, hi = 0, len(words)  # the largest k whose first k words fit
    while lo < hi:
        k = (lo + hi + 1) // 2
        if backend.count_tokens(" ".join(words[:k])) <= MAX_PROMPT_TOKENS:
            lo = k
        else:
            hi = k - 1
    return " ".join(words[:lo]), tokens, " ".join(words[lo:])


def prompt_cut_note(what: str, tokens: int, kept: str, dropped: str) -> str:
    """The summary's sentence for a prompt :func:`fit_prompt` cut."""
    return (f"the {what} has {tokens} CLIP tokens, more than the {MAX_PROMPT_TOKENS} that fit; it was cut after "
            f"'{' '.join(kept.split()[-3:])}', dropping '{dropped}'.")
