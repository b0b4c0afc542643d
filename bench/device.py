"""One device benchmark of PIE and SEINE at real size against their floors (random weights, built offline).

On a GPU (the default when CUDA is present; under 8 minutes on one modern GPU) it uses the real architectures:
SD 1.5 from ``mvg_backend/pie/configs/sd15`` for PIE, and SEINE's official UNet (909 M parameters; its config
read off ``tests/fixtures/seine_unet_state_dict_manifest.json``, the official state dict's shapes) with SD's
VAE and CLIP for SEINE. It prints one table:

* **PIE 512 px**: seconds per round at γ 0.5, 50 steps, cfg 7.5 (``--dtype``, fp16 by default), and the
  overhead against its floor: the round's ``ceil(γ·S)`` CFG-batched UNet calls plus one VAE encode and one
  decode per frame, each timed alone on the same inputs;
* **SEINE 512², 16 frames**: seconds per transition (VAE encode of the keyframes + sampling + the chunked
  decode of the 14 new frames) for DDIM-25, DDIM-50 and DDPM-250 at cfg 8; a row is measured when all its
  steps ran, otherwise ``est.``: the steps that ran, scaled to the full count (``--max-steps``); the peak
  memory of sampling and of the chunked decode (CUDA allocator peaks, each above what was allocated before);
  and the achieved TFLOP/s against the device's peak. FLOPs are counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on one CFG step (one UNet call on the batch of 2: matmuls,
  convolutions and attention, 2 FLOPs per multiply-add; norms and elementwise ops are not counted), about 27.4
  TFLOP at 512², 16 frames;
* **copies in the loop**: tensor copies that change device and host syncs per step inside the PIE and SEINE
  sampling loops (``bench.timing.DeviceCopyCounter``: what the dispatcher sees after the first UNet call);
* **fp16 and bf16 against fp32**: max abs difference of the final frames (0..1) of one PIE round and one
  SEINE transition (DDIM, ``--compare-steps`` steps) from the same weights and noise;
* with ``--compile``: the UNets run through ``torch.compile``, and the compile time is reported apart.

``--tiny`` runs the same code on tiny random models at 32 px with a few steps (seconds on a CPU; CI runs it).

    PYTHONPATH=. python bench/device.py               # on a GPU
    PYTHONPATH=. python bench/device.py --compile     # the same with torch.compile
    PYTHONPATH=. python bench/device.py --tiny        # CPU smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.models import sd15_parts, synthetic_case, wrap
from bench.timing import DeviceCopyCounter
from mvg_backend.pie import DiffusersBackend, denoising_steps, progressive_edit
from mvg_backend.pie.backend import RoundSpec, round_noise
from mvg_backend.sd_parts import clip_last_hidden_state, vae_decode, vae_encode
from mvg_backend.seine import SEINEConfig, UNet3DConditionModel, infer_config, sample
from mvg_backend.seine.transition import VAE_CHUNK, onelast_conditioning, step_generator

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tests" / "fixtures" / "seine_unet_state_dict_manifest.json"
LATENT_SCALE = 0.18215
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
               "RTX 4090": 165.0, "V100": 125.0, "T4": 65.0}
"""Dense fp16/bf16 tensor-core peaks (TFLOP/s, SXM parts, no sparsity), from the vendors' data sheets."""
SEINE_SAMPLERS = (("ddim", 25), ("ddim", 50), ("ddpm", 250))
TINY_SEINE = SEINEConfig(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                         up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), layers_per_block=1,
                         attention_heads=(1, 2), cross_attention_dim=64)


# --------------------------------------------------------------------------------------------------
# clocks and memory
# --------------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def peak_bytes(device: torch.device, fn: Callable[[], Any]) -> tuple[int | None, Any]:
    """Peak memory ``fn`` adds above what was allocated before it (CUDA allocator), or None on a CPU."""
    if device.type != "cuda":
        return None, fn()
    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base, out


def gib(n: int | None) -> str:
    return "n/a (CPU)" if n is None else f"{n / 2**30:.2f} GiB"


def device_peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------
def sd_parts(tiny: bool) -> tuple[Any, Any, Any]:
    """``(unet, vae, text_encoder)``: SD 1.5 (random weights) or the tiny random model of ``random_model``."""
    if not tiny:
        return sd15_parts()
    from mvg_backend.pie.random_model import random_tiny_backend

    b = random_tiny_backend(seed=0)
    return b.unet, b.vae, b.text_encoder


def seine_unet(tiny: bool) -> UNet3DConditionModel:
    """SEINE's official architecture (from the manifest of the official state dict), or a tiny one; random."""
    config = TINY_SEINE if tiny else infer_config(json.loads(MANIFEST.read_text())["params"])
    torch.manual_seed(0)
    return UNet3DConditionModel(config).eval().requires_grad_(False)


def cast(module: Any, device: torch.device, dtype: torch.dtype) -> Any:
    return copy.deepcopy(module).to(device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# PIE
# --------------------------------------------------------------------------------------------------
def pie_backend(parts: tuple[Any, Any, Any], device: torch.device, dtype: torch.dtype, compile: bool) -> DiffusersBackend:
    unet, vae, text_encoder = (cast(m, device, dtype) for m in parts)
    backend = wrap(unet, vae, text_encoder)
    backend.compile = compile
    return backend


def run_pie(backend: DiffusersBackend, image: np.ndarray, mask: np.ndarray, rounds: int, steps: int) -> np.ndarray:
    return progressive_edit(backend, image, mask, "chest x-ray, opacity in the right lower lobe", rounds=rounds,
                            strength=0.5, steps=steps, guidance=7.5, seed=0, include_original=False).frames


def pie_floor(backend: DiffusersBackend, image: np.ndarray, n_unet: int, device: torch.device) -> float:
    """One round's unavoidable model work, each part timed alone: n CFG UNet calls, 1 encode, 1 decode."""
    pixels = torch.from_numpy(image)[None]
    z = vae_encode(backend.vae, pixels, scale=LATENT_SCALE)
    context = torch.cat([clip_last_hidden_state(backend.tokenizer, backend.text_encoder, t) for t in ("", "x")])
    context = context.to(device, backend.dtype)
    latents = torch.cat([z, z]).to(device, backend.dtype)
    t = torch.tensor(500, device=device)
    unet = backend.unet_forward
    t_unet, _ = timed(device, lambda: [unet(latents, t, encoder_hidden_states=context) for _ in range(n_unet)])
    t_enc, _ = timed(device, lambda: vae_encode(backend.vae, pixels, scale=LATENT_SCALE))
    t_dec, _ = timed(device, lambda: vae_decode(backend.vae, z, scale=LATENT_SCALE))
    return t_unet + t_enc + t_dec


def pie_loop_copies(backend: DiffusersBackend, image: np.ndarray, steps: int) -> tuple[int, int, int]:
    """(device-changing copies, host syncs, UNet calls) inside one round's sampling loop."""
    pixels = torch.from_numpy(image)[None]
    z0 = vae_encode(backend.vae, pixels, scale=LATENT_SCALE).to(backend.device)
    mask = torch.ones((1, 1, *z0.shape[-2:]), device=backend.device)
    text = backend.encode_prompt("a", "")
    noise, anchor, generator = round_noise(tuple(z0.shape), 0)
    n = denoising_steps(0.5, steps)
    spec = RoundSpec(steps=steps, denoise_steps=n, guidance=7.5, seed=0, noise=noise, anchor_noise=anchor,
                     generator=generator)
    compiled, backend.compile = backend.compile, False  # the counter watches the eager loop (a dispatch mode)
    try:
        with DeviceCopyCounter(loop_start=backend.unet) as counter:
            backend.denoise(z0, z0, mask, text, spec)
    finally:
        backend.compile = compiled
    return counter.total_copies, counter.syncs, n


def bench_pie(args: argparse.Namespace, device: torch.device, rows: list[tuple[str, str]]) -> None:
    size, steps, rounds = (32, 10, 1) if args.tiny else (512, 50, 2)
    dtype = DTYPES[args.dtype]
    image, mask = synthetic_case(size)
    parts = sd_parts(args.tiny)
    backend = pie_backend(parts, device, dtype, args.compile)
    n = denoising_steps(0.5, steps)
    if args.compile:
        t_first, _ = timed(device, lambda: run_pie(backend, image, mask, 1, 2))
        t_again, _ = timed(device, lambda: run_pie(backend, image, mask, 1, 2))
        rows.append(("PIE torch.compile time (first 2-step run minus the next)",
                     f"{t_first - t_again:.1f} s ({t_first:.1f} s, then {t_again:.2f} s)"))
    else:
        run_pie(backend, image, mask, 1, 2)  # warm-up: allocator, kernels, cuDNN autotuning
    t_run, _ = timed(device, lambda: run_pie(backend, image, mask, rounds, steps))
    per_round = t_run / rounds
    floor = pie_floor(backend, image, n, device)
    label = f"PIE {size} px, γ 0.5, {steps} steps, cfg 7.5, {args.dtype}"
    rows.append((f"{label}: s/round", f"{per_round:.3f} s ({rounds} rounds, {n} UNet calls each)"))
    rows.append(("PIE floor: s/round (UNet calls + 1 encode + 1 decode)", f"{floor:.3f} s"))
    rows.append(("PIE overhead vs floor", f"{per_round / floor:.3f}"))
    copies, syncs, n_steps = pie_loop_copies(backend, image, steps)
    rows.append(("PIE copies in the loop (device-changing / host syncs)",
                 f"{copies} / {syncs} over {n_steps} steps"))

    # precision: one round of --compare-steps steps against fp32, same weights and noise
    compare = args.compare_steps
    ref = run_pie(pie_backend(parts, device, torch.float32, False), image, mask, 1, compare)
    for name in ("fp16", "bf16"):
        frames = run_pie(pie_backend(parts, device, DTYPES[name], False), image, mask, 1, compare)
        diff = float(np.abs(frames - ref).max()) if np.isfinite(frames).all() else float("nan")
        rows.append((f"PIE {name} vs fp32: max |Δ frame| (1 round, {compare} steps)", f"{diff:.4f}"))
    del backend


# --------------------------------------------------------------------------------------------------
# SEINE
# --------------------------------------------------------------------------------------------------
class SEINECase:
    """SEINE's inputs for one transition on ``device``: conditioning latents, text, start noise."""

    def __init__(self, vae: Any, text_encoder: Any, tokenizer: Any, size: int, frames: int,
                 device: torch.device) -> None:
        image, _ = synthetic_case(size)
        keyframes = torch.from_numpy(np.stack([image, image[::-1].copy(), np.full_like(image, 0.5)]))
        self.keyframes = keyframes
        self.latents = vae_encode(vae, keyframes, scale=LATENT_SCALE).to(device)
        self.mask, self.video = onelast_conditioning(self.latents[0], self.latents[1], self.latents[2], frames)
        cond = clip_last_hidden_state(tokenizer, text_encoder, "smooth transitionsmooth transition.")
        uncond = clip_last_hidden_state(tokenizer, text_encoder, "")
        self.cond, self.uncond = cond.float().to(device), uncond.float().to(device)
        self.generator = torch.Generator("cpu").manual_seed(0)
        self.noise = torch.randn(self.video.shape, generator=self.generator).to(device)
        self.device = device

    def sample(self, unet: Any, sampler: str, steps: int, max_steps: int | None = None) -> torch.Tensor:
        """``steps``-step sampling; with ``max_steps`` only that many steps run (stopped from the callback)."""
        class Stop(Exception):
            pass

        def stop(n: int, _total: int) -> None:
            if max_steps is not None and n >= max_steps:
                raise Stop

        generator = step_generator(torch.Generator("cpu").manual_seed(0), self.device, 0)
        try:
            return sample(unet, self.noise, self.mask, self.video, self.cond, self.uncond, steps=steps, cfg=8.0,
                          sampler=sampler, generator=generator, callback=stop)
        except Stop:
            return self.noise


def decode_chunked(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """The engine's decode: ``VAE_CHUNK`` frames per VAE call."""
    return torch.cat([vae_decode(vae, latents[i:i + VAE_CHUNK], scale=LATENT_SCALE)
                      for i in range(0, len(latents), VAE_CHUNK)])


def inner_frames(latents: torch.Tensor) -> torch.Tensor:
    return latents[0, :, 1:-1].transpose(0, 1)


def count_step_flops(unet: Any, case: SEINECase) -> float:
    """FLOPs of one CFG step: one UNet call on the batch of 2 (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.cat([case.noise, case.noise])
    conditioning = torch.cat([case.mask, case.video], dim=1)
    model_input = torch.cat([x, torch.cat([conditioning, conditioning])], dim=1)
    timesteps = torch.full((2,), 500, device=case.device, dtype=torch.long)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(model_input, timesteps, torch.cat([case.cond, case.uncond]))
    return float(counter.get_total_flops())


def bench_seine(args: argparse.Namespace, device: torch.device, rows: list[tuple[str, str]]) -> None:
    size, frames = (32, 8) if args.tiny else (512, 16)
    max_steps = 2 if args.tiny else args.max_steps
    dtype = DTYPES[args.dtype]
    _, vae, text_encoder = sd_parts(args.tiny)
    from transformers import CLIPTokenizer

    from mvg_backend.pie.loading import SD15_CONFIG

    tokenizer = CLIPTokenizer.from_pretrained(SD15_CONFIG / "tokenizer", local_files_only=True)
    vae, text_encoder = cast(vae, device, dtype), cast(text_encoder, device, dtype)
    base = seine_unet(args.tiny)
    unet = cast(base, device, dtype)
    forward = torch.compile(unet) if args.compile else unet
    case = SEINECase(vae, text_encoder, tokenizer, size, frames, device)
    label = f"SEINE {size}x{size}, {frames} frames, cfg 8, {args.dtype}"

    if args.compile:
        t_first, _ = timed(device, lambda: case.sample(forward, "ddim", 2))
        t_again, _ = timed(device, lambda: case.sample(forward, "ddim", 2))
        rows.append(("SEINE torch.compile time (first 2 steps minus the next 2)",
                     f"{t_first - t_again:.1f} s ({t_first:.1f} s, then {t_again:.2f} s)"))
    else:
        case.sample(forward, "ddim", 2)  # warm-up
    t_encode, _ = timed(device, lambda: vae_encode(vae, case.keyframes, scale=LATENT_SCALE))
    mem_decode, _ = peak_bytes(device, lambda: decode_chunked(vae, inner_frames(case.noise)))
    t_decode, _ = timed(device, lambda: decode_chunked(vae, inner_frames(case.noise)))

    flops = count_step_flops(unet, case)
    peak = device_peak_tflops(device, args.peak_tflops)
    step_seconds = []
    mem_sample = None
    for sampler, steps in SEINE_SAMPLERS:
        ran = steps if max_steps is None else min(steps, max_steps)
        t_sample, _ = timed(device, lambda: case.sample(forward, sampler, steps, max_steps))
        if mem_sample is None:
            mem_sample, _ = peak_bytes(device, lambda: case.sample(forward, sampler, 2, 2))
        per_step = t_sample / ran
        step_seconds.append(per_step)
        total = t_encode + per_step * steps + t_decode
        how = "measured" if ran == steps else f"est. from {ran} of {steps} steps"
        rows.append((f"{label}: {sampler.upper()}-{steps} s/transition",
                     f"{total:.2f} s ({how}; {per_step:.3f} s/step, encode {t_encode:.2f} s, decode {t_decode:.2f} s)"))
    per_step = min(step_seconds)
    achieved = flops / per_step / 1e12
    rows.append(("SEINE FLOPs per CFG step (FlopCounterMode, one UNet call, batch 2)", f"{flops / 1e12:.4g} TFLOP"))
    rows.append(("SEINE achieved TFLOP/s vs device peak",
                 f"{achieved:.4g}" + (f" of {peak:.0f} ({100 * achieved / peak:.1f}%)" if peak else
                                      " (device peak unknown: pass --peak-tflops)")))
    rows.append(("SEINE peak memory: sampling (2 CFG steps) / chunked decode of the new frames",
                 f"{gib(mem_sample)} / {gib(mem_decode)} (chunks of {VAE_CHUNK})"))

    with DeviceCopyCounter(loop_start=unet) as counter:
        case.sample(unet, "ddpm", 4)
    rows.append(("SEINE copies in the loop (device-changing / host syncs)",
                 f"{counter.total_copies} / {counter.syncs} over 4 DDPM steps"))

    # precision: one DDIM transition of --compare-steps steps against fp32, same weights and noise
    compare = args.compare_steps
    results = {}
    for name in ("fp32", "fp16", "bf16"):
        d = DTYPES[name]
        u, v = cast(base, device, d), cast(vae, device, d)
        latents = case.sample(u, "ddim", compare)
        results[name] = decode_chunked(v, inner_frames(latents))
        del u, v
    for name in ("fp16", "bf16"):
        diff = (results[name] - results["fp32"]).abs().max().item()
        rows.append((f"SEINE {name} vs fp32: max |Δ frame| (DDIM-{compare})", f"{diff:.4f}"))


# --------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models at 64 px, a few steps (CPU/CI)")
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="default: fp16 on a GPU, bf16 on a CPU")
    parser.add_argument("--compile", action="store_true", help="run the UNets through torch.compile")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="run at most this many steps of each SEINE sampler and scale (default: all)")
    parser.add_argument("--compare-steps", type=int, default=None, help="steps of the dtype comparison runs")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's fp16 peak, if not known")
    parser.add_argument("--skip", choices=("pie", "seine"), action="append", default=[])
    args = parser.parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # casting random models with .to(dtype) is what we mean to do
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    args.dtype = args.dtype or ("fp16" if device.type == "cuda" else "bf16")
    args.compare_steps = args.compare_steps or (2 if args.tiny else 10)
    if device.type == "cpu":
        torch.set_num_threads(min(torch.get_num_threads(), 2))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    started = time.perf_counter()
    rows: list[tuple[str, str]] = []
    failed = []
    with torch.inference_mode():
        for part, run in (("pie", bench_pie), ("seine", bench_seine)):
            if part in args.skip:
                continue
            try:
                run(args, device, rows)
            except Exception as exc:  # report what was measured so far, and the failure, in the table
                failed.append(part)
                rows.append((f"{part.upper()} FAILED", f"{type(exc).__name__}: {exc}"[:300]))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    elapsed = time.perf_counter() - started
    width = max(len(k) for k, _ in rows)
    print(f"bench/device.py on {name} ({device}), torch {torch.__version__}, {args.dtype}"
          f"{', --tiny' if args.tiny else ''}{', --compile' if args.compile else ''}")
    print(f"{'what':<{width}} | value")
    print("-" * (width + 3 + 40))
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"total {elapsed:.1f} s; peak resident memory of the process {rss:.2f} GiB")
    if failed:
        raise SystemExit(f"bench/device.py: {', '.join(failed)} failed (see the table)")


if __name__ == "__main__":
    main()
