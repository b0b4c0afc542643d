"""Random-weight diffusers stacks and a synthetic input for the PIE benchmarks (built offline).

* ``sd15``: the SD 1.5 architecture from ``mvg_backend/pie/configs/sd15`` (about 1.07 G parameters, 4.3 GB in
  fp32), its tokenizer and DDIM scheduler;
* ``small``: a few-M-parameter UNet (64, 128), VAE (32, 64, 64, 64) and 2-layer CLIP with the same latent
  geometry as SD (VAE factor 8, 4 channels), where the engine's fixed per-step and per-round costs weigh most.
"""

from __future__ import annotations

import os
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from mvg_backend.pie import DiffusersBackend
from mvg_backend.pie.loading import SD15_CONFIG

SEED = 0


def wrap(unet: Any, vae: Any, text_encoder: Any) -> DiffusersBackend:
    """A ``DiffusersBackend`` over the parts, with SD 1.5's tokenizer and DDIM scheduler."""
    from diffusers import DDIMScheduler
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(SD15_CONFIG / "tokenizer", local_files_only=True)
    scheduler = DDIMScheduler.from_pretrained(SD15_CONFIG / "scheduler", local_files_only=True)
    return DiffusersBackend(unet, vae, text_encoder, tokenizer, scheduler)


def sd15_parts(seed: int = SEED) -> tuple[Any, Any, Any]:
    """SD 1.5's ``(unet, vae, text_encoder)`` from the shipped configs, with random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SD15_CONFIG / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIG / "vae"))
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(SD15_CONFIG / "text_encoder"))
    return unet, vae, text_encoder


def small_parts(seed: int = SEED) -> tuple[Any, Any, Any]:
    """A few-M-parameter SD-like ``(unet, vae, text_encoder)``: SD's latent geometry (factor 8, 4 channels)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=64, bos_token_id=0, eos_token_id=2, pad_token_id=1,
    ))
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(64, 128), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64, 64, 64), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=1, sample_size=256,
    )
    return unet, vae, text_encoder


def build_sd15() -> DiffusersBackend:
    """SD 1.5's UNet, VAE and CLIP text encoder from the shipped configs, with random weights."""
    return wrap(*sd15_parts())


def build_small() -> DiffusersBackend:
    """A few-M-parameter SD-like stack: same latent geometry as SD (factor 8, 4 channels), SD's tokenizer."""
    return wrap(*small_parts())


BUILDERS: dict[str, Callable[[], DiffusersBackend]] = {"small": build_small, "sd15": build_sd15}


def synthetic_case(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth gradient with a brighter disc (``[H,W,3]``, 0..1) and a centred elliptical mask (``[H,W]``)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    base = 0.15 + 0.5 * x * (1 - 0.4 * y)
    disc = np.clip(1.0 - np.hypot(x - 0.42, y - 0.55) / 0.18, 0.0, 1.0) ** 0.5
    gray = np.clip(base + 0.35 * disc, 0.0, 1.0)
    image = np.stack([gray, 0.9 * gray + 0.05, 0.8 * gray + 0.1], axis=-1).astype(np.float32)
    mask = ((((x - 0.5) / 0.3) ** 2 + ((y - 0.5) / 0.22) ** 2) <= 1.0).astype(np.float32)
    return image, mask
