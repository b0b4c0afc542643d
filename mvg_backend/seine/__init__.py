"""SEINE transitions (arXiv 2310.20700): frames between consecutive disease-state keyframes.

A clean-room SEINE that loads the official weights:

- ``load_seine_unet(path, device="cpu", dtype=torch.float32)``: the 3-D UNet (``unet.py``; its temporal
  attention is in ``attention.py``), architecture read from the checkpoint's shapes (``config.py``) and what
  it declares about the rest, e.g. GroupNorm groups (``metadata.py``); ``read_seine_checkpoint(path).summary``
  says where each value came from;
- ``sample(unet, noise, mask, masked_video, cond, uncond, steps=, cfg=, sampler=, generator=)``: ADM's
  DDPM/DDIM with classifier-free guidance (``diffusion.py``);
- ``transition_frames(keyframes, backend=..., ...)``: K keyframes -> K−1 chained transitions
  (``transition.py``), with a :class:`SEINEBackend` for the VAE and text encoder (``backend.py``), or the
  optical-flow / cross-dissolve fallbacks (``fallback.py``) without a model.

``python -m mvg_backend.seine convert IN.pt OUT.safetensors --trust-pickle`` converts a pickled checkpoint once.
"""

from .backend import LATENT_SCALE, DiffusersSEINEBackend, SEINEBackend
from .config import SEINE_SD14, SEINEConfig, infer_config
from .diffusion import SAMPLERS, RespacedSchedule, respaced_timesteps, sample
from .fallback import crossfade, optical_flow_morph
from .loading import (
                         SEINECheckpoint,
                         convert_checkpoint,
                         load_seine_unet,
                         read_seine_checkpoint,
                         unet_from_state_dict,
)
from .transition import (
                         DEFAULT_CFG,
                         DEFAULT_FRAMES,
                         DEFAULT_PROMPT,
                         DEFAULT_RESOLUTION,
                         DEFAULT_SAMPLER,
                         DEFAULT_STEPS,
                         OFFICIAL_SIZE,
                         RESOLUTIONS,
                         TRANSITION_METHODS,
                         TransitionFrame,
                         TransitionResult,
                         onelast_conditioning,
                         transition_frames,
)
from .unet import UNet3DConditionModel

__all__ = [
    "DEFAULT_CFG", "DEFAULT_FRAMES", "DEFAULT_PROMPT", "DEFAULT_RESOLUTION", "DEFAULT_SAMPLER", "DEFAULT_STEPS",
    "LATENT_SCALE", "OFFICIAL_SIZE", "RESOLUTIONS", "SAMPLERS", "SEINE_SD14", "TRANSITION_METHODS",
    "DiffusersSEINEBackend", "RespacedSchedule", "SEINEBackend", "SEINECheckpoint", "SEINEConfig", "TransitionFrame",
    "TransitionResult", "UNet3DConditionModel", "convert_checkpoint", "crossfade", "infer_config", "load_seine_unet",
    "onelast_conditioning", "optical_flow_morph", "read_seine_checkpoint", "respaced_timesteps", "sample",
    "transition_frames", "unet_from_state_dict",
]
