"""ProgressiveEdit (PIE) as a ComfyUI V3 node."""

from __future__ import annotations

import torch

import comfy.samplers
from comfy_api.latest import io

from ..mvg_backend.pie import progressive_edit
from ..mvg_backend.prompts import PromptPlan
from .comfy_backend import ComfyBackend
from .mvg_types import MVGPrompts
from .progress import comfy_progress


class ProgressiveEdit(io.ComfyNode):
    """PIE: masked img2img over several rounds per stage, blended back toward the original."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MVG_ProgressiveEdit",
            display_name="MVG Progressive Edit (PIE)",
            category="MVG",
            description="Progressive Image Editing (arXiv 2309.11745) over MVG's disease stages. Edits only inside "
                        "the mask; outside it every step is re-anchored to the original. Prompts are cut to the "
                        "75 CLIP tokens that fit one context (the summary names what was dropped).",
            inputs=[
                io.Model.Input("model"),
                io.Clip.Input("clip"),
                io.Vae.Input("vae"),
                io.Image.Input("image", tooltip="One image (batch of 1)."),
                io.Mask.Input("mask", tooltip="1 where the disease may change the image; resized to the image."),
                MVGPrompts.Input("prompts"),
                io.Int.Input("rounds", default=10, min=1, max=200,
                             tooltip="Total PIE rounds, shared by the stages (a stage's {rounds=N} overrides)."),
                io.Float.Input("strength", default=0.5, min=0.01, max=1.0, step=0.01,
                               tooltip="γ: how far each round re-noises; each round runs the last ceil(γ·steps) "
                                       "steps of the steps-step schedule."),
                io.Int.Input("steps", default=50, min=1, max=1000, tooltip="Scheduler steps of a full denoise."),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance g in uncond + g·(cond − uncond), for every g ≥ 0 "
                                       "(1: the prompt alone; below 1 moves toward the negative prompt)."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="ddim"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform"),
                io.Float.Input("beta1", default=0.01, min=0.0, max=1.0, step=0.01,
                               tooltip="β1: how much of each round's change is kept outside the mask. The region "
                                       "outside is re-anchored to the original after every round, so β1 only "
                                       "acts where the mask is soft (between 0 and 1)."),
                io.Float.Input("beta2", default=0.75, min=0.0, max=1.0, step=0.01,
                               tooltip="β2: how much of each round's change is kept inside the mask."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Round k uses seed + k - 1."),
                io.Combo.Input("chain", options=["latent", "pixel"], default="latent",
                               tooltip="latent: carry latents between rounds; pixel: decode and re-encode each "
                                       "round (as the reference)."),
                io.Boolean.Input("include_original", default=True,
                                 tooltip="Put the original first in both frames and keyframes."),
            ],
            outputs=[
                io.Image.Output(display_name="frames",
                                tooltip="Every PIE round's image in order (the original first with "
                                        "include_original)."),
                io.Image.Output(display_name="keyframes",
                                tooltip="The last round of each stage (the original first with include_original), "
                                        "for SEINE Transition."),
                io.String.Output(display_name="summary",
                                 tooltip="The stage plan (MVG_PROMPTS as text), then the PIE settings, notes (e.g. "
                                         "a prompt cut to 75 tokens) and one line per frame."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, vae, image: torch.Tensor, mask: torch.Tensor, prompts: PromptPlan, rounds: int,
                strength: float, steps: int, cfg: float, sampler_name: str, scheduler: str, beta1: float,
                beta2: float, seed: int, chain: str, include_original: bool) -> io.NodeOutput:
        progress = comfy_progress(1)

        backend = ComfyBackend(model, clip, vae, sampler_name, scheduler)
        result = progressive_edit(
            backend, image, mask, prompts, rounds=rounds, strength=strength, steps=steps, guidance=cfg,
            beta1=beta1, beta2=beta2, seed=seed, chain=chain, include_original=include_original, progress=progress,
        )
        # the plan first: the one text preview of a template shows what was staged, and only after a real run
        summary = f"{PromptPlan.coerce(prompts).describe()}\n\n{result.summary}"
        return io.NodeOutput(torch.from_numpy(result.frames), torch.from_numpy(result.keyframes), summary)


NODES: list[type[io.ComfyNode]] = [ProgressiveEdit]
