"""What the transition engine needs besides SEINE's UNet: SD 1.4's VAE and CLIP text encoder.

:class:`SEINEBackend` is the small protocol (encode frames, decode latents, encode text, provide the
network); :class:`DiffusersSEINEBackend` implements it with diffusers/transformers parts for headless use.
The ComfyUI implementation (stock VAE and CLIP objects) lives in the pack's ``nodes/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from ..errors import MVGInputError
from ..sd_parts import clip_last_hidden_state, count_text_tokens, vae_decode, vae_encode
from .loading import read_seine_checkpoint, unet_from_state_dict

LATENT_SCALE = 0.18215
"""SD 1.x's latent scaling; SEINE was trained on SD 1.4's VAE latents times this."""


class SEINEBackend(Protocol):
    """VAE, text encoder and the SEINE network, behind four calls."""

    notes: list[str]
    """For the run's summary: how the SEINE network was loaded (its architecture and where GroupNorm groups
    and eps came from), and what the backend adjusted on its own (e.g. a clip-skip it undid)."""

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Pixels ``[N,H,W,3]`` float 0..1 (CPU; H, W multiples of 8) -> latents ``[N,4,H/8,W/8]`` × 0.18215.

        Deterministic: the posterior mean (the official code samples it; its spread is negligible).
        """

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[N,4,h,w]`` (× 0.18215) -> pixels ``[N,8h,8w,3]`` float32 in 0..1 on the CPU."""

    def encode_text(self, text: str) -> torch.Tensor:
        """CLIP ViT-L/14's last hidden state after the final LayerNorm, ``[1, 77, 768]``."""

    def count_tokens(self, text: str) -> int:
        """Text tokens (without start/end) the backend's tokenizer makes of ``text``. Optional: with it the engine
        cuts a long prompt to whole words that fit one CLIP context, and the summary says what was dropped."""

    def prepare_unet(self) -> torch.nn.Module:
        """The SEINE network on its compute device, ready to run (called right before sampling)."""


class DiffusersSEINEBackend:
    """:class:`SEINEBackend` over a SEINE UNet, an ``AutoencoderKL``, a ``CLIPTextModel`` and its tokenizer."""

    def __init__(self, unet: torch.nn.Module, vae: Any, text_encoder: Any, tokenizer: Any) -> None:
        self.unet = unet.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder.eval()
        self.tokenizer = tokenizer
        self.notes: list[str] = []

    @classmethod
    def from_files(cls, seine: str | Path, sd: str | Path, *, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> DiffusersSEINEBackend:
        """SEINE from ``seine`` (see :func:`~.loading.read_seine_checkpoint`; its summary becomes the first note);
        VAE and CLIP from ``sd``: a diffusers SD 1.4 folder (``vae/``, ``text_encoder/``, ``tokenizer/``) or an
        original-layout SD 1.x single file. Offline."""
        from ..pie.loading import check_device

        check_device(device)
        checkpoint = read_seine_checkpoint(seine)
        unet = unet_from_state_dict(checkpoint.state, config=checkpoint.config, device=device, dtype=dtype,
                                    name=checkpoint.name)
        root = Path(sd).expanduser()
        if root.is_dir():
            from diffusers import AutoencoderKL
            from transformers import CLIPTextModel, CLIPTokenizer

            missing = [s for s in ("vae", "text_encoder", "tokenizer") if not (root / s).is_dir()]
            if missing:
                raise MVGInputError(f"SD 1.4 folder {str(root)!r} lacks {missing}: give a diffusers SD 1.x folder "
                                    "(a local copy of SD 1.4 in diffusers layout) or an SD 1.x .safetensors file.")
            vae = AutoencoderKL.from_pretrained(str(root / "vae"), local_files_only=True, torch_dtype=dtype)
            text_encoder = CLIPTextModel.from_pretrained(str(root / "text_encoder"), local_files_only=True, dtype=dtype)
            tokenizer = CLIPTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        else:
            from ..pie.loading import load_single_file

            parts = load_single_file(root, dtype=dtype)
            vae, text_encoder, tokenizer = parts.vae, parts.text_encoder, parts.tokenizer
        backend = cls(unet, vae.to(device), text_encoder.to(device), tokenizer)
        backend.notes.append(checkpoint.summary)
        return backend

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return vae_encode(self.vae, frames, scale=LATENT_SCALE)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return vae_decode(self.vae, latents, scale=LATENT_SCALE)

    def encode_text(self, text: str) -> torch.Tensor:
        return clip_last_hidden_state(self.tokenizer, self.text_encoder, text).float()

    def count_tokens(self, text: str) -> int:
        return count_text_tokens(self.tokenizer, text)

    def prepare_unet(self) -> torch.nn.Module:
        return self.unet
