"""The architecture a SEINE checkpoint declares, checked against its tensor shapes.

Shapes show most of SEINE's architecture (:func:`.config.infer_config`), but three values leave no trace in
any tensor: the GroupNorm group count (``norm_num_groups``), the GroupNorm epsilon (``norm_eps``) and the
relative-position bias' ``relative_position_max_distance``. A checkpoint trained with 16 groups loads into a
32-group network without a single shape conflict and computes garbage, so these are read from what the
checkpoint declares:

1. its own metadata: the ``mvg_seine_config`` entry (JSON) of a ``.safetensors`` header, written by
   :func:`.loading.convert_checkpoint` (a plain ``config`` JSON entry is read too), or the ``config`` /
   ``model_config`` entry of a ``.pt`` (a dict of plain values, so ``torch.load(weights_only=True)`` reads it);
2. a ``<stem>.json`` sidecar next to the file (e.g. ``seine.json`` for ``seine.safetensors``): a JSON object,
   such as the UNet's diffusers ``config.json``.

Both use the official (diffusers) names; in SEINE ``attention_head_dim`` is the number of heads. A value that
both declare must agree. The official SEINE values are used only for what nothing declares, and the summary
says which value came from where. Declared values that the shapes also show (widths, heads, block types …)
must match them, values the network does not implement (another activation, ``freq_shift`` …) are refused,
and a declared group count that does not divide the channels is refused: all with ``MVGInputError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import MVGInputError
from .config import SEINE_SD14, SEINEConfig, shape_fields

METADATA_KEY = "mvg_seine_config"
"""The safetensors header entry with the architecture (JSON), written by the converter."""
METADATA_SOURCE_KEY = "mvg_seine_config_source"
"""The safetensors header entry saying where the converter got the shape-invisible values."""
CONFIG_ENTRIES = ("config", "model_config")
"""Entries of a ``.pt`` checkpoint that may hold its architecture (a dict of plain values)."""

SHAPE_INVISIBLE = ("norm_num_groups", "norm_eps", "relative_position_max_distance")
"""Read from declarations (official SEINE value when none declares it): no tensor shape shows them."""

# declared name -> SEINEConfig field, for values the shapes also show (a declared value must match them)
SHAPE_VISIBLE = {
    "in_channels": "in_channels",
    "out_channels": "out_channels",
    "block_out_channels": "block_out_channels",
    "down_block_types": "down_block_types",
    "up_block_types": "up_block_types",
    "layers_per_block": "layers_per_block",
    "transformer_layers_per_block": "transformer_layers",
    "cross_attention_dim": "cross_attention_dim",
    "rotary_dim": "rotary_dim",
    "relative_position_buckets": "relative_position_buckets",
}
HEAD_KEYS = ("num_attention_heads", "attention_head_dim")
"""Heads per level (an int or one per level). SEINE's ``attention_head_dim`` is a head *count*; a non-null
``num_attention_heads`` (newer diffusers configs) takes precedence."""

# what this network implements; a checkpoint declaring anything else is refused rather than run wrongly
IMPLEMENTED = {
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
    "only_cross_attention": False,
    "dual_cross_attention": False,
    "use_linear_projection": False,
    "resnet_time_scale_shift": "default",
    "class_embed_type": None,
    "num_class_embeds": None,
    "use_first_frame": False,
    "mid_block_type": "UNetMidBlock3DCrossAttn",
    "downsample_padding": 1,
}
IGNORED = {"sample_size", "upcast_attention", "use_relative_position"}
"""Declared values with no effect here: the input size, fp16 attention upcasting (attention runs in SDPA),
and the official top-level relative-position bias (computed by the official forward but never used)."""

OFFICIAL = {name: getattr(SEINE_SD14, name) for name in SHAPE_INVISIBLE}


@dataclass(frozen=True)
class Declaration:
    """Architecture values one place declares (official names), and how to name that place in messages."""

    source: str
    values: Mapping[str, Any]
    note: str = ""
    """Extra provenance for the summary (e.g. where the converter found the values it wrote)."""


@dataclass(frozen=True)
class ResolvedConfig:
    """The architecture to build, where each shape-invisible value came from, and a one-paragraph summary."""

    config: SEINEConfig
    origins: dict[str, str] = field(default_factory=dict)
    """``SHAPE_INVISIBLE`` name -> the declaring source, or ``"official"``."""
    summary: str = ""
    ignored: tuple[str, ...] = ()


def declaration_from_json(text: str, source: str) -> Declaration:
    """A :class:`Declaration` from a JSON object's text; ``MVGInputError`` if it is not one."""
    try:
        values = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise MVGInputError(f"{source} is not valid JSON ({exc}); fix or remove it.") from None
    if not isinstance(values, dict):
        raise MVGInputError(f"{source} must be a JSON object of architecture values, not {type(values).__name__}.")
    return Declaration(source, values)


def declaration_from_mapping(values: Any, source: str) -> Declaration:
    """A :class:`Declaration` from a ``.pt``'s config entry: a dict (or JSON text) of plain values."""
    if isinstance(values, (str, bytes)):
        return declaration_from_json(values.decode() if isinstance(values, bytes) else values, source)
    if not isinstance(values, Mapping):
        raise MVGInputError(f"{source} is a {type(values).__name__}; it must be a dict of architecture values "
                            "(norm_num_groups, norm_eps, ...).")
    return Declaration(source, {str(k): _plain(v) for k, v in values.items()})


def _plain(value: Any) -> Any:
    """Sequences (lists, tuples, OmegaConf lists) as lists and 0-d tensors as numbers; the rest unchanged."""
    if hasattr(value, "ndim") and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_plain(v) for v in value]
    return value


def config_to_declaration(config: SEINEConfig) -> dict[str, Any]:
    """The architecture in the official names, as the converter writes it into the safetensors header."""
    return {
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "block_out_channels": list(config.block_out_channels),
        "down_block_types": list(config.down_block_types),
        "up_block_types": list(config.up_block_types),
        "layers_per_block": config.layers_per_block,
        "transformer_layers_per_block": config.transformer_layers,
        "attention_head_dim": list(config.attention_heads),
        "cross_attention_dim": config.cross_attention_dim,
        "norm_num_groups": config.norm_num_groups,
        "norm_eps": config.norm_eps,
        "rotary_dim": config.rotary_dim,
        "relative_position_buckets": config.relative_position_buckets,
        "relative_position_max_distance": config.relative_position_max_distance,
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a == b and type(a) is type(b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _merge(declarations: Sequence[Declaration]) -> tuple[dict[str, Any], dict[str, str]]:
    """All declared values, and which source declared each; ``MVGInputError`` where two sources disagree."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for declaration in declarations:
        for key, value in declaration.values.items():
            if key in merged and not _same(merged[key], value):
                raise MVGInputError(
                    f"{origin[key]} declares {key} = {merged[key]!r} but {declaration.source} declares {value!r}: "
                    "they cannot both describe these weights. Fix or remove the wrong one."
                )
            if key not in merged:
                merged[key], origin[key] = value, declaration.source
    return merged, origin


def _as_int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise MVGInputError(f"{source} declares {key} = {value!r}; it must be a whole number.")
    return int(value)


def _per_level(value: Any, key: str, source: str, levels: int) -> tuple[int, ...]:
    if isinstance(value, list):
        if len(value) != levels:
            raise MVGInputError(f"{source} declares {key} = {value!r} for {len(value)} levels, but the checkpoint's "
                                f"shapes have {levels}: the metadata does not describe these weights.")
        return tuple(_as_int(v, key, source) for v in value)
    return (_as_int(value, key, source),) * levels


def resolve_config(shapes: Mapping[str, Sequence[int]], declarations: Sequence[Declaration], name: str,
                   searched: str = "") -> ResolvedConfig:
    """The architecture of the checkpoint ``name`` from its ``shapes`` and what ``declarations`` say.

    ``searched`` names the places that were looked at, for the summary when nothing is declared.
    """
    fields, heads_seen = shape_fields(shapes)
    declared, origin = _merge(declarations)
    levels = len(fields["block_out_channels"])

    def contradiction(key: str, value: Any, shown: Any) -> MVGInputError:
        return MVGInputError(
            f"SEINE checkpoint {name!r}: {origin[key]} declares {key} = {value!r}, but the tensor shapes show "
            f"{shown!r}: the metadata does not describe these weights. Fix or remove it."
        )

    for key, attr in SHAPE_VISIBLE.items():
        if key in declared:
            shown = fields[attr]
            value = declared[key]
            if isinstance(shown, tuple):
                value_list = value if isinstance(value, list) else [value] * len(shown)
                if not _same(value_list, list(shown)):
                    raise contradiction(key, value, list(shown))
            elif not _same(value, [shown] * len(value) if isinstance(value, list) else shown):
                raise contradiction(key, value, shown)  # a per-level list must repeat the one value

    head_key = next((k for k in HEAD_KEYS if declared.get(k) is not None), None)
    if head_key is not None:
        heads = _per_level(declared[head_key], head_key, origin[head_key], levels)
        for level, (count, channels) in enumerate(zip(heads, fields["block_out_channels"])):
            if count < 1 or channels % count:
                raise MVGInputError(
                    f"SEINE checkpoint {name!r}: {origin[head_key]} declares {count} attention heads at level "
                    f"{level}, which does not divide its {channels} channels: the metadata contradicts the shapes."
                )
            if heads_seen[level] and count != fields["attention_heads"][level]:
                raise contradiction(head_key, declared[head_key], list(fields["attention_heads"]))
        fields["attention_heads"] = heads  # levels without attention take the declared count

    for key, implemented in IMPLEMENTED.items():
        value = declared.get(key, implemented)
        if key == "only_cross_attention" and isinstance(value, list):
            value = any(value)
        if not _same(value, implemented):
            raise MVGInputError(
                f"SEINE checkpoint {name!r}: {origin[key]} declares {key} = {value!r}; this SEINE implementation "
                f"(like the official model) has {key} = {implemented!r} only."
            )

    invisible: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key in SHAPE_INVISIBLE:
        if key in declared:
            value = declared[key]
            if key == "norm_eps":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise MVGInputError(f"SEINE checkpoint {name!r}: {origin[key]} declares norm_eps = {value!r}; "
                                        "it must be a number.")
                invisible[key] = float(value)
            else:
                invisible[key] = _as_int(value, key, origin[key])
            origins[key] = origin[key]
        else:
            invisible[key] = OFFICIAL[key]
            origins[key] = "official"
    try:
        config = SEINEConfig(**{**fields, **invisible})
    except ValueError as exc:
        declared_here = sorted({origins[k] for k in SHAPE_INVISIBLE if origins[k] != "official"})
        if declared_here:
            raise MVGInputError(f"SEINE checkpoint {name!r}: the architecture declared in {', '.join(declared_here)} "
                                f"contradicts the tensor shapes: {exc}.") from None
        raise MVGInputError(
            f"SEINE checkpoint {name!r}: the official SEINE values do not fit its tensor shapes ({exc}), and it "
            "declares nothing else. Declare the values it was trained with (e.g. norm_num_groups) in a <name>.json "
            "beside it."
        ) from None

    known = set(SHAPE_INVISIBLE) | set(SHAPE_VISIBLE) | set(HEAD_KEYS) | set(IMPLEMENTED) | IGNORED
    ignored = tuple(sorted(k for k in declared if k not in known and not k.startswith("_")))
    summary = _summary(name, config, origins, declarations, searched, ignored)
    return ResolvedConfig(config, origins, summary, ignored)


def _summary(name: str, config: SEINEConfig, origins: Mapping[str, str], declarations: Sequence[Declaration],
             searched: str, ignored: Sequence[str]) -> str:
    shapes = (f"SEINE UNet {name!r}: widths {config.block_out_channels}, heads {config.attention_heads}, "
              f"text dim {config.cross_attention_dim} (from the tensor shapes)")
    values = {"norm_num_groups": f"GroupNorm {config.norm_num_groups} groups",
              "norm_eps": f"eps {config.norm_eps:g}",
              "relative_position_max_distance":
                  f"relative-position max distance {config.relative_position_max_distance}"}
    by_source: dict[str, list[str]] = {}
    for key in SHAPE_INVISIBLE:
        by_source.setdefault(origins[key], []).append(values[key])
    parts = []
    notes = {d.source: d.note for d in declarations if d.note}
    for source, items in by_source.items():
        if source == "official":
            continue
        note = f"; {notes[source]}" if source in notes else ""
        parts.append(f"{', '.join(items)} declared in {source}{note}")
    if "official" in by_source:
        items = ", ".join(by_source["official"])
        if not declarations:
            why = "the checkpoint declares none" + (f": {searched}" if searched else "")
        else:
            why = "not declared"
        parts.append(f"{items}: official SEINE values ({why})")
    text = f"{shapes}; " + "; ".join(parts) + "."
    if ignored:
        shown = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
        text += f" Ignored declared keys: {shown}."
    return text


def describe_origins(origins: Mapping[str, str], config: SEINEConfig) -> str:
    """One line for the converter's record: which shape-invisible value came from where."""
    by_source: dict[str, list[str]] = {}
    for key in SHAPE_INVISIBLE:
        by_source.setdefault(origins[key], []).append(f"{key}={getattr(config, key)!r}")
    def where(source: str) -> str:
        return "official SEINE values (not declared)" if source == "official" else f"declared in {source}"

    return "; ".join(f"{', '.join(items)}: {where(source)}" for source, items in by_source.items())
