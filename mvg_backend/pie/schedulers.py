"""The diffusers schedulers the PIE backend offers, and how one round picks its timesteps from them."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import MVGInputError

SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "ddpm": "DDPMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
}
"""Name -> diffusers class. ``pndm`` is what the SD 1.4 checkpoint the reference used ships with."""

_UNIPC = ("UniPC's corrector rebuilds each step's latents from its previous, un-anchored sample, so it "
          "overwrites PIE's re-anchoring of the region outside the mask")
REFUSED = {"unipc": _UNIPC, "UniPCMultistepScheduler": _UNIPC}
"""Schedulers left out on purpose (by name and by class), with the reason."""


def check_scheduler_class(scheduler: Any) -> None:
    """Refuse a scheduler instance whose stepping undoes the re-anchoring (see ``REFUSED``)."""
    name = type(scheduler).__name__
    if name in REFUSED:
        raise MVGInputError(f"scheduler {name} cannot run PIE: {REFUSED[name]}. Use one of {sorted(SCHEDULERS)}.")


def make_scheduler(name: str, base: Any) -> Any:
    """A scheduler of kind ``name`` (see ``SCHEDULERS``) with the noise schedule (betas, offset) of ``base``."""
    import diffusers

    if name in REFUSED:
        raise MVGInputError(f"scheduler {name!r} cannot run PIE: {REFUSED[name]}. Use one of {sorted(SCHEDULERS)}.")
    if name not in SCHEDULERS:
        raise MVGInputError(f"scheduler {name!r} is not supported; choose one of {sorted(SCHEDULERS)}.")
    overrides = {"skip_prk_steps": True} if name == "pndm" else {}  # PLMS only, as SD's own PNDM config
    return getattr(diffusers, SCHEDULERS[name]).from_config(base.config, **overrides)


def round_timesteps(scheduler: Any, steps: int, denoise_steps: int, device: Any = None) -> torch.Tensor:
    """The timesteps one round runs: the last ``denoise_steps`` steps of the ``steps``-step schedule.

    Resets the scheduler (``set_timesteps``) and points its step index at the round's first step. PNDM
    (PLMS) needs its warm-up pair at the start of the round, ``[t_n, t_{n-1}, t_{n-1}, ..., t_1]`` (so
    ``n + 1`` model calls for ``n >= 2``): slicing its full list, as diffusers' img2img does, would
    leave the pair at the start of the full schedule and feed PLMS timesteps one step off.
    """
    scheduler.set_timesteps(steps, device=device)
    n = denoise_steps
    if type(scheduler).__name__ == "PNDMScheduler":
        if not scheduler.config.skip_prk_steps:
            raise MVGInputError("PNDM with Runge-Kutta warm-up (skip_prk_steps=False) is not supported; "
                                "use make_scheduler('pndm', ...), which runs PLMS as Stable Diffusion does.")
        unique = torch.unique(scheduler.timesteps).flip(0)  # t_S > ... > t_1
        tail = unique[steps - n:]
        return torch.cat([tail[:1], tail[1:2], tail[1:]]) if n >= 2 else tail
    begin = (steps - n) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]
