"""SEINE's 3-D UNet (arXiv 2310.20700): Stable Diffusion 1.4's UNet inflated to video.

Input ``[batch, 9, frames, h, w]`` in this channel order: noisy latents (4), mask (1: the frame is to be
generated, 0: known), masked-video latents (4). Output: the predicted noise ``[batch, 4, frames, h, w]``.

Per level: :mod:`.resnet` blocks (frame-wise convolutions, GroupNorm over the whole video) and
:mod:`.transformer` blocks (spatial self- and cross-attention per frame, then SEINE's temporal attention
over frames in :mod:`.attention`). Parameter names equal the official checkpoint's (``seine.pt`` ``ema``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock3D, UNetMidBlock3DCrossAttn, UpBlock3D
from .config import CROSS_ATTN_DOWN, CROSS_ATTN_UP, SEINEConfig
from .resnet import FrameConv2d


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t·ω_i), sin(t·ω_i)]`` with ``ω_i = max_period^(-i/(dim/2))`` (float32).

    This is diffusers' ``Timesteps(dim, flip_sin_to_cos=True, downscale_freq_shift=0)``.
    """
    half = dim // 2
    omega = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * omega[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class TimestepEmbedding(nn.Module):
    """Linear -> SiLU -> Linear on the sinusoidal timestep embedding."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class UNet3DConditionModel(nn.Module):
    """SEINE's denoiser. ``forward(sample, timestep, encoder_hidden_states)`` -> epsilon; run it in eval mode."""

    def __init__(self, config: SEINEConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.block_out_channels
        levels = len(widths)
        self.conv_in = FrameConv2d(config.in_channels, widths[0], kernel_size=3, padding=1)
        self.time_embedding = TimestepEmbedding(widths[0], config.time_embed_dim)

        self.down_blocks = nn.ModuleList()
        for level in range(levels):
            self.down_blocks.append(DownBlock3D(
                config, level, in_channels=widths[max(level - 1, 0)],
                cross_attention=config.down_block_types[level] == CROSS_ATTN_DOWN, downsample=level < levels - 1))

        # the up path mirrors the levels: up block i works at level levels-1-i, and its last ResNet takes the
        # skip that entered that level (the previous level's width)
        self.up_blocks = nn.ModuleList()
        for i in range(levels):
            level = levels - 1 - i
            self.up_blocks.append(UpBlock3D(
                config, level, prev_channels=widths[min(level + 1, levels - 1)],
                skip_channels=widths[max(level - 1, 0)],
                cross_attention=config.up_block_types[i] == CROSS_ATTN_UP, upsample=i < levels - 1))

        self.mid_block = UNetMidBlock3DCrossAttn(config)
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, widths[0], eps=config.norm_eps)
        self.conv_out = FrameConv2d(widths[0], config.out_channels, kernel_size=3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float,
                encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """``sample [b, 9, f, h, w]``, ``timestep`` (scalar or one per batch element, 0..999),
        ``encoder_hidden_states [b, tokens, cross_attention_dim]`` -> epsilon ``[b, 4, f, h, w]``."""
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        dtype = self.conv_in.weight.dtype
        temb = self.time_embedding(timestep_embedding(timesteps, self.config.block_out_channels[0]).to(dtype))

        encoder_hidden_states = encoder_hidden_states.to(dtype)
        x = self.conv_in(sample.to(dtype))
        skips = [x]
        for block in self.down_blocks:
            x = block(x, temb, encoder_hidden_states, skips)
        x = self.mid_block(x, temb, encoder_hidden_states)
        for block in self.up_blocks:
            x = block(x, temb, encoder_hidden_states, skips)
        return self.conv_out(F.silu(self.conv_norm_out(x)))
