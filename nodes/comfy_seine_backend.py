"""SEINE backend over ComfyUI's VAE and CLIP objects and a ``ModelPatcher``-wrapped SEINE UNet.

- ``vae.encode([B,H,W,3])`` returns *unscaled* SD latents: SEINE's 0.18215 is applied here (and undone
  before ``vae.decode``).
- ``clip.encode_from_tokens(tokens)`` returns, for SD 1.x by default (layer "last"), CLIP's final layer
  after the final LayerNorm: the ``last_hidden_state`` SEINE was trained on. ``CLIPSetLastLayer(-2)`` and
  below switch it to an earlier layer (still LayerNorm'd); such a clip-skip is undone for SEINE and noted.
- ``count_tokens`` counts with the CLIP's own tokenizer (as the PIE backend does), so the engine cuts a long
  prompt to whole words that fit one context and the summary says what was dropped.
- The network is loaded with ``comfy.model_management.load_models_gpu(..., force_full_load=True)`` right
  before sampling, after the VAE and CLIP calls that may have evicted it.
"""

from __future__ import annotations

from typing import Any

import comfy.model_management
import torch

from ..mvg_backend.seine.backend import LATENT_SCALE
from .comfy_backend import count_clip_tokens

CLIP_TOKENS = 77


class ComfySEINEBackend:
    """Implements ``mvg_backend.seine.SEINEBackend`` with ComfyUI objects."""

    def __init__(self, vae: Any, clip: Any, patcher: Any, model_summary: str = "") -> None:
        self.notes: list[str] = [model_summary] if model_summary else []
        skip = getattr(clip, "layer_idx", None)
        if skip is not None and skip != -1:
            clip = clip.clone()
            clip.clip_layer(None)
            self.notes.append(
                f"the CLIP has a clip-skip (CLIPSetLastLayer {skip}); SEINE was trained on CLIP's last layer, "
                "so it gets the last layer."
            )
        self.vae, self.clip, self.patcher = vae, clip, patcher

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(frames[..., :3]) * LATENT_SCALE

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents / LATENT_SCALE)[..., :3].float().cpu()

    def count_tokens(self, text: str) -> int:
        return count_clip_tokens(self.clip, text)

    def encode_text(self, text: str) -> torch.Tensor:
        cond = self.clip.encode_from_tokens(self.clip.tokenize(text))
        if cond.shape[1] > CLIP_TOKENS:
            self.notes.append(f"the prompt is longer than CLIP's {CLIP_TOKENS} tokens: SEINE reads the first "
                              f"{CLIP_TOKENS}, as its own text encoder does.")
        return cond[:, :CLIP_TOKENS]

    def prepare_unet(self) -> torch.nn.Module:
        comfy.model_management.load_models_gpu([self.patcher], force_full_load=True)
        return self.patcher.model
