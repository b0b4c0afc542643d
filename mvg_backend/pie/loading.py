"""Offline loaders of SD 1.x components: a diffusers folder, an SD 1.x single file, a fine-tuned UNet.

They return :class:`SDComponents`; ``DiffusersBackend.from_components`` (or the SEINE backend) builds on
them. Nothing here reaches a model hub: every call passes ``local_files_only=True`` and single files are
read against the SD 1.x config folder shipped in ``configs/sd15`` (or one the caller passes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import MVGInputError
from ..io.pickles import PICKLE_SUFFIXES, convert_command, refuse_code_pickle

SD15_CONFIG = Path(__file__).parent / "configs" / "sd15"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "model.safetensors")
SAFETENSORS_NAME = {"diffusion_pytorch_model.bin": "diffusion_pytorch_model.safetensors",
                    "pytorch_model.bin": "model.safetensors"}
"""Where the converted weights of a pickled diffusers/transformers ``.bin`` go (the loaders prefer them)."""


@dataclass
class SDComponents:
    """The loaded parts of an SD 1.x model, and the weight files they came from (for provenance)."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    files: list[str] = field(default_factory=list)


DEVICE_HELP = "use cpu, cuda, cuda:N (an NVIDIA GPU), mps (Apple silicon) or xpu (Intel GPU)"


def check_device(device: str | torch.device, what: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` this machine has, or an :class:`MVGInputError` naming ``what`` and the fix."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise MVGInputError(f"{what} {str(device)!r} is not a torch device; {DEVICE_HELP}.") from None
    if dev.type == "meta":
        raise MVGInputError(f"{what} 'meta' holds no data and cannot run a model; {DEVICE_HELP}.")
    if dev.type == "cpu":
        return dev
    backend = getattr(torch, dev.type, None) if dev.type != "mps" else getattr(torch.backends, "mps", None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        built = " (this torch was built without CUDA)" if dev.type == "cuda" and torch.version.cuda is None else ""
        raise MVGInputError(f"{what} {str(device)!r}: this machine has no usable {dev.type} device{built}. Use cpu, "
                            f"or run where a {dev.type} device and a matching torch build are present.")
    count = getattr(backend, "device_count", None)
    if dev.index is not None and count is not None and dev.index >= count():
        raise MVGInputError(f"{what} {str(device)!r}: this machine has {count()} {dev.type} device(s), numbered from 0.")
    return dev


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise MVGInputError(f"{what} {str(p)!r} does not exist; check the path.")
    return p


def refuse_code_pickles(folder: Path, what: str) -> None:
    """Refuse (before diffusers or transformers unpickle anything) a model folder whose weights are pickles that
    would import more than tensors. A folder with ``.safetensors`` weights is read from those."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    for f in sorted(folder.iterdir()):
        if f.suffix.lower() in PICKLE_SUFFIXES and f.is_file():
            target = f.with_name(SAFETENSORS_NAME.get(f.name, f.stem + ".safetensors"))
            refuse_code_pickle(f, what, convert_command(f, target))


def _weight_files(folder: Path) -> list[str]:
    return sorted(str(f) for f in folder.rglob("*") if f.name in WEIGHT_NAMES or f.suffix == ".safetensors")


def resolve_unet_dir(path: str | Path) -> Path:
    """The folder holding a fine-tuned UNet's ``config.json``.

    Accepts the UNet folder itself, or a pipeline / training-checkpoint folder with a ``unet/`` subfolder
    (the PIE reference loaded the wrong subfolder here; this looks where the weights really are).
    """
    p = _existing(path, "fine-tuned UNet")
    for candidate in (p, p / "unet"):
        if (candidate / "config.json").is_file():
            return candidate
    raise MVGInputError(
        f"fine-tuned UNet {str(p)!r}: no config.json in it or in its 'unet/' subfolder. Point it at the folder "
        "that diffusers' UNet2DConditionModel.save_pretrained wrote (or at its parent pipeline folder)."
    )


def load_unet(path: str | Path, base: Any, *, dtype: torch.dtype = torch.float32) -> Any:
    """A fine-tuned UNet that replaces ``base`` (its config must fit the same VAE and text encoder).

    ``path`` is a diffusers UNet folder (or a folder with ``unet/``), or a ``.safetensors`` with diffusers
    or original-layout (``model.diffusion_model.*``) keys for the base UNet's architecture.
    """
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    p = _existing(path, "fine-tuned UNet")
    if p.is_file():
        if p.suffix != ".safetensors":
            raise MVGInputError(f"fine-tuned UNet {p.name!r}: give a .safetensors file or a diffusers UNet folder.")
        state = load_file(str(p))
        if any(k.startswith("model.diffusion_model.") for k in state):
            unet = UNet2DConditionModel.from_single_file(str(p), config=str(_config_dir_of(base)),
                                                         subfolder="unet", local_files_only=True,
                                                         torch_dtype=dtype)
        else:
            unet = UNet2DConditionModel.from_config(base.config).to(dtype)
            _check_fits(p.name, unet.state_dict(), state)
            unet.load_state_dict(state)
    else:
        folder = resolve_unet_dir(p)
        refuse_code_pickles(folder, f"fine-tuned UNet {str(folder)!r}: the weights file")
        unet = _from_pretrained(UNet2DConditionModel, folder, "fine-tuned UNet", torch_dtype=dtype)
    for key in ("cross_attention_dim", "in_channels", "out_channels"):
        if unet.config[key] != base.config[key]:
            raise MVGInputError(
                f"fine-tuned UNet {p.name!r} has {key}={unet.config[key]} but the base model uses "
                f"{base.config[key]}: it was fine-tuned from a different model family than the checkpoint."
            )
    return unet


def _check_fits(name: str, expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    conflicts = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or conflicts:
        raise MVGInputError(
            f"fine-tuned UNet {name!r} does not fit the base UNet: {len(missing)} missing keys (e.g. "
            f"{missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(conflicts)} shape "
            f"conflicts (e.g. {conflicts[:3]}). Was it fine-tuned from this base model?"
        )


def _from_pretrained(cls: Any, folder: Path, what: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(folder)`` offline, with a clear error for missing or unreadable weights."""
    try:
        return cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        detail = (str(exc).splitlines() or [""])[0][:300]
        raise MVGInputError(
            f"{what} in {str(folder)!r} could not be loaded ({type(exc).__name__}: {detail}). Check that its "
            "config.json and weights are complete (re-save it with save_pretrained, safetensors by default)."
        ) from None


def _config_dir_of(base: Any) -> Path:
    return getattr(base, "_mvg_config_dir", SD15_CONFIG)


def _finish(pipe_parts: dict[str, Any], *, unet: str | Path | None, device: str | torch.device,
            dtype: torch.dtype, files: list[str], config_dir: Path) -> SDComponents:
    base_unet = pipe_parts["unet"]
    base_unet._mvg_config_dir = config_dir
    if unet is not None:
        pipe_parts["unet"] = load_unet(unet, base_unet, dtype=dtype)
        files = files + ([str(unet)] if Path(unet).is_file() else _weight_files(resolve_unet_dir(unet)))
    for name in ("unet", "vae", "text_encoder"):
        pipe_parts[name] = pipe_parts[name].to(device=device)
    return SDComponents(**pipe_parts, files=files)


def load_pretrained(folder: str | Path, *, unet: str | Path | None = None, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float32) -> SDComponents:
    """Load a local diffusers-format SD 1.x folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``).

    ``unet`` optionally replaces the base UNet with a fine-tuned one (see :func:`load_unet`).
    """
    check_device(device)
    root = _existing(folder, "model folder")
    if root.is_file():
        raise MVGInputError(f"model folder {str(root)!r} is a file; pass a single-file checkpoint as --checkpoint "
                            "(load_single_file), or give the diffusers folder.")
    missing = [s for s in ("unet", "vae", "text_encoder", "tokenizer") if not (root / s).is_dir()]
    if not root.is_dir() or missing:
        raise MVGInputError(
            f"model folder {str(root)!r} is not a diffusers SD 1.x folder (missing: {missing or 'everything'}). "
            "Use a folder written by StableDiffusionPipeline.save_pretrained, or load a single .safetensors "
            "checkpoint with from_single_file."
        )
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    for sub in ("unet", "vae", "text_encoder"):
        refuse_code_pickles(root / sub, f"model folder {str(root)!r}: the {sub} weights file")
    sched_dir = root / "scheduler" if (root / "scheduler").is_dir() else SD15_CONFIG / "scheduler"
    parts = {
        "unet": _from_pretrained(UNet2DConditionModel, root / "unet", "the UNet", torch_dtype=dtype),
        "vae": _from_pretrained(AutoencoderKL, root / "vae", "the VAE", torch_dtype=dtype),
        "text_encoder": _from_pretrained(CLIPTextModel, root / "text_encoder", "the text encoder", dtype=dtype),
        "tokenizer": _from_pretrained(CLIPTokenizer, root / "tokenizer", "the tokenizer"),
        "scheduler": _from_pretrained(DDIMScheduler, sched_dir, "the scheduler config"),
    }
    return _finish(parts, unet=unet, device=device, dtype=dtype, files=_weight_files(root), config_dir=root)


def load_single_file(path: str | Path, *, config: str | Path | None = None, unet: str | Path | None = None,
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> SDComponents:
    """Load an original-layout SD 1.x checkpoint (``model.diffusion_model.*`` etc.) from one file.

    ``config`` is a diffusers-format config folder describing the architecture; by default the SD 1.x
    folder shipped with the pack. No hub access.
    """
    check_device(device)
    p = _existing(path, "checkpoint")
    if p.is_dir():
        raise MVGInputError(f"checkpoint {str(p)!r} is a folder; pass a diffusers model folder as --model-dir "
                            "(from_pretrained), or give the checkpoint file itself.")
    if p.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise MVGInputError(f"checkpoint {p.name!r}: expected one of {SINGLE_FILE_SUFFIXES}.")
    config_dir = _existing(config, "config folder") if config is not None else SD15_CONFIG
    if not config_dir.is_dir():
        raise MVGInputError(f"config folder {str(config_dir)!r} is a file; give the diffusers config folder (with "
                            "unet/, vae/, text_encoder/, tokenizer/, scheduler/ configs), or leave it out for SD 1.x.")
    if p.suffix.lower() != ".safetensors":  # read its pickle's opcodes before diffusers unpickles anything
        refuse_code_pickle(p, "checkpoint", convert_command(p, p.with_suffix(".safetensors")))
    from diffusers import StableDiffusionPipeline

    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(p), config=str(config_dir), local_files_only=True, safety_checker=None,
            requires_safety_checker=False, torch_dtype=dtype,
        )
    except Exception as exc:  # diffusers raises many types (OSError, ValueError, SingleFileComponentError...)
        raise MVGInputError(
            f"checkpoint {p.name!r} could not be loaded as an SD 1.x single file against the config in "
            f"{str(config_dir)!r}: {exc}. Is it an SD 1.x (not SDXL/SD2/inpainting) checkpoint? For another "
            "architecture pass config= a matching diffusers config folder."
        ) from exc
    parts = {k: getattr(pipe, k) for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    return _finish(parts, unet=unet, device=device, dtype=dtype, files=[str(p)], config_dir=config_dir)
