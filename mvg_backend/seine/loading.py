"""Reading SEINE UNet checkpoints safely, and the one-time conversion of pickled ones to safetensors.

:func:`read_seine_checkpoint` reads ``.safetensors`` (preferred) or a ``.pt/.pth/.ckpt/.bin`` holding ``ema``
(the official ``seine.pt``), ``state_dict``, ``model`` or a bare state dict, with
``torch.load(weights_only=True)``. The architecture comes from the tensor shapes plus what the checkpoint
declares about the values shapes cannot show (GroupNorm groups and eps; :mod:`.metadata` says where it looks
and in which order); its ``summary`` says which value came from where. :func:`load_seine_unet` builds the
network on the meta device (no memory, no random init) and assigns the checkpoint's tensors with strict key
and shape checks. A pickle that would import anything but tensor-rebuilding globals is refused before anything
is unpickled (its opcodes are read by :mod:`..io.pickles`), with the conversion command;
:func:`convert_checkpoint` (``python -m mvg_backend.seine convert IN OUT.safetensors --trust-pickle``) is the
only SEINE code that unpickles, and it writes the resolved architecture into the safetensors header.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import MVGInputError
from ..io.pickles import check_convert_paths, refuse_code_pickle, save_safetensors, unpickle_trusted
from .config import SEINEConfig, infer_config
from .metadata import (
    CONFIG_ENTRIES,
    METADATA_KEY,
    METADATA_SOURCE_KEY,
    Declaration,
    ResolvedConfig,
    config_to_declaration,
    declaration_from_json,
    declaration_from_mapping,
    describe_origins,
    resolve_config,
)
from .unet import UNet3DConditionModel

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
STATE_DICT_KEYS = ("ema", "state_dict", "model")
KEEP_FLOAT32 = "rotary_emb.freqs"  # rotary frequencies stay float32 whatever the model's dtype
CONVERT_COMMAND = "python -m mvg_backend.seine convert {src} {dst} --trust-pickle"


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        raise MVGInputError(f"SEINE checkpoint {str(p)!r} is a folder; give the checkpoint file in it "
                            f"({', '.join(SUFFIXES)}).")
    if not p.is_file():
        raise MVGInputError(f"SEINE checkpoint {str(p)!r} does not exist; check the path.")
    if p.suffix.lower() not in SUFFIXES:
        raise MVGInputError(f"SEINE checkpoint {p.name!r}: expected one of {', '.join(SUFFIXES)}.")
    return p


def _corrupt(p: Path, exc: BaseException) -> MVGInputError:
    # torch's unpickling errors suggest weights_only=False: never repeat that; name the error type only
    detail = "" if isinstance(exc, pickle.UnpicklingError) else (str(exc).splitlines() or [""])[0][:200]
    return MVGInputError(
        f"SEINE checkpoint {p.name!r} ({p.stat().st_size:,} bytes) is truncated or corrupt ({type(exc).__name__}"
        f"{': ' + detail if detail else ''}). Download it again (the official seine.pt is about 3.6 GB)."
    )


def _convert_hint(p: Path) -> str:
    return CONVERT_COMMAND.format(src=p, dst=p.with_suffix(".safetensors"))


def unwrap_state_dict(obj: Any, name: str) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint: its ``ema``, ``state_dict`` or ``model`` entry, or itself."""
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = [str(k) for k in list(obj)[:6]] if isinstance(obj, Mapping) else type(obj).__name__
        raise MVGInputError(
            f"SEINE checkpoint {name!r} holds no state dict of tensors (looked in {', '.join(STATE_DICT_KEYS)} and "
            f"at the top level; found {found})."
        )
    return dict(obj)


# ------------------------------------------------------------------------------ what a checkpoint declares
def pickled_declarations(obj: Any, name: str) -> list[Declaration]:
    """The ``config`` / ``model_config`` entries beside the state dict of a loaded ``.pt``."""
    if not isinstance(obj, Mapping) or not any(isinstance(obj.get(k), Mapping) for k in STATE_DICT_KEYS):
        return []  # a bare state dict declares nothing
    return [declaration_from_mapping(obj[key], f"the {key!r} entry of {name!r}")
            for key in CONFIG_ENTRIES if key in obj]


def safetensors_declarations(metadata: Mapping[str, str] | None, name: str) -> list[Declaration]:
    """The architecture in a safetensors header: ``mvg_seine_config`` (ours), else a JSON ``config`` entry."""
    metadata = metadata or {}
    if METADATA_KEY in metadata:
        declaration = declaration_from_json(metadata[METADATA_KEY], f"the safetensors metadata of {name!r}")
        note = metadata.get(METADATA_SOURCE_KEY, "")
        return [Declaration(declaration.source, declaration.values, f"the converter noted: {note}" if note else "")]
    if "config" in metadata:
        return [declaration_from_json(metadata["config"], f"the 'config' entry of {name!r}'s safetensors metadata")]
    return []


def sidecar_path(path: Path) -> Path:
    """``<stem>.json`` next to the checkpoint (``seine.json`` for ``seine.safetensors``)."""
    return path.with_suffix(".json")


def sidecar_declarations(path: Path) -> list[Declaration]:
    """The ``<stem>.json`` beside ``path``, if there is one."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return []
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MVGInputError(f"{sidecar.name!r} next to {path.name!r} cannot be read ({exc}).") from None
    return [declaration_from_json(text, f"{sidecar.name!r} beside it")]


def _searched(path: Path) -> str:
    inside = ("no architecture in its safetensors metadata" if path.suffix.lower() == ".safetensors"
              else "no 'config'/'model_config' entry")
    return f"{inside}, no {sidecar_path(path).name} beside it"


# ------------------------------------------------------------------------------ reading
def _read(p: Path) -> tuple[dict[str, torch.Tensor], list[Declaration]]:
    """Tensors (CPU, stored dtypes) and what the file itself declares, unpickling nothing but tensors."""
    if p.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                metadata = f.metadata()
                state = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (no __iter__)
        except (SafetensorError, OSError) as exc:
            raise _corrupt(p, exc) from None
        return state, safetensors_declarations(metadata, p.name)
    # what the pickle would import, read from its opcodes: a file that needs more than tensors is refused
    # before anything is unpickled, whatever torch's own refusal would say
    scan = refuse_code_pickle(p, "SEINE checkpoint", _convert_hint(p))
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not scan.complete:
            raise _corrupt(p, exc) from None
        raise MVGInputError(
            f"SEINE checkpoint {p.name!r} is a complete pickle that torch's tensors-only loader cannot read (it uses "
            "constructs beyond tensors), and this pack never unpickles anything but tensors. If you trust the file "
            f"(the official seine.pt from Vchitect/SEINE), convert it once and use the converted file:\n    "
            f"{_convert_hint(p)}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _corrupt(p, exc) from None
    return unwrap_state_dict(obj, p.name), pickled_declarations(obj, p.name)


@dataclass
class SEINECheckpoint:
    """A SEINE checkpoint read from disk: its tensors and the architecture to run them with."""

    name: str
    state: dict[str, torch.Tensor]
    resolved: ResolvedConfig

    @property
    def config(self) -> SEINEConfig:
        return self.resolved.config

    @property
    def summary(self) -> str:
        """Widths and heads (from the shapes); GroupNorm groups and eps, and where they came from."""
        return self.resolved.summary

    @property
    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.state.values())


def read_seine_checkpoint(path: str | os.PathLike) -> SEINECheckpoint:
    """A SEINE checkpoint's tensors (CPU, stored dtypes) and architecture, unpickling nothing but tensors.

    The architecture: the shapes, plus what the file declares about the rest (its own metadata, then a
    ``<stem>.json`` beside it; :mod:`.metadata`), and the official SEINE values for what nothing declares.
    """
    p = _existing_file(path)
    state, declarations = _read(p)
    if not state:
        raise MVGInputError(f"SEINE checkpoint {p.name!r} holds no tensors.")
    declarations += sidecar_declarations(p)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return SEINECheckpoint(p.name, state, resolve_config(shapes, declarations, p.name, _searched(p)))


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], name: str) -> None:
    """``MVGInputError`` listing missing and unexpected keys (first few and counts) and shape conflicts."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    conflicts = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or conflicts:
        def listing(items: list[str]) -> str:
            return f"{len(items)}" + (f" (e.g. {', '.join(items[:4])})" if items else "")

        raise MVGInputError(
            f"SEINE checkpoint {name!r} does not match the UNet its shapes describe: missing keys {listing(missing)}; "
            f"unexpected keys {listing(unexpected)}; shape conflicts {listing(conflicts)}. Is it a complete SEINE "
            "UNet state dict (the official seine.pt's 'ema')?"
        )


def check_float_weights(state: Mapping[str, torch.Tensor], name: str) -> None:
    """``MVGInputError`` for integer (quantised) or bool tensors: SEINE's network runs on floating-point weights."""
    odd = [(k, v.dtype) for k, v in state.items() if not v.is_floating_point()]
    if odd:
        kinds = sorted({str(dtype).removeprefix("torch.") for _, dtype in odd})
        raise MVGInputError(
            f"SEINE checkpoint {name!r} holds {'/'.join(kinds)} tensors ({len(odd)} of {len(state)}, e.g. {odd[0][0]}): "
            "quantised or otherwise non-float weights, which SEINE's network cannot run. Use the float checkpoint "
            "(fp32, fp16 or bf16; the official seine.pt, converted once to .safetensors); pick the precision with the "
            "loader's dtype instead."
        )


def unet_from_state_dict(state: dict[str, torch.Tensor], *, config: SEINEConfig | None = None,
                         device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                         name: str = "state dict") -> UNet3DConditionModel:
    """Build the UNet on the meta device and assign the tensors (consumes ``state``).

    ``config`` defaults to what the shapes describe, with the official SEINE values for the rest
    (:func:`.config.infer_config`); pass :attr:`SEINECheckpoint.config` to honour what a checkpoint declares.
    """
    config = config or infer_config({k: tuple(v.shape) for k, v in state.items()})
    with torch.device("meta"):
        model = UNet3DConditionModel(config)
    check_state_dict(model, state, name)
    check_float_weights(state, name)
    for key in list(state):  # convert one tensor at a time, so the peak is one extra tensor
        target = torch.float32 if key.endswith(KEEP_FLOAT32) else dtype
        tensor = state.pop(key)
        state[key] = tensor.to(device=device, dtype=target if tensor.is_floating_point() else tensor.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_seine_unet(path: str | os.PathLike, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> UNet3DConditionModel:
    """The SEINE UNet in ``path``, in eval mode on ``device``/``dtype``, with the architecture
    :func:`read_seine_checkpoint` resolves (call that for the summary of where each value came from).

    ``forward(sample [b,9,f,h,w], timestep, encoder_hidden_states)`` returns epsilon ``[b,4,f,h,w]``.
    """
    checkpoint = read_seine_checkpoint(path)
    return unet_from_state_dict(checkpoint.state, config=checkpoint.config, device=device, dtype=dtype,
                                name=checkpoint.name)


# ------------------------------------------------------------------------------ conversion
def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *,
                       trust_pickle: bool = False) -> ResolvedConfig:
    """Unpickle a trusted SEINE ``.pt``/``.ckpt`` once and write its UNet state dict as ``.safetensors``.

    Unpickles (``torch.load(weights_only=False)``, through :func:`..io.pickles.unpickle_trusted`) only with
    ``trust_pickle=True``. The architecture is resolved as the loader does (shapes; the ``.pt``'s
    ``config``/``model_config`` entry and a ``<stem>.json`` beside it; official SEINE values for the rest)
    and written into the header (``mvg_seine_config``; where each value came from in
    ``mvg_seine_config_source``), so the converted file describes itself. The state dict is checked against
    that architecture before ``dst`` is written (atomically). Returns the resolved architecture.
    """
    source, target = Path(src).expanduser(), Path(dst).expanduser()
    check_convert_paths(source, target, trust_pickle)
    obj = unpickle_trusted(source)
    state = unwrap_state_dict(obj, source.name)
    declarations = pickled_declarations(obj, source.name) + sidecar_declarations(source)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    resolved = resolve_config(shapes, declarations, source.name, _searched(source))
    with torch.device("meta"):
        check_state_dict(UNet3DConditionModel(resolved.config), state, source.name)
    metadata = {
        "format": "pt",
        "mvg_model": "seine-unet",
        "source": source.name,
        METADATA_KEY: json.dumps(config_to_declaration(resolved.config)),
        METADATA_SOURCE_KEY: f"converted from {source.name!r}; {describe_origins(resolved.origins, resolved.config)}",
    }
    # the official rotary frequencies are one tensor under 16 names: save_safetensors copies shared tensors
    save_safetensors(state, target, metadata)
    return resolved
