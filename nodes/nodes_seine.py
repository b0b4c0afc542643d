"""SEINE transitions between keyframes, and the SEINE checkpoint loader, as ComfyUI V3 nodes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import comfy.model_management
import comfy.model_patcher
import folder_paths
import torch
from comfy_api.latest import io

from ..mvg_backend.seine import (
    DEFAULT_CFG,
    DEFAULT_FRAMES,
    DEFAULT_PROMPT,
    DEFAULT_RESOLUTION,
    RESOLUTIONS,
    SAMPLERS,
    TRANSITION_METHODS,
    transition_frames,
)
from ..mvg_backend.seine.loading import SUFFIXES, read_seine_checkpoint, unet_from_state_dict
from .comfy_seine_backend import ComfySEINEBackend
from .progress import comfy_progress

SEINE_FOLDER = "seine"
folder_paths.add_model_folder_path(SEINE_FOLDER, os.path.join(folder_paths.models_dir, SEINE_FOLDER))

MVGSEINEModel = io.Custom("MVG_SEINE_MODEL")
# the node's defaults fit a CPU user's first run; the official script (the engine's defaults) uses ddpm 250
NODE_SAMPLER, NODE_STEPS = "ddim", 50
MODEL_ONLY = "Only acts with a SEINE model connected (the optical_flow / crossfade fallback ignores it). "
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass
class SEINEModel:
    """The value of an ``MVG_SEINE_MODEL`` socket: the network in a ``ModelPatcher``, its file name, and the
    loader's summary (architecture, and where GroupNorm groups and eps came from)."""

    patcher: Any
    name: str
    summary: str = ""


def seine_files() -> list[str]:
    return [f for f in folder_paths.get_filename_list(SEINE_FOLDER) if f.lower().endswith(SUFFIXES)]


class SEINELoader(io.ComfyNode):
    """Loads a SEINE UNet checkpoint from models/seine (architecture from its shapes and its declared config)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_SEINELoader",
            display_name="MVG SEINE Loader",
            category="MVG",
            description="Loads SEINE's video UNet (Vchitect/SEINE seine.pt, converted once to .safetensors) from "
                        "models/seine for MVG SEINE Transition. Widths and heads come from the tensor shapes; "
                        "GroupNorm groups and eps from the file's metadata, a <name>.json beside it, or else the "
                        "official SEINE values. The summary says which.",
            inputs=[
                io.Combo.Input("seine_name", options=seine_files(),
                               tooltip="A file in models/seine. A pickled seine.pt must be converted once: "
                                       "python -m mvg_backend.seine convert seine.pt seine.safetensors --trust-pickle"),
                io.Combo.Input("dtype", options=["auto", *DTYPES], default="auto",
                               tooltip="auto: what ComfyUI picks for this device (fp16/bf16 on GPUs, fp32 on CPU)."),
            ],
            outputs=[MVGSEINEModel.Output(display_name="seine_model",
                                          tooltip="Connect to MVG SEINE Transition's seine_model."),
                     io.String.Output(display_name="summary",
                                      tooltip="The architecture read from the file's shapes, and where GroupNorm "
                                              "groups and eps came from.")],
        )

    @classmethod
    def execute(cls, seine_name: str, dtype: str) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise(SEINE_FOLDER, seine_name)
        checkpoint = read_seine_checkpoint(path)
        load_device = comfy.model_management.get_torch_device()
        offload_device = comfy.model_management.unet_offload_device()
        if dtype == "auto":
            torch_dtype = comfy.model_management.unet_dtype(load_device, checkpoint.parameter_count,
                                                            list(DTYPES.values()))
        else:
            torch_dtype = DTYPES[dtype]
        network = unet_from_state_dict(checkpoint.state, config=checkpoint.config, device=offload_device,
                                       dtype=torch_dtype, name=seine_name)
        patcher = comfy.model_patcher.ModelPatcher(network, load_device=load_device, offload_device=offload_device)
        return io.NodeOutput(SEINEModel(patcher, seine_name, checkpoint.summary), checkpoint.summary)


class SEINETransition(io.ComfyNode):
    """Frames between consecutive keyframes: SEINE, or optical-flow morphing / cross-dissolve without a model."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_SEINETransition",
            display_name="MVG SEINE Transition",
            category="MVG",
            description="SEINE (arXiv 2310.20700) generates the frames between each pair of consecutive keyframes, "
                        "first and last frame known. K keyframes give K-1 transitions, joined without repeating "
                        "keyframes. Without a SEINE model the chosen fallback interpolates.",
            inputs=[
                io.Image.Input("keyframes", tooltip="Two or more images in order (e.g. ProgressiveEdit's keyframes)."),
                io.Vae.Input("vae", tooltip="SD 1.x VAE (SEINE was trained on SD 1.4's)."),
                io.Clip.Input("clip", tooltip="SD 1.x CLIP (SEINE was trained on SD 1.4's CLIP ViT-L/14)."),
                MVGSEINEModel.Input("seine_model", optional=True,
                                    tooltip="From MVG SEINE Loader. Without it, method seine falls back to optical_flow."),
                io.Int.Input("frames", default=DEFAULT_FRAMES, min=3, max=64,
                             tooltip="Frames per transition, both keyframes included (SEINE was trained on 16)."),
                io.Int.Input("steps", default=NODE_STEPS, min=1, max=1000,
                             tooltip=MODEL_ONLY + "Sampling steps per transition: 50 with ddim fits a first run "
                                     "(on a CPU still minutes per transition); the official script uses 250 with "
                                     "ddpm."),
                io.Float.Input("cfg", default=DEFAULT_CFG, min=0.0, max=30.0, step=0.1, round=0.01,
                               tooltip=MODEL_ONLY + "Classifier-free guidance against the empty prompt "
                                       "(official: 8)."),
                io.Combo.Input("sampler", options=list(SAMPLERS), default=NODE_SAMPLER,
                               tooltip=MODEL_ONLY + "ddim: deterministic, good in 25-50 steps (default); ddpm: "
                                       "the official script's sampler (stochastic, 250 steps)."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip=MODEL_ONLY + "Transition k uses seed + k - 1."),
                io.String.Input("prompt", default=DEFAULT_PROMPT, multiline=True, dynamic_prompts=False,
                                tooltip=MODEL_ONLY + "SEINE's text condition. The default is the official script's "
                                        "effective prompt: its text_prompt 'smooth transition' joined to its "
                                        "additional_prompt 'smooth transition.' with no space between."),
                io.Combo.Input("method", options=list(TRANSITION_METHODS), default="seine",
                               tooltip="seine needs a SEINE model; optical_flow and crossfade need none."),
                # appended last (widgets_values are positional), optional so older API prompts still validate
                io.Combo.Input("resolution", options=list(RESOLUTIONS), default=DEFAULT_RESOLUTION, optional=True,
                               tooltip="Where SEINE works. 512 (official): both keyframes stretched to 512x512 as "
                                       "the official script does, and the frames resized back to the keyframes' "
                                       "size. native: at the keyframes' own size (faster for small images, but "
                                       "SEINE was trained at 512). The fallbacks always work at native size."),
                io.Mask.Input("mask", optional=True,
                              tooltip="The edit region (e.g. ROI Mask's). Outside it the in-between frames are the "
                                      "keyframes' cross-dissolve, so only the region of interest moves."),
            ],
            outputs=[
                io.Image.Output(display_name="frames",
                                tooltip="Every frame of the video in order: keyframes and the frames between them "
                                        "(each keyframe once), for Create Video / Save DICOM / Evaluate."),
                io.String.Output(display_name="summary",
                                 tooltip="What made the frames (SEINE and its settings, or which fallback and "
                                         "why) and where the keyframes are; Evaluate's transition_summary."),
            ],
        )

    @classmethod
    def execute(cls, keyframes: torch.Tensor, vae: Any, clip: Any, frames: int, steps: int, cfg: float, sampler: str,
                seed: int, prompt: str, method: str, seine_model: SEINEModel | None = None,
                resolution: str = DEFAULT_RESOLUTION, mask: torch.Tensor | None = None) -> io.NodeOutput:
        progress = comfy_progress(1)

        backend = None
        if seine_model is not None:
            backend = ComfySEINEBackend(vae, clip, seine_model.patcher, model_summary=seine_model.summary)
        result = transition_frames(keyframes, method=method, backend=backend, frames=frames, steps=steps, cfg=cfg,
                                   sampler=sampler, seed=seed, prompt=prompt, resolution=resolution,
                                   progress=progress, mask=None if mask is None else mask[0])
        summary = result.summary
        if seine_model is not None and result.settings["method"] == "seine":
            summary = f"SEINE model: {seine_model.name}\n{summary}"
        return io.NodeOutput(torch.from_numpy(result.frames), summary)


NODES: list[type[io.ComfyNode]] = [SEINELoader, SEINETransition]
