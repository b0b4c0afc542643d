"""A small random-weight SD 1.x-shaped model, built offline, for plumbing checks without weights.

Its edits are noise: it only shows that the pipeline runs end to end. Real edits need a real SD 1.x
checkpoint (``--checkpoint``) or diffusers folder (``--model-dir``).
"""

from __future__ import annotations

import torch

from .diffusers_backend import DiffusersBackend
from .loading import SD15_CONFIG
from .schedulers import make_scheduler

NOTE = ("random-weight tiny SD 1.x model (no checkpoint given): a plumbing check, the edited region is "
        "noise. Pass --checkpoint FILE.safetensors or --model-dir DIR for real edits.")


def random_tiny_backend(seed: int = 0, *, scheduler: str | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> DiffusersBackend:
    """UNet (32, 64) + 4-level VAE (factor 8) + 2-layer CLIP on the real CLIP tokenizer, seeded; on ``device`` in
    ``dtype``, with the scheduler named ``scheduler`` (see ``SCHEDULERS``; default DDIM)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64, attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        )
        vae = AutoencoderKL(
            block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=16, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )
        text_config = CLIPTextConfig.from_pretrained(SD15_CONFIG / "text_encoder")
        text_config.update(dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                projection_dim=64))
        text_encoder = CLIPTextModel(text_config)
    finally:
        torch.set_rng_state(state)
    tokenizer = CLIPTokenizer.from_pretrained(SD15_CONFIG / "tokenizer", local_files_only=True)
    base = DDIMScheduler.from_pretrained(SD15_CONFIG / "scheduler", local_files_only=True)
    sched = make_scheduler(scheduler, base) if scheduler else base
    unet, vae, text_encoder = (m.to(device=device, dtype=dtype) for m in (unet, vae, text_encoder))
    return DiffusersBackend(unet, vae, text_encoder, tokenizer, sched)
