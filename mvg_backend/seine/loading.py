"""Reading SEINE UNet checkpoints safely, and the one-time conversion of pickled ones to safetensors.

:func:`load_seine_unet` reads ``.safetensors`` (preferred) or a ``.pt/.pth/.ckpt/.bin`` holding ``ema`` (the official
``seine.pt``), ``state_dict``, ``model`` or a bare state dict, with ``torch.load(weights_only=True)``.
It infers the architecture from the shapes, builds the network on the meta device (no memory, no random
init) and assigns the checkpoint's tensors with strict key and shape checks. A pickle that needs more
than tensors is refused with the conversion command; :func:`convert_checkpoint` (``python -m
mvg_backend.seine convert IN OUT.safetensors --trust-pickle``) is the only code that unpickles.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import MVGInputError
from .config import SEINEConfig, infer_config
from .unet import UNet3DConditionModel

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
STATE_DICT_KEYS = ("ema", "state_dict", "model")
KEEP_FLOAT32 = "rotary_emb.freqs"  # rotary frequencies stay float32 whatever the model's dtype
CONVERT_COMMAND = "python -m mvg_backend.seine convert {src} {dst} --trust-pickle"


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise MVGInputError(f"SEINE checkpoint {str(p)!r} does not exist (or is not a file).")
    if p.suffix.lower() not in SUFFIXES:
        raise MVGInputError(f"SEINE checkpoint {p.name!r}: expected one of {', '.join(SUFFIXES)}.")
    return p


def _corrupt(p: Path, exc: BaseException) -> MVGInputError:
    return MVGInputError(
        f"SEINE checkpoint {p.name!r} ({p.stat().st_size:,} bytes) is truncated or corrupt ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0][:200] if str(exc) else 'no detail'}). Download it again "
        "(the official seine.pt is about 3.6 GB)."
    )


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


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A SEINE checkpoint's tensors, on the CPU in their stored dtypes, without unpickling anything but tensors."""
    p = _existing_file(path)
    if p.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except (SafetensorError, OSError) as exc:
            raise _corrupt(p, exc) from None
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):
            raise _corrupt(p, exc) from None
        dst = p.with_suffix(".safetensors")
        raise MVGInputError(
            f"SEINE checkpoint {p.name!r} pickles Python objects besides tensors, so it cannot be read safely "
            f"(torch.load weights_only=True refused it). If you trust the file (the official seine.pt from "
            f"Vchitect/SEINE), convert it once to safetensors and use that file instead:\n    "
            f"{CONVERT_COMMAND.format(src=p, dst=dst)}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _corrupt(p, exc) from None
    return unwrap_state_dict(obj, p.name)


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


def unet_from_state_dict(state: dict[str, torch.Tensor], *, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32, name: str = "state dict") -> UNet3DConditionModel:
    """Build the UNet the shapes describe on the meta device and assign the tensors (consumes ``state``)."""
    config = infer_config({k: tuple(v.shape) for k, v in state.items()})
    with torch.device("meta"):
        model = UNet3DConditionModel(config)
    check_state_dict(model, state, name)
    for key in list(state):  # convert one tensor at a time, so the peak is one extra tensor
        target = torch.float32 if key.endswith(KEEP_FLOAT32) else dtype
        tensor = state.pop(key)
        state[key] = tensor.to(device=device, dtype=target if tensor.is_floating_point() else tensor.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def load_seine_unet(path: str | os.PathLike, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> UNet3DConditionModel:
    """The SEINE UNet in ``path`` (architecture inferred from its shapes), in eval mode on ``device``/``dtype``.

    ``forward(sample [b,9,f,h,w], timestep, encoder_hidden_states)`` returns epsilon ``[b,4,f,h,w]``.
    """
    p = _existing_file(path)
    return unet_from_state_dict(read_state_dict(p), device=device, dtype=dtype, name=p.name)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *,
                       trust_pickle: bool = False) -> SEINEConfig:
    """Unpickle a trusted SEINE ``.pt``/``.ckpt`` once and write its UNet state dict as ``.safetensors``.

    The only place in the pack that runs ``torch.load(weights_only=False)``, and only with
    ``trust_pickle=True``. The state dict is checked against the architecture its shapes describe before
    ``dst`` is written (atomically). Returns that architecture.
    """
    from safetensors.torch import save_file

    source, target = Path(src).expanduser(), Path(dst).expanduser()
    if not trust_pickle:
        raise MVGInputError(
            f"converting {source.name!r} unpickles it, which can run code stored in the file. Pass --trust-pickle "
            "only for a file from a source you trust (the official seine.pt)."
        )
    if not source.is_file():
        raise MVGInputError(f"{str(source)!r} does not exist.")
    if target.suffix.lower() != ".safetensors":
        raise MVGInputError(f"output {target.name!r}: the converted file must end in .safetensors.")
    if target.exists():
        raise MVGInputError(f"output {str(target)!r} exists; remove it or choose another name.")
    try:
        obj = torch.load(str(source), map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _corrupt(source, exc) from None
    state = unwrap_state_dict(obj, source.name)
    config = infer_config({k: tuple(v.shape) for k, v in state.items()})
    with torch.device("meta"):
        check_state_dict(UNet3DConditionModel(config), state, source.name)
    # safetensors stores each tensor once: copy tensors that share storage (the official rotary
    # frequencies are one tensor under 16 names)
    seen: set[int] = set()
    tensors = {}
    for key, tensor in state.items():
        pointer = tensor.untyped_storage().data_ptr()
        tensors[key] = tensor.detach().clone() if pointer in seen else tensor.detach().contiguous()
        seen.add(pointer)
    partial = target.with_name(target.name + ".part")
    save_file(tensors, str(partial), metadata={"format": "pt", "mvg_model": "seine-unet", "source": source.name})
    os.replace(partial, target)
    return config
