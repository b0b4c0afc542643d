"""SEINE's convolutional parts, on videos ``[batch, channels, frames, height, width]``.

Convolutions are SD's 2-D ones applied to each frame. GroupNorm, however, normalises the whole 5-D
tensor: its statistics pool every frame of a sample (so ``ResnetBlock3D`` is *not* diffusers'
``ResnetBlock2D`` with frames folded into the batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrameConv2d(nn.Conv2d):
    """A 2-D convolution applied to every frame independently (SEINE's "inflated" convolution)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, f, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(b * f, c, h, w))
        return y.reshape(b, f, *y.shape[1:]).transpose(1, 2)


class ResnetBlock3D(nn.Module):
    """GroupNorm(5-D) -> SiLU -> conv -> + time embedding -> GroupNorm(5-D) -> SiLU -> conv, plus shortcut."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = FrameConv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = FrameConv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.conv_shortcut = FrameConv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class Downsample3D(nn.Module):
    """Stride-2 3x3 convolution on every frame."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = FrameConv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample3D(nn.Module):
    """Nearest-neighbour upsampling of every frame to ``size`` (twice the size by default), then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = FrameConv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        f, h, w = x.shape[2:]
        height, width = size or (2 * h, 2 * w)
        return self.conv(F.interpolate(x, size=(f, height, width), mode="nearest"))
