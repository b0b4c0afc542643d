"""The PIE round logic (Progressive Image Editing, arXiv 2309.11745), staged as in MVG.

Written once over :class:`~mvg_backend.pie.backend.PIEBackend`. For each round n, with ``z0`` the
latents of the original, ``M`` the mask on the latent grid and ``z`` the previous state:

1. the engine draws the round's noise from its seed (over the whole latent) and sets the schedule:
   the last ``ceil(γ·S)`` steps of the S-step schedule;
2. ``z_hat = backend.denoise(z, z0, M, stage_text, spec)``: masked img2img from ``z`` noised to that
   level, re-anchoring the region outside the ROI to ``z0`` (re-noised) before every model call after
   the first;
3. ``z_hat = M·z_hat + (1−M)·z0``: the final re-anchoring;
4. ``z = M·(z0 + β2·(z_hat − z0)) + (1−M)·(z0 + β1·(z_hat − z0))``: blend toward the original;
5. decode, and composite the pixels outside the ROI back to the original.

``chain="pixel"`` re-encodes each round's composited frame as the next start (as the reference does);
``chain="latent"`` carries ``z`` on (no VAE round-trip per round).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MVGInputError, MVGRuntimeError
from ..io import as_mask, as_rgb_image, pad_to_multiple
from ..prompts import PromptPlan, Stage
from ..sd_parts import fit_prompt, prompt_cut_note
from .backend import PIEBackend, RoundSpec, TextConditioning, denoising_steps, round_noise

CHAIN_MODES = ("latent", "pixel")
POSTERIOR_MODES = ("mode", "sample")
_POSTERIOR_SEED_OFFSET = 0x9E3779B97F4A7C15  # posterior samples never reuse a round's noise stream
ProgressCallback = Callable[[int, int], None]
"""``progress(steps_done, steps_total)`` over the whole run; raise from it to cancel."""


@dataclass(frozen=True)
class FrameRecord:
    """Which stage and round made a frame (``stage == -1``: the original image)."""

    index: int
    stage: int
    stage_name: str
    round: int  # 1-based within the stage; 0 for the original
    global_round: int  # 1-based over the run; 0 for the original
    seed: int | None
    strength: float | None
    is_keyframe: bool


@dataclass
class PIEResult:
    """Frames ``[N,H,W,3]`` and keyframes ``[K,H,W,3]`` (float32, 0..1, the input's size)."""

    frames: np.ndarray
    keyframes: np.ndarray
    records: list[FrameRecord]
    keyframe_indices: list[int]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """A readable account of the run: settings, notes, and one line per frame."""
        s = self.settings
        lines = [
            f"PIE: {len(s['stage_rounds'])} stage(s), {sum(s['stage_rounds'])} round(s) "
            f"({'+'.join(map(str, s['stage_rounds']))}), {s['steps']} scheduler steps, cfg {s['guidance']}, "
            f"β1 {s['beta1']}, β2 {s['beta2']}, chain {s['chain']}, seed {s['seed']}"
            + (", VAE posterior sampled" if s.get("posterior") == "sample" else ""),
            f"image {s['width']}x{s['height']}, ROI covers {100 * s['roi_fraction']:.1f}% of it",
        ]
        lines += [f"note: {n}" for n in self.notes]
        for r in self.records:
            kf = " [keyframe]" if r.is_keyframe else ""
            if r.stage < 0:
                lines.append(f"frame {r.index}: original{kf}")
            else:
                lines.append(
                    f"frame {r.index}: stage {r.stage + 1} '{r.stage_name}' round {r.round}"
                    f"/{s['stage_rounds'][r.stage]} (γ {r.strength}, seed {r.seed}){kf}"
                )
        return "\n".join(lines)


def schedule_rounds(stages: Sequence[Stage], rounds: int) -> tuple[list[int], list[str]]:
    """Rounds per stage: a stage's own ``rounds`` wins; the run's ``rounds`` is shared by the rest.

    The shared rounds are split as evenly as possible, earlier stages taking the remainder; each stage
    gets at least one round (noted when that exceeds ``rounds``).
    """
    notes: list[str] = []
    free = [i for i, s in enumerate(stages) if s.rounds is None]
    fixed = sum(s.rounds for s in stages if s.rounds is not None)
    per_stage = [s.rounds or 0 for s in stages]
    if free:
        budget = rounds - fixed if fixed else rounds
        if budget < len(free):
            notes.append(
                f"rounds={rounds} is fewer than the {len(free)} stage(s) without their own rounds; "
                "each of them runs 1 round."
            )
            budget = len(free)
        base, extra = divmod(budget, len(free))
        for k, i in enumerate(free):
            per_stage[i] = base + (1 if k < extra else 0)
    return per_stage, notes


MAX_ROUNDS, MAX_STEPS, MAX_GUIDANCE, MIN_STRENGTH = 200, 1000, 100.0, 0.01
"""The Progressive Edit node's caps, for every caller (bounded work: a run is at most 200 × 1000 model steps)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and bool(np.isfinite(value))


def check_settings(rounds: int, strength: float, steps: int, guidance: float, beta1: float, beta2: float,
                   chain: str, posterior: str, seed: int) -> None:
    """``MVGInputError`` for a setting outside what :func:`progressive_edit` (and the node) accepts."""
    if not _is_int(rounds) or not 1 <= rounds <= MAX_ROUNDS:
        raise MVGInputError(f"rounds={rounds!r}: use an integer in 1..{MAX_ROUNDS} (the reference uses 10).")
    if not _is_real(strength) or not MIN_STRENGTH <= strength <= 1.0:
        raise MVGInputError(f"strength={strength!r}: γ must be a number in {MIN_STRENGTH}..1 (the reference uses 0.5).")
    if not _is_int(steps) or not 1 <= steps <= MAX_STEPS:
        raise MVGInputError(f"steps={steps!r}: use an integer in 1..{MAX_STEPS} (the reference uses 50; SD's "
                            "schedule has 1000 training timesteps).")
    if not _is_real(guidance) or not 0 <= guidance <= MAX_GUIDANCE:
        raise MVGInputError(f"guidance (cfg)={guidance!r}: use a number in 0..{MAX_GUIDANCE:g} (the reference uses 7.5).")
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not _is_real(beta) or not 0.0 <= beta <= 1.0:
            raise MVGInputError(f"{name}={beta!r}: β must be a number in [0, 1] (defaults: beta1 0.01, beta2 0.75).")
    if not _is_int(seed) or not -(2**63) <= seed < 2**64:
        raise MVGInputError(f"seed={seed!r}: use an integer in 0..2**64-1 (round k uses seed + k - 1).")
    if chain not in CHAIN_MODES:
        raise MVGInputError(f"chain={chain!r}: use one of {CHAIN_MODES}.")
    if posterior not in POSTERIOR_MODES:
        raise MVGInputError(f"posterior={posterior!r}: use one of {POSTERIOR_MODES}.")


def _check_finite(latents: torch.Tensor, where: str, guidance: float) -> None:
    if not torch.isfinite(latents).all():
        raise MVGRuntimeError(
            f"NaN/Inf appeared in the latents {where}. Usually fp16 overflow in the UNet or VAE: run in "
            f"fp32/bf16 (or use an fp16-safe VAE), lower cfg (now {guidance}), or check the checkpoint."
        )


def latent_mask(mask: np.ndarray, latent_size: tuple[int, int], factor: int) -> torch.Tensor:
    """The mask ``[H,W]`` on the latent grid ``[1,1,h,w]``: edge-padded to a multiple of ``factor``, then
    area-averaged, so a latent cell is exactly 1 (0) where all its pixels are, also at the bottom/right
    border of an image whose size is not a multiple of ``factor``."""
    h, w = mask.shape
    padded = np.pad(mask, ((0, (-h) % factor), (0, (-w) % factor)), mode="edge")
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(padded))[None, None], size=latent_size, mode="area")


def _encode_stage_text(backend: PIEBackend, stage: Stage, index: int, notes: list[str]) -> TextConditioning:
    texts = []
    for what, text in (("prompt", stage.prompt), ("negative prompt", stage.negative_prompt)):
        kept, tokens, dropped = fit_prompt(backend, text)
        if dropped:
            notes.append(f"stage {index + 1} '{stage.label}': {prompt_cut_note(what, tokens, kept, dropped)}")
        texts.append(kept)
    return backend.encode_prompt(*texts)


def blend_toward_original(latents: torch.Tensor, original: torch.Tensor, mask: torch.Tensor,
                          beta1: float, beta2: float) -> torch.Tensor:
    """``M·(z0 + β2·(z − z0)) + (1−M)·(z0 + β1·(z − z0))``."""
    delta = latents - original
    return mask * (original + beta2 * delta) + (1 - mask) * (original + beta1 * delta)


def progressive_edit(
    backend: PIEBackend,
    image: Any,
    mask: Any,
    prompts: PromptPlan | str | Sequence[str],
    *,
    rounds: int = 10,
    strength: float = 0.5,
    steps: int = 50,
    guidance: float = 7.5,
    beta1: float = 0.01,
    beta2: float = 0.75,
    seed: int = 0,
    chain: str = "latent",
    include_original: bool = True,
    posterior: str = "mode",
    progress: ProgressCallback | None = None,
) -> PIEResult:
    """Run PIE over the stages of ``prompts`` and return every round's frame plus the keyframes.

    ``image``: ``[H,W,3]`` (or gray / RGBA / a batch of one) in 0..1; ``mask``: ``[H,W]`` in 0..1, 1 where
    the image may change (resized to the image if needed; ``None`` edits everything). ``rounds`` is the
    total over all stages (a stage's own ``rounds`` overrides its share); round ``k`` (1-based over the
    run) uses seed ``(seed + k - 1) mod 2**64`` for its noise. ``guidance`` is the CFG weight g of
    ``uncond + g·(cond − uncond)`` for any g >= 0 (g = 1: conditional pass only). Prompts longer than one
    CLIP context are cut to whole words that fit, with a note. ``posterior="sample"`` encodes images as
    seeded samples of the VAE posterior (as the reference) instead of its mode. Sizes that are not a
    multiple of the VAE factor are edge-padded for the run and cropped back. With ``include_original``
    the original is frame 0 and the first keyframe.
    """
    plan = PromptPlan.coerce(prompts)
    check_settings(rounds, strength, steps, guidance, beta1, beta2, chain, posterior, seed)
    rgb, notes = as_rgb_image(image)
    height, width = rgb.shape[:2]
    mask_px, mask_notes = as_mask(mask, (height, width))
    notes += mask_notes
    if float(mask_px.max()) <= 1e-6:
        raise MVGInputError(
            "mask is empty (all zeros): there is nothing to edit. Draw the region of interest (ComfyUI mask "
            "editor), connect MVG_ROIMask, or pass a mask of ones to edit the whole image."
        )
    if float(mask_px.max()) < 0.5:
        notes.append(f"mask is faint: its strongest value is {float(mask_px.max()):.3g}, so every edit is scaled down to "
                     f"at most {float(mask_px.max()):.1%} of full strength. Use a mask that is 1 where the image may change.")
    if float(mask_px.min()) >= 1.0 - 1e-6:
        notes.append("mask covers the whole image: nothing is anchored to the original; only β2 keeps it recognisable.")
    stage_rounds, round_notes = schedule_rounds(plan.stages, int(rounds))
    if sum(stage_rounds) > MAX_ROUNDS:
        raise MVGInputError(
            f"prompts: {len(plan.stages)} stage(s) need {sum(stage_rounds)} rounds in all (each stage runs at least "
            f"one, a stage's own {{rounds=N}} counts in full), more than the {MAX_ROUNDS} a run may take. Use fewer "
            "stages or smaller per-stage rounds."
        )
    notes += round_notes

    factor = int(backend.vae_scale_factor)
    rgb_p, mask_p, (pad_h, pad_w) = pad_to_multiple(rgb, mask_px, factor)
    if pad_h or pad_w:
        notes.append(
            f"image {width}x{height} is not a multiple of {factor}: padded by {pad_w}x{pad_h} px (image and mask "
            "edge-replicated) for the run and cropped back."
        )

    def encode(pixels: torch.Tensor, sample_seed: int) -> torch.Tensor:
        if posterior == "mode":
            return backend.encode_image(pixels)
        return backend.encode_image(pixels, sample_seed=(sample_seed + _POSTERIOR_SEED_OFFSET) % 2**64)

    original_px = torch.from_numpy(rgb_p)[None]
    mask_px_t = torch.from_numpy(mask_p)[None, :, :, None]
    z0 = encode(original_px, int(seed))
    _check_finite(z0, "after encoding the image", guidance)
    mask_lat = latent_mask(mask_px, tuple(z0.shape[-2:]), factor).to(device=z0.device, dtype=z0.dtype)

    stage_steps = [denoising_steps(float(s.strength or strength), int(steps)) for s in plan.stages]
    total_steps = sum(n * k for n, k in zip(stage_steps, stage_rounds))
    done = 0

    def frame_from(latents: torch.Tensor) -> torch.Tensor:
        decoded = backend.decode_latents(latents).float().cpu()
        return mask_px_t * decoded + (1 - mask_px_t) * original_px

    frames: list[torch.Tensor] = []
    records: list[FrameRecord] = []
    keyframe_indices: list[int] = []
    if include_original:
        frames.append(original_px)
        keyframe_indices.append(0)
        records.append(FrameRecord(0, -1, "original", 0, 0, None, None, True))

    z = z0
    global_round = 0
    for stage_index, (stage, n_rounds, n_steps) in enumerate(zip(plan.stages, stage_rounds, stage_steps)):
        text = _encode_stage_text(backend, stage, stage_index, notes)
        gamma = float(stage.strength or strength)
        for round_in_stage in range(1, n_rounds + 1):
            global_round += 1
            round_seed = (int(seed) + global_round - 1) % 2**64
            noise, anchor_noise, generator = round_noise(tuple(z0.shape), round_seed)
            spec = RoundSpec(steps=int(steps), denoise_steps=n_steps, guidance=float(guidance), seed=round_seed,
                             noise=noise, anchor_noise=anchor_noise, generator=generator)

            def on_step(step: int, _total: int, _base: int = done) -> None:
                if progress is not None:
                    progress(_base + step, total_steps)

            z_hat = backend.denoise(z, z0, mask_lat, text, spec, on_step)
            done += n_steps
            _check_finite(z_hat, f"in stage {stage_index + 1} round {round_in_stage}", guidance)
            z_hat = mask_lat * z_hat.to(z0) + (1 - mask_lat) * z0  # the final re-anchoring, for every backend
            z = blend_toward_original(z_hat, z0, mask_lat, beta1, beta2)
            frame = frame_from(z)
            if chain == "pixel" and global_round < sum(stage_rounds):  # the next round starts from these pixels
                z = encode(frame, (round_seed + 1) % 2**64)
            last = round_in_stage == n_rounds
            if last:
                keyframe_indices.append(len(frames))
            records.append(FrameRecord(len(frames), stage_index, stage.label, round_in_stage, global_round,
                                       round_seed, gamma, last))
            frames.append(frame)

    stacked = torch.cat(frames)[:, :height, :width].clamp(0, 1).numpy().astype(np.float32)
    settings = {
        "rounds": int(rounds), "stage_rounds": stage_rounds, "strength": float(strength), "steps": int(steps),
        "guidance": float(guidance), "beta1": float(beta1), "beta2": float(beta2), "seed": int(seed),
        "chain": chain, "posterior": posterior, "include_original": bool(include_original), "width": width,
        "height": height, "roi_fraction": float(mask_px.mean()),
        "stages": [{"prompt": s.prompt, "negative_prompt": s.negative_prompt, "name": s.name,
                    "strength": float(s.strength or strength), "denoise_steps": n, "rounds": k}
                   for s, n, k in zip(plan.stages, stage_steps, stage_rounds)],
    }
    return PIEResult(
        frames=stacked,
        keyframes=stacked[keyframe_indices],
        records=records,
        keyframe_indices=keyframe_indices,
        notes=notes,
        settings=settings,
    )
