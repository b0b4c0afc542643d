"""Transitions between consecutive keyframes: SEINE's "onelast" generation, or a fallback interpolator.

For keyframes ``k`` and ``k+1`` SEINE generates a clip of ``frames`` frames whose first and last are known:

- masked video: ``[keyframe k, grey, ..., grey, keyframe k+1]`` in pixels (unknown frames mid-grey), VAE-encoded;
- mask: 0 on the two known frames, 1 on the frames to generate (constant over each frame, so it equals its
  nearest-neighbour resize to the latent grid);
- the UNet input is ``[noisy latents (4), mask (1), masked-video latents (4)]``; DDPM or DDIM with CFG on
  the prompt against the empty prompt. The default prompt is the official script's effective one,
  ``"smooth transitionsmooth transition."`` (:data:`DEFAULT_PROMPT`).

SEINE works at 512x512 by default, as the official script does (it stretches both keyframes to its
``image_size`` 512x512, bilinearly); the generated frames are resized back to the keyframes' size.
``resolution="native"`` works at the keyframes' own size instead (edge-padded to multiples of 8, then cropped).

K keyframes make K−1 transitions; they are concatenated with each shared keyframe once, so the output has
``(K−1)·(frames−1)+1`` frames. Keyframe positions hold the keyframes themselves (not their VAE
reconstruction). Transition ``j`` (1-based) is seeded with ``seed + j − 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from ..errors import MVGInputError, MVGRuntimeError
from ..io import as_mask, as_rgb_image
from ..sd_parts import fit_prompt, prompt_cut_note
from .backend import SEINEBackend
from .diffusion import SAMPLERS, respaced_timesteps, sample
from .fallback import FALLBACK_METHODS, crossfade, interpolate

TRANSITION_METHODS = ("seine", *FALLBACK_METHODS)
DEFAULT_FRAMES, DEFAULT_STEPS, DEFAULT_CFG, DEFAULT_SAMPLER = 16, 250, 8.0, "ddpm"
MAX_FRAMES = 64
"""Frames per transition at most (the SEINE Transition node's cap; bounds the frames held in memory)."""
DEFAULT_PROMPT = "smooth transition" + "smooth transition."
"""The official script's effective prompt: its ``text_prompt[0]`` ("smooth transition") joined to its
``additional_prompt`` ("smooth transition.") with no space between: ``"smooth transitionsmooth transition."``."""
OFFICIAL_SIZE = 512
"""The official working size: the official script resizes both keyframes to ``OFFICIAL_SIZE`` squared."""
RESOLUTIONS = ("512 (official)", "native")
"""Where SEINE works: at 512x512 like the official script (frames resized back), or at the keyframes' size."""
DEFAULT_RESOLUTION = RESOLUTIONS[0]
VAE_CHUNK = 4
"""Frames per VAE call when encoding and decoding (bounds the VAE's activation memory)."""
LATENT_FACTOR = 8
ProgressCallback = Callable[[int, int], None]
"""``progress(units_done, units_total)`` over the whole run (model steps, then VAE decode chunks); raise to cancel."""


@dataclass(frozen=True)
class TransitionFrame:
    """What one output frame is: keyframe ``keyframe`` (0-based), or frame ``position`` of ``transition``."""

    index: int
    method: str  # "keyframe" or the interpolation method that made the frame
    keyframe: int | None = None
    transition: int | None = None  # 1-based: keyframes ``transition`` -> ``transition + 1`` (1-based)
    position: int | None = None  # 1..frames-2 within the transition
    seed: int | None = None


@dataclass
class TransitionResult:
    """``frames`` float32 ``[T,H,W,3]`` in 0..1, one :class:`TransitionFrame` per frame, notes and settings."""

    frames: np.ndarray
    records: list[TransitionFrame]
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """A readable account: settings, notes, and for every frame whether it is a keyframe or interpolated."""
        s = self.settings
        how = s["method"]
        if how == "seine":
            how += f" ({s['sampler']}, {s['steps']} steps, cfg {s['cfg']}, prompt {s['prompt']!r}, seed {s['seed']})"
        image = f"image {s['width']}x{s['height']}"
        if s["method"] == "seine":
            image += f"; SEINE worked at {s['work_width']}x{s['work_height']} (resolution {s['resolution']})"
        lines = [
            (f"transitions: {s['keyframes']} keyframes -> {s['keyframes'] - 1} transition(s) x {s['frames']} frames "
             f"= {len(self.records)} frames, by {how}"),
            image,
        ]
        lines += [f"note: {n}" for n in self.notes]
        inner = s["frames"] - 2
        for r in self.records:
            if r.keyframe is not None:
                lines.append(f"frame {r.index}: keyframe {r.keyframe + 1}")
            else:
                seed = f", seed {r.seed}" if r.seed is not None else ""
                lines.append(f"frame {r.index}: interpolated ({r.method}{seed}), keyframe {r.transition} -> "
                             f"{r.transition + 1}, {r.position}/{inner}")
        return "\n".join(lines)


def prepare_keyframes(keyframes: Any) -> tuple[np.ndarray, list[str]]:
    """``(float32 [K,H,W,3] in 0..1, notes)`` from a batch ``[K,H,W,C]`` or a sequence of images.

    Images of another size than the first are resized to it (and noted).
    """
    if hasattr(keyframes, "shape") and len(keyframes.shape) == 4:
        images = [keyframes[i] for i in range(keyframes.shape[0])]
    elif isinstance(keyframes, (list, tuple)):
        images = list(keyframes)
    else:
        images = [keyframes]
    if len(images) < 2:
        raise MVGInputError(
            f"keyframes: got {len(images)} image; a transition needs at least 2 (e.g. ProgressiveEdit's keyframes "
            "output with include_original on)."
        )
    notes: list[str] = []
    out = []
    for i, image in enumerate(images):
        rgb, image_notes = as_rgb_image(image, f"keyframe {i + 1}")
        notes += image_notes
        if out and rgb.shape != out[0].shape:
            (h, w), (h0, w0) = rgb.shape[:2], out[0].shape[:2]
            shrink = h * w > h0 * w0
            rgb = np.clip(cv2.resize(rgb, (w0, h0), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC), 0, 1)
            notes.append(f"keyframe {i + 1} is {w}x{h}: resized to the first keyframe's {w0}x{h0}.")
        out.append(rgb)
    return np.stack(out).astype(np.float32), notes


def pad_to_latent_grid(frames: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Edge-pad ``[K,H,W,3]`` at the bottom/right to multiples of 8 (the VAE's factor); outputs are cropped back."""
    h, w = frames.shape[1:3]
    pad_h, pad_w = -h % LATENT_FACTOR, -w % LATENT_FACTOR
    if not (pad_h or pad_w):
        return frames, []
    note = (f"keyframes are {w}x{h}, not multiples of {LATENT_FACTOR}: edge-padded to {w + pad_w}x{h + pad_h} "
            "for SEINE and the frames cropped back.")
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge"), [note]


def resize_to_official_size(frames: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """``[K,H,W,3]`` stretched to ``OFFICIAL_SIZE`` squared as the official script does (bilinear, corners not
    aligned, no antialiasing), and a note; unchanged if already that size."""
    h, w = frames.shape[1:3]
    size = OFFICIAL_SIZE
    if (h, w) == (size, size):
        return frames, []
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    resized = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    note = (f"keyframes are {w}x{h}: SEINE works at the official {size}x{size} (both keyframes stretched to it, as "
            f"the official script does); the generated frames are resized back to {w}x{h}.")
    return resized.permute(0, 2, 3, 1).numpy().astype(np.float32), [note]


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[N,h,w,3]`` -> ``[N,height,width,3]`` in 0..1: area averaging when shrinking, bicubic when enlarging."""
    h, w = frames.shape[1:3]
    if (h, w) == (height, width):
        return frames
    interpolation = cv2.INTER_AREA if height * width < h * w else cv2.INTER_CUBIC
    return np.stack([np.clip(cv2.resize(f, (width, height), interpolation=interpolation), 0, 1) for f in frames])


def onelast_conditioning(first: torch.Tensor, last: torch.Tensor, grey: torch.Tensor,
                         frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask [1,1,F,h,w], masked-video latents [1,4,F,h,w])`` for a clip whose first and last frames are known.

    ``first``, ``last``, ``grey``: latents ``[4,h,w]`` of the two keyframes and of a mid-grey frame.
    """
    video = torch.stack([first, *([grey] * (frames - 2)), last], dim=1)[None]
    mask = torch.ones((1, 1, frames, *first.shape[-2:]), dtype=first.dtype, device=first.device)
    mask[:, :, 0] = mask[:, :, -1] = 0
    return mask, video


def check_settings(method: str, frames: int, steps: int, cfg: float, sampler: str, seed: int, vae_chunk: int,
                    resolution: str) -> None:
    if method not in TRANSITION_METHODS:
        raise MVGInputError(f"method={method!r}: use one of {TRANSITION_METHODS}.")
    if resolution not in RESOLUTIONS:
        raise MVGInputError(f"resolution={resolution!r}: use one of {RESOLUTIONS} (the official run works at 512x512).")
    if not isinstance(frames, (int, np.integer)) or not 3 <= frames <= MAX_FRAMES:
        raise MVGInputError(
            f"frames={frames!r}: use 3..{MAX_FRAMES} frames per transition (both keyframes and at least one between; "
            f"the node's cap); SEINE was trained on {DEFAULT_FRAMES}. For a longer video add keyframes, or slow it "
            "down when you save it."
        )
    if sampler not in SAMPLERS:
        raise MVGInputError(f"sampler={sampler!r}: use one of {SAMPLERS} (the official run uses ddpm).")
    respaced_timesteps(steps)
    if not np.isfinite(cfg) or cfg < 0:
        raise MVGInputError(f"cfg={cfg!r}: use a value >= 0 (the official run uses {DEFAULT_CFG}).")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MVGInputError(f"seed={seed!r}: use an integer >= 0.")
    if not isinstance(vae_chunk, (int, np.integer)) or vae_chunk < 1:
        raise MVGInputError(f"vae_chunk={vae_chunk!r}: use an integer >= 1 (frames per VAE call).")


def step_generator(generator: torch.Generator, device: torch.device, seed: int) -> torch.Generator:
    """The generator of DDPM's per-step noise: on the CPU the transition's own (it goes on after the start
    noise, as in the official sampler); on a GPU one on that device seeded with ``seed``, so every step draws
    its noise where it is used instead of copying it from the host (DDPM runs on a GPU therefore differ from
    CPU runs of the same seed after the start; DDIM, deterministic, does not)."""
    if device.type in ("cpu", "meta"):
        return generator
    return torch.Generator(device).manual_seed(seed)


def compiled(unet: torch.nn.Module) -> Any:
    """``torch.compile(unet)``, made once per network and kept on it (compiling takes a while)."""
    forward = getattr(unet, "_mvg_compiled", None)
    if forward is None:
        forward = torch.compile(unet)
        object.__setattr__(unet, "_mvg_compiled", forward)  # not a submodule: state_dict() stays the network's
    return forward


def _seine_interiors(backend: SEINEBackend, keyframes: np.ndarray, *, frames: int, steps: int, cfg: float,
                     sampler: str, seed: int, prompt: str, vae_chunk: int,
                     progress: ProgressCallback | None, compile: bool = False) -> np.ndarray:
    """Generated in-between frames ``[K−1, frames−2, H, W, 3]`` for padded keyframes ``[K,H,W,3]``."""
    transitions = len(keyframes) - 1
    inner = frames - 2
    chunks = -(-transitions * inner // vae_chunk)
    total = transitions * steps + chunks

    def report(done: int) -> None:
        if progress is not None:
            progress(done, total)

    cond = backend.encode_text(prompt)
    uncond = backend.encode_text("") if cfg != 1.0 else None
    pixels = torch.from_numpy(np.concatenate([keyframes, np.full_like(keyframes[:1], 0.5)]))
    latents = torch.cat([backend.encode_frames(pixels[i:i + vae_chunk]) for i in range(0, len(pixels), vae_chunk)])

    unet = backend.prepare_unet()
    config, device = unet.config, unet.conv_in.weight.device
    if latents.shape[1] != config.latent_channels:
        raise MVGInputError(f"the VAE makes {latents.shape[1]}-channel latents but SEINE needs {config.latent_channels}: "
                            "connect SD 1.4's (SD 1.x) VAE.")
    if cond.shape[-1] != config.cross_attention_dim:
        raise MVGInputError(f"the text encoder gives {cond.shape[-1]}-dim features but SEINE needs "
                            f"{config.cross_attention_dim}: connect SD 1.4's (SD 1.x) CLIP ViT-L/14.")
    latents, cond = latents.to(device), cond.to(device)
    uncond = None if uncond is None else uncond.to(device)

    generated = []
    for j in range(transitions):
        generator = torch.Generator("cpu").manual_seed((seed + j) % 2**64)
        mask, video = onelast_conditioning(latents[j], latents[j + 1], latents[-1], frames)
        noise = torch.randn(video.shape, generator=generator).to(device)  # the start: the same on every device
        result = sample(compiled(unet) if compile else unet, noise, mask, video, cond, uncond, steps=steps, cfg=cfg,
                        sampler=sampler,
                        generator=step_generator(generator, device, (seed + j) % 2**64),
                        callback=lambda n, _total, j=j: report(j * steps + n))
        if not torch.isfinite(result).all():
            raise MVGRuntimeError(f"SEINE produced NaN/inf latents in transition {j + 1}: in fp16 try bf16 or fp32.")
        generated.append(result[0, :, 1:-1].transpose(0, 1).cpu())  # [inner, 4, h, w]

    inners = torch.cat(generated)
    decoded = []
    for c, i in enumerate(range(0, len(inners), vae_chunk)):
        decoded.append(backend.decode_latents(inners[i:i + vae_chunk]).float().numpy())
        report(transitions * steps + c + 1)
    return np.concatenate(decoded).reshape(transitions, inner, *decoded[0].shape[1:])


def transition_frames(keyframes: Any, *, method: str = "seine", backend: SEINEBackend | None = None,
                      frames: int = DEFAULT_FRAMES, steps: int = DEFAULT_STEPS, cfg: float = DEFAULT_CFG,
                      sampler: str = DEFAULT_SAMPLER, seed: int = 0, prompt: str = DEFAULT_PROMPT,
                      resolution: str = DEFAULT_RESOLUTION, vae_chunk: int = VAE_CHUNK,
                      progress: ProgressCallback | None = None, compile: bool = False,
                      mask: Any = None) -> TransitionResult:
    """Frames through all ``keyframes`` (batch ``[K,H,W,C]`` or a list), ``frames`` per transition.

    ``method="seine"`` needs ``backend`` (a :class:`SEINEBackend`); without one the optical-flow fallback
    runs and the result says so. ``"optical_flow"`` and ``"crossfade"`` need no model. ``resolution`` (one
    of :data:`RESOLUTIONS`) is where SEINE works: ``"512 (official)"`` or the keyframes' ``"native"`` size;
    the output always has the keyframes' size, and the fallbacks always work at it. ``compile=True`` runs the
    UNet through ``torch.compile`` (compiled once per network, on its first step). With ``mask`` (``[H,W]`` in
    0..1, the edit region) every in-between frame is ``M·frame + (1−M)·crossfade``: outside the region, where
    PIE keeps the keyframes equal to the original, nothing moves.
    """
    check_settings(method, frames, steps, cfg, sampler, seed, vae_chunk, resolution)
    images, notes = prepare_keyframes(keyframes)
    k, h, w = images.shape[:3]
    if method == "seine" and backend is None:
        method = "optical_flow"
        notes.append("no SEINE model connected: the transitions are optical-flow morphs (method optical_flow).")
    elif method != "seine" and backend is not None:
        notes.append(f"method {method}: the connected SEINE model is not used.")
    if method == "seine":
        notes += list(backend.notes)
        if hasattr(backend, "count_tokens"):  # cut to whole words that fit one CLIP context, as PIE does
            kept, tokens, dropped = fit_prompt(backend, prompt)
            if dropped:
                notes.append(prompt_cut_note("prompt", tokens, kept, dropped))
                prompt = kept
        if frames != DEFAULT_FRAMES:
            notes.append(f"SEINE was trained on {DEFAULT_FRAMES}-frame clips; {frames} frames per transition may "
                         "look less smooth.")
        if resolution == "native":
            work, size_notes = pad_to_latent_grid(images)
        else:
            work, size_notes = resize_to_official_size(images)
        notes += size_notes
        work_h, work_w = work.shape[1:3]
        inners = _seine_interiors(backend, work, frames=frames, steps=steps, cfg=cfg, sampler=sampler, seed=seed,
                                  prompt=prompt, vae_chunk=vae_chunk, progress=progress, compile=compile)
        if resolution == "native":
            inners = inners[:, :, :h, :w]
        else:
            inners = resize_frames(inners.reshape(-1, work_h, work_w, 3), h, w).reshape(k - 1, frames - 2, h, w, 3)
    else:
        inners = []
        for j in range(k - 1):
            inners.append(interpolate(images[j], images[j + 1], frames, method)[1:-1])
            if progress is not None:
                progress(j + 1, k - 1)

    if mask is not None:
        m = as_mask(mask, (h, w))[0][..., None]
        inners = [m * inners[j] + (1 - m) * crossfade(images[j], images[j + 1], frames)[1:-1] for j in range(k - 1)]
        notes.append("outside the mask the in-between frames are the keyframes' cross-dissolve, so only the "
                     "region of interest moves.")

    out, records = [images[0]], [TransitionFrame(0, "keyframe", keyframe=0)]
    for j in range(k - 1):
        seeded = (seed + j) % 2**64 if method == "seine" else None
        for p, frame in enumerate(inners[j], start=1):
            records.append(TransitionFrame(len(out), method, transition=j + 1, position=p, seed=seeded))
            out.append(frame)
        records.append(TransitionFrame(len(out), "keyframe", keyframe=j + 1))
        out.append(images[j + 1])
    settings = dict(method=method, keyframes=k, frames=frames, steps=steps, cfg=cfg, sampler=sampler, seed=seed,
                    prompt=prompt, width=w, height=h, resolution=resolution)
    if method == "seine":
        settings.update(work_width=work_w, work_height=work_h)
    return TransitionResult(np.stack(out).astype(np.float32), records, notes, settings)
