"""SEINE's UNet configuration, and how to read it off a checkpoint's tensor shapes.

The official SEINE UNet is Stable Diffusion 1.4's UNet inflated to video (``SEINE_SD14``). A checkpoint
carries most of its architecture in its shapes: widths in the convolutions, heads in the temporal attention's
relative-position table ``[buckets, heads]``, the rotary size in ``rotary_emb.freqs``. So the official
``seine.pt`` and a tiny test checkpoint are read by the same :func:`infer_config`. The GroupNorm group count
and eps and the relative-position max distance leave no trace in any shape: :mod:`.metadata` reads those from
what the checkpoint declares.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import MVGInputError

CROSS_ATTN_DOWN, DOWN = "CrossAttnDownBlock3D", "DownBlock3D"
CROSS_ATTN_UP, UP = "CrossAttnUpBlock3D", "UpBlock3D"
TEMPORAL_BIAS = "attn_temp.time_rel_pos_bias.relative_attention_bias.weight"


@dataclass(frozen=True)
class SEINEConfig:
    """Architecture of a SEINE UNet (diffusers' names; ``attention_heads`` is diffusers' ``attention_head_dim``).

    Most fields can be read off a checkpoint's tensor shapes (:func:`infer_config`). Three cannot:
    ``norm_num_groups``, ``norm_eps`` and ``relative_position_max_distance``; :mod:`.metadata` reads them
    from what the checkpoint declares, and the defaults here are the official SEINE values.

    ``attention_heads[i]`` is the head count of level ``i`` (spatial and temporal attention alike); the up
    path mirrors the levels and the mid block uses the last entry. Each head has
    ``channels // heads`` channels, of which the first ``rotary_dim`` are rotated over frame positions.
    """

    in_channels: int = 9
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = (CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, CROSS_ATTN_DOWN, DOWN)
    up_block_types: tuple[str, ...] = (UP, CROSS_ATTN_UP, CROSS_ATTN_UP, CROSS_ATTN_UP)
    layers_per_block: int = 2
    transformer_layers: int = 1
    attention_heads: tuple[int, ...] = (8, 8, 8, 8)
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    rotary_dim: int = 32
    relative_position_buckets: int = 32
    relative_position_max_distance: int = 32

    def __post_init__(self) -> None:
        levels = len(self.block_out_channels)
        groups = self.norm_num_groups
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"norm_num_groups must be a positive integer, not {groups!r}")
        if any(channels % groups for channels in self.block_out_channels):
            raise ValueError(f"norm_num_groups {groups} does not divide every level's channels "
                             f"{self.block_out_channels}")
        if isinstance(self.norm_eps, bool) or not isinstance(self.norm_eps, (int, float)) or not 0 < self.norm_eps < 1:
            raise ValueError(f"norm_eps must be a small positive number, not {self.norm_eps!r}")
        if self.relative_position_max_distance <= self.relative_position_buckets // 4:
            raise ValueError(f"relative_position_max_distance {self.relative_position_max_distance} must exceed "
                             f"the exact range of the buckets ({self.relative_position_buckets // 4})")
        if not (len(self.down_block_types) == len(self.up_block_types) == len(self.attention_heads) == levels):
            raise ValueError("block_out_channels, down/up_block_types and attention_heads need one entry per level")
        if set(self.down_block_types) - {CROSS_ATTN_DOWN, DOWN} or set(self.up_block_types) - {CROSS_ATTN_UP, UP}:
            raise ValueError(f"unknown block types in {self.down_block_types} / {self.up_block_types}")
        for level, channels in enumerate(self.block_out_channels):
            heads = self.attention_heads[level]
            if channels % heads or channels // heads < self.rotary_dim:
                raise ValueError(
                    f"level {level}: {channels} channels in {heads} heads; each head needs a whole number of "
                    f"channels, at least the rotary size {self.rotary_dim}"
                )

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.block_out_channels[0]

    @property
    def latent_channels(self) -> int:
        """Channels of the noisy latents (the input also carries a mask and the masked-video latents)."""
        return self.out_channels


SEINE_SD14 = SEINEConfig()
"""The official SEINE UNet: SD 1.4's UNet (in_channels 9) with temporal attention in every transformer."""


def _indices(keys: Sequence[str], pattern: str) -> list[int]:
    found = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return sorted(found)


def describe_foreign_checkpoint(keys: Sequence[str]) -> str | None:
    """Why these keys are not a SEINE UNet state dict (``None`` when they look like one)."""
    keyset = set(keys)
    sample = ", ".join(sorted(keys)[:4])
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return ("it is an original-layout Stable Diffusion checkpoint (model.diffusion_model.*: UNet + VAE + CLIP); "
                "that file belongs in models/checkpoints for the stock Load Checkpoint node")
    if any(k.startswith(("encoder.", "decoder.", "first_stage_model.")) for k in keys) and "conv_in.weight" not in keyset:
        return "it is a VAE, not a SEINE UNet"
    if any(k.startswith(("text_model.", "transformer.text_model.")) or ".self_attn." in k for k in keys):
        return "it is a CLIP text encoder, not a SEINE UNet"
    if "conv_in.weight" not in keyset or "time_embedding.linear_1.weight" not in keyset:
        return f"it has none of a diffusers-layout UNet's keys (conv_in, time_embedding; first keys: {sample})"
    if not any(".attn_temp." in k for k in keys):
        return ("it is a 2-D diffusers UNet (Stable Diffusion?) without SEINE's temporal attention "
                "(no attn_temp.* keys)")
    return None


def infer_config(shapes: Mapping[str, Sequence[int]], **shape_invisible: Any) -> SEINEConfig:
    """The :class:`SEINEConfig` whose ``state_dict()`` has these key shapes; ``MVGInputError`` if not SEINE.

    ``shapes`` maps state-dict keys to tensor shapes. Only the architecture is read here; whether every key
    and shape then matches is checked when the weights are loaded. What shapes cannot show (GroupNorm groups
    and eps, the relative-position max distance) comes from ``shape_invisible`` (``SEINEConfig`` field names)
    or else gets the official SEINE values: :func:`.metadata.resolve_config` fills it from what a checkpoint
    declares.
    """
    fields, _ = shape_fields(shapes)
    try:
        return SEINEConfig(**{**fields, **shape_invisible})
    except ValueError as exc:
        raise MVGInputError(f"unsupported SEINE checkpoint shapes: {exc}.") from exc


def shape_fields(shapes: Mapping[str, Sequence[int]]) -> tuple[dict[str, Any], tuple[bool, ...]]:
    """The :class:`SEINEConfig` fields these shapes show, and per level whether its head count is seen.

    A level's head count shows in its temporal attention's relative-position table ``[buckets, heads]``: on
    levels with attention, and on the last level (the mid block uses its count). On other levels it does not
    matter to the network, and the mid block's count stands in. ``MVGInputError`` if the keys are not SEINE's.
    """
    keys = list(shapes)
    foreign = describe_foreign_checkpoint(keys)
    if foreign:
        raise MVGInputError(f"not a SEINE UNet: {foreign}.")

    def shape(key: str) -> tuple[int, ...]:
        if key not in shapes:
            raise MVGInputError(f"not a SEINE UNet checkpoint: key {key!r} is missing.")
        return tuple(int(s) for s in shapes[key])

    levels = _indices(keys, r"down_blocks\.(\d+)\.resnets\.0\.conv1\.weight$")
    if not levels or levels != list(range(len(levels))):
        raise MVGInputError("not a SEINE UNet checkpoint: no down_blocks.<i>.resnets.0 found.")
    n = len(levels)
    in_channels = shape("conv_in.weight")[1]
    out_channels = shape("conv_out.weight")[0]
    if in_channels != 2 * out_channels + 1:
        raise MVGInputError(
            f"not a SEINE UNet: conv_in takes {in_channels} channels, but SEINE needs {2 * out_channels + 1} "
            f"(noisy latents {out_channels} + mask 1 + masked-video latents {out_channels}). A text-to-video "
            "UNet (e.g. LaVie's base model) has no mask inputs."
        )
    proj_in = [k for k in keys if k.endswith(".proj_in.weight")]
    if proj_in and len(shape(proj_in[0])) != 4:
        raise MVGInputError("unsupported SEINE variant: linear proj_in (SEINE's SD 1.4 UNet uses 1x1 convolutions).")

    def heads_at(prefix: str) -> int | None:
        key = f"{prefix}.attentions.0.transformer_blocks.0.{TEMPORAL_BIAS}"
        return shape(key)[1] if key in shapes else None

    down_heads = [heads_at(f"down_blocks.{i}") for i in range(n)]
    up_heads = [heads_at(f"up_blocks.{i}") for i in range(n)]
    mid_heads = heads_at("mid_block")
    if mid_heads is None:
        raise MVGInputError("not a SEINE UNet checkpoint: the mid block has no temporal attention.")
    heads = [down_heads[i] or up_heads[n - 1 - i] or mid_heads for i in range(n)]
    seen = tuple(bool(down_heads[i] or up_heads[n - 1 - i]) or i == n - 1 for i in range(n))

    def first(suffix: str) -> tuple[int, ...]:
        return shape(next((k for k in keys if k.endswith(suffix)), suffix))

    fields = dict(
        in_channels=in_channels,
        out_channels=out_channels,
        block_out_channels=tuple(shape(f"down_blocks.{i}.resnets.0.conv1.weight")[0] for i in range(n)),
        down_block_types=tuple(CROSS_ATTN_DOWN if h else DOWN for h in down_heads),
        up_block_types=tuple(CROSS_ATTN_UP if h else UP for h in up_heads),
        layers_per_block=len(_indices(keys, r"down_blocks\.0\.resnets\.(\d+)\.")),
        transformer_layers=len(_indices(keys, r"mid_block\.attentions\.0\.transformer_blocks\.(\d+)\.")),
        attention_heads=tuple(heads),
        cross_attention_dim=first("attn2.to_k.weight")[1],
        rotary_dim=2 * first("attn_temp.rotary_emb.freqs")[0],
        relative_position_buckets=first(TEMPORAL_BIAS)[0],
    )
    return fields, seen
