"""SEINE's transformer: SD's spatial transformer with a temporal-attention step in every block.

A :class:`Transformer3DModel` folds the frames into the batch (per-frame GroupNorm, 1x1 ``proj_in``),
runs its :class:`BasicTransformerBlock` s over the pixels of each frame, and unfolds. Inside a block the
order is: spatial self-attention, cross-attention to the text, temporal attention over the frames at each
position, feed-forward; each step pre-LayerNorm with a residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, TemporalAttention


class GEGLU(nn.Module):
    """``x·W_a ⊙ gelu(x·W_b)`` with one projection producing both halves (diffusers' ``ff.net.0``)."""

    def __init__(self, dim: int, inner_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * inner_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with inner width ``4·dim``; ``net.1`` is the (inference-time identity) dropout slot."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, mult * dim), nn.Identity(), nn.Linear(mult * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    """attn1 (spatial self) -> attn2 (cross to text) -> attn_temp (over frames) -> ff, each pre-norm + residual."""

    def __init__(self, dim: int, heads: int, cross_attention_dim: int, rotary_dim: int, num_buckets: int,
                 max_distance: int) -> None:
        super().__init__()
        self.attn1 = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, cross_attention_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn_temp = TemporalAttention(dim, heads, rotary_dim, num_buckets, max_distance)
        self.norm_temp = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        """``hidden_states [(batch·frames), pixels, dim]``, ``context [(batch·frames), tokens, text_dim]``."""
        x = self.attn1(self.norm1(hidden_states)) + hidden_states
        x = self.attn2(self.norm2(x), context) + x

        # temporal attention: regroup [(b f), pixels, c] as [(b pixels), f, c]
        bf, pixels, dim = x.shape
        x = x.reshape(bf // frames, frames, pixels, dim).transpose(1, 2).reshape(-1, frames, dim)
        x = self.attn_temp(self.norm_temp(x)) + x
        x = x.reshape(bf // frames, pixels, frames, dim).transpose(1, 2).reshape(bf, pixels, dim)

        return self.ff(self.norm3(x)) + x


class Transformer3DModel(nn.Module):
    """Spatial transformer over every frame of ``[batch, channels, frames, height, width]``, with residual."""

    def __init__(self, channels: int, heads: int, depth: int, cross_attention_dim: int, norm_num_groups: int,
                 rotary_dim: int, num_buckets: int, max_distance: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_num_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(channels, heads, cross_attention_dim, rotary_dim, num_buckets, max_distance)
            for _ in range(depth)
        ])
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, sample: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = sample.shape
        frames = sample.transpose(1, 2).reshape(b * f, c, h, w)  # fold the frames into the batch
        x = self.proj_in(self.norm(frames)).permute(0, 2, 3, 1).reshape(b * f, h * w, c)
        context = encoder_hidden_states.repeat_interleave(f, dim=0)
        for block in self.transformer_blocks:
            x = block(x, context, f)
        x = self.proj_out(x.reshape(b * f, h, w, c).permute(0, 3, 1, 2)) + frames
        return x.reshape(b, f, c, h, w).transpose(1, 2)
