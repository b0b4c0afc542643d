"""The UNet's levels: down, mid and up blocks (diffusers' ``*Block3D``; cross-attention is optional per level)."""

from __future__ import annotations

import torch
from torch import nn

from .config import SEINEConfig
from .resnet import Downsample3D, ResnetBlock3D, Upsample3D
from .transformer import Transformer3DModel


def _transformer(config: SEINEConfig, channels: int, heads: int) -> Transformer3DModel:
    return Transformer3DModel(channels, heads, config.transformer_layers, config.cross_attention_dim,
                              config.norm_num_groups, config.rotary_dim, config.relative_position_buckets,
                              config.relative_position_max_distance)


class DownBlock3D(nn.Module):
    """ResNets (each followed by a transformer on cross-attention levels), then a stride-2 downsample."""

    def __init__(self, config: SEINEConfig, level: int, in_channels: int, cross_attention: bool, downsample: bool) -> None:
        super().__init__()
        out_channels, heads = config.block_out_channels[level], config.attention_heads[level]
        layers = config.layers_per_block
        self.attentions = nn.ModuleList([_transformer(config, out_channels, heads) for _ in range(layers)]
                                        if cross_attention else [])
        self.resnets = nn.ModuleList([
            ResnetBlock3D(in_channels if i == 0 else out_channels, out_channels, config.time_embed_dim,
                          config.norm_num_groups, config.norm_eps)
            for i in range(layers)
        ])
        self.downsamplers = nn.ModuleList([Downsample3D(out_channels)]) if downsample else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor,
                skips: list[torch.Tensor]) -> torch.Tensor:
        """Run the level, appending every output to ``skips`` for the up path."""
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            if self.attentions:
                x = self.attentions[i](x, context)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x


class UNetMidBlock3DCrossAttn(nn.Module):
    """ResNet -> transformer -> ResNet at the lowest resolution."""

    def __init__(self, config: SEINEConfig) -> None:
        super().__init__()
        channels = config.block_out_channels[-1]
        self.attentions = nn.ModuleList([_transformer(config, channels, config.attention_heads[-1])])
        self.resnets = nn.ModuleList([
            ResnetBlock3D(channels, channels, config.time_embed_dim, config.norm_num_groups, config.norm_eps)
            for _ in range(2)
        ])

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context)
        return self.resnets[1](x, temb)


class UpBlock3D(nn.Module):
    """ResNets over ``[x, skip]`` (each followed by a transformer on cross-attention levels), then upsample."""

    def __init__(self, config: SEINEConfig, level: int, prev_channels: int, skip_channels: int,
                 cross_attention: bool, upsample: bool) -> None:
        super().__init__()
        out_channels, heads = config.block_out_channels[level], config.attention_heads[level]
        layers = config.layers_per_block + 1
        self.attentions = nn.ModuleList([_transformer(config, out_channels, heads) for _ in range(layers)]
                                        if cross_attention else [])
        self.resnets = nn.ModuleList([
            ResnetBlock3D((prev_channels if i == 0 else out_channels) + (skip_channels if i == layers - 1 else out_channels),
                          out_channels, config.time_embed_dim, config.norm_num_groups, config.norm_eps)
            for i in range(layers)
        ])
        self.upsamplers = nn.ModuleList([Upsample3D(out_channels)]) if upsample else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor,
                skips: list[torch.Tensor]) -> torch.Tensor:
        """Run the level, consuming its skips from the end of ``skips``; upsample to the next skip's size."""
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
            if self.attentions:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x, tuple(skips[-1].shape[-2:]))
        return x
