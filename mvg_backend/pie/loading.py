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

SD15_CONFIG = Path(__file__).parent / "configs" / "sd15"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "model.safetensors")


@dataclass
class SDComponents:
    """The loaded parts of an SD 1.x model, and the weight files they came from (for provenance)."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    files: list[str] = field(default_factory=list)


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise MVGInputError(f"{what} {str(p)!r} does not exist; check the path.")
    return p


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
        unet = UNet2DConditionModel.from_pretrained(str(resolve_unet_dir(p)), local_files_only=True,
                                                    torch_dtype=dtype)
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
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = _existing(folder, "model folder")
    missing = [s for s in ("unet", "vae", "text_encoder", "tokenizer") if not (root / s).is_dir()]
    if not root.is_dir() or missing:
        raise MVGInputError(
            f"model folder {str(root)!r} is not a diffusers SD 1.x folder (missing: {missing or 'everything'}). "
            "Use a folder written by StableDiffusionPipeline.save_pretrained, or load a single .safetensors "
            "checkpoint with from_single_file."
        )
    sched_dir = root / "scheduler" if (root / "scheduler").is_dir() else SD15_CONFIG / "scheduler"
    parts = {
        "unet": UNet2DConditionModel.from_pretrained(str(root / "unet"), local_files_only=True, torch_dtype=dtype),
        "vae": AutoencoderKL.from_pretrained(str(root / "vae"), local_files_only=True, torch_dtype=dtype),
        "text_encoder": CLIPTextModel.from_pretrained(str(root / "text_encoder"), local_files_only=True,
                                                      dtype=dtype),
        "tokenizer": CLIPTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True),
        "scheduler": DDIMScheduler.from_pretrained(str(sched_dir), local_files_only=True),
    }
    return _finish(parts, unet=unet, device=device, dtype=dtype, files=_weight_files(root), config_dir=root)


def load_single_file(path: str | Path, *, config: str | Path | None = None, unet: str | Path | None = None,
                     device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> SDComponents:
    """Load an original-layout SD 1.x checkpoint (``model.diffusion_model.*`` etc.) from one file.

    ``config`` is a diffusers-format config folder describing the architecture; by default the SD 1.x
    folder shipped with the pack. No hub access.
    """
    from diffusers import StableDiffusionPipeline

    p = _existing(path, "checkpoint")
    if p.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise MVGInputError(f"checkpoint {p.name!r}: expected one of {SINGLE_FILE_SUFFIXES}.")
    config_dir = _existing(config, "config folder") if config is not None else SD15_CONFIG
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(p), config=str(config_dir), local_files_only=True, safety_checker=None,
            requires_safety_checker=False, torch_dtype=dtype,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise MVGInputError(
            f"checkpoint {p.name!r} could not be loaded as an SD 1.x single file against the config in "
            f"{str(config_dir)!r}: {exc}. Is it an SD 1.x (not SDXL/SD2/inpainting) checkpoint? For another "
            "architecture pass config= a matching diffusers config folder."
        ) from exc
    parts = {k: getattr(pipe, k) for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}
    return _finish(parts, unet=unet, device=device, dtype=dtype, files=[str(p)], config_dir=config_dir)
