"""Attention in SEINE's UNet; :class:`TemporalAttention` is the part SEINE adds to Stable Diffusion.

Spatial attention (self over the pixels of a frame, cross to the text) is SD's. Temporal attention runs
over the frames at each spatial position, with two position signals that tell the frames apart:

- a rotary embedding (RoPE) that rotates the first ``rotary_dim`` channels of every query and key head in
  interleaved pairs ``(2i, 2i+1)`` by the angle ``frame · θ_i`` (``θ_i = 10000^(-2i/rotary_dim)``);
- a T5-style relative-position bias: ``key frame − query frame`` is bucketed (exact for small offsets,
  logarithmic up to ``max_distance``) and each bucket holds one learned logit offset per head.

All three attentions call :func:`scaled_dot_product` (PyTorch SDPA; the temporal one with the bias as an
additive mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scaled_dot_product(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       bias: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q·kᵀ/√d + bias)·v`` over ``[batch, heads, tokens, head_dim]``: the model's one attention kernel."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias)


class Attention(nn.Module):
    """Multi-head attention with diffusers' parameter names; self-attention when no ``context`` is given."""

    def __init__(self, query_dim: int, heads: int, cross_attention_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        context_dim = cross_attention_dim or query_dim
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(query_dim, query_dim)])  # ``to_out.0``, as in the checkpoints

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, tokens, heads·d]`` -> ``[batch, heads, tokens, d]``."""
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, -1).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, heads, tokens, d]`` -> ``[batch, tokens, heads·d]``."""
        b, _, n, _ = x.shape
        return x.transpose(1, 2).reshape(b, n, -1)

    def forward(self, hidden_states: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = hidden_states if context is None else context
        query = self.split_heads(self.to_q(hidden_states))
        key = self.split_heads(self.to_k(context))
        value = self.split_heads(self.to_v(context))
        return self.to_out[0](self.merge_heads(scaled_dot_product(query, key, value)))


class RotaryEmbedding(nn.Module):
    """RoPE over frame positions ``0..f-1`` on the first ``dim`` channels of each head (interleaved pairs).

    ``freqs[i] = 10000^(-2i/dim)`` is a buffer because checkpoints carry it. It stays float32 when the model is
    cast (``.half()``, ``.to(dtype)``): in bf16 a frequency would be off by up to 0.4%, the angle at frame 15 by
    0.06 rad. Angles and the rotation are computed in float32 whatever the model's dtype.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("freqs", 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))

    def _apply(self, fn, recurse=True):  # type: ignore[override]
        exact = self.freqs
        module = super()._apply(fn, recurse)
        if self.freqs.dtype != torch.float32:
            self.freqs = exact.to(device=self.freqs.device)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x [..., frames, head_dim]``; channels past ``dim`` pass through unchanged."""
        frames, dim = x.shape[-2], 2 * self.freqs.shape[0]
        positions = torch.arange(frames, device=x.device, dtype=torch.float32)
        angles = positions[:, None] * self.freqs.float()[None, :]  # [frames, dim/2]
        cos, sin = angles.cos(), angles.sin()
        even, odd = x[..., :dim:2].float(), x[..., 1:dim:2].float()
        rotated = torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)
        return torch.cat((rotated.to(x.dtype), x[..., dim:]), dim=-1)


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int = 32,
                             max_distance: int = 32) -> torch.Tensor:
    """T5's bidirectional bucket of ``relative_position = key − query`` (integer tensor -> long tensor).

    Half the buckets serve keys at or before the query, half keys after it. Within a half, offsets below
    ``num_buckets // 4`` get their own bucket; larger ones share logarithmically wider buckets up to
    ``max_distance``, beyond which they all fall in the last one.
    """
    half = num_buckets // 2
    exact = half // 2
    bucket = (relative_position > 0).long() * half
    distance = relative_position.abs()
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return bucket + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    """Learned logit offset per (bucket of ``key frame − query frame``, head): ``[heads, frames, frames]``."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 32) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def forward(self, frames: int, device: torch.device) -> torch.Tensor:
        position = torch.arange(frames, device=device)
        buckets = relative_position_bucket(position[None, :] - position[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)


class TemporalAttention(Attention):
    """SEINE's attention over frames: self-attention along ``f`` at every spatial position.

    Input ``[batch·height·width, frames, channels]``. Queries and keys are rotated by
    :class:`RotaryEmbedding`; the relative-position bias is added to the logits after their ``d^-1/2``
    scaling.
    """

    def __init__(self, query_dim: int, heads: int, rotary_dim: int = 32, num_buckets: int = 32,
                 max_distance: int = 32) -> None:
        super().__init__(query_dim, heads)
        self.time_rel_pos_bias = RelativePositionBias(heads, num_buckets, max_distance)
        self.rotary_emb = RotaryEmbedding(rotary_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        frames = hidden_states.shape[1]
        query = self.rotary_emb(self.split_heads(self.to_q(hidden_states)))
        key = self.rotary_emb(self.split_heads(self.to_k(hidden_states)))
        value = self.split_heads(self.to_v(hidden_states))
        bias = self.time_rel_pos_bias(frames, hidden_states.device).to(query.dtype)
        return self.to_out[0](self.merge_heads(scaled_dot_product(query, key, value, bias)))
