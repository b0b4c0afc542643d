"""Benchmark of the SEINE engine (``mvg_backend.seine``) on CPU with random-weight models.

Every comparison is a ratio of quantities measured in the same run. Four parts:

1. **sampler step**: wall time of one sampler step (one batched CFG UNet call on ``[cond; uncond]`` plus the
   DDIM update) for a mid-size SEINE (widths 64/128/256, heads of 32 channels, text dim 768) on 16 frames
   of a 128 px clip (16x16 latents; ``--size``), from ``sample``'s per-step callback;
2. **SDPA vs naive attention**: one UNet forward with the model's attention kernel
   (``torch.nn.functional.scaled_dot_product_attention``) against an explicit ``softmax(q·kᵀ/√d + bias)·v``,
   and the largest difference of their outputs;
3. **VAE decode memory**: peak resident memory added by decoding the 14 in-between frames of a 16-frame
   transition with SD's VAE architecture (random weights), all at once vs in the engine's chunks of
   ``VAE_CHUNK`` frames; each in a fresh process (``ru_maxrss``), so one does not hide the other;
4. **UNet evaluations per transition**: counted by running ``sample`` with a counting stand-in network,
   for DDPM-250 (the official setting) and DDIM-25/50; with part 1's step time this gives the CPU time
   per transition of each.

Run from the repository root::

    PYTHONPATH=. python bench/seine.py                 # 128 px: a few minutes on an idle 2-core machine
    PYTHONPATH=. python bench/seine.py --size 256 --repeats 2   # SD-like sizes take much longer
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import os
import resource
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from mvg_backend.seine import SEINEConfig, UNet3DConditionModel, sample
from mvg_backend.seine import attention as seine_attention
from mvg_backend.seine.transition import VAE_CHUNK, onelast_conditioning

MID = SEINEConfig(
    block_out_channels=(64, 128, 256),
    down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
    up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
    layers_per_block=2,
    attention_heads=(2, 4, 8),
    cross_attention_dim=768,
)
FRAMES = 16


def naive_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """The textbook attention: materialise the logits, add the bias, softmax, multiply."""
    logits = query @ key.transpose(-1, -2) / math.sqrt(query.shape[-1])
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1) @ value


def mid_model() -> UNet3DConditionModel:
    torch.manual_seed(0)
    return UNet3DConditionModel(MID).eval().requires_grad_(False)


def conditioning(latent: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    first, last, grey = (torch.randn(4, latent, latent, generator=g) for _ in range(3))
    mask, video = onelast_conditioning(first, last, grey, FRAMES)
    noise = torch.randn(video.shape, generator=g)
    cond, uncond = torch.randn(1, 77, 768, generator=g), torch.randn(1, 77, 768, generator=g)
    return noise, mask, video, cond, uncond


def step_times(unet: torch.nn.Module, latent: int, steps: int) -> list[float]:
    """Wall time of each DDIM step of one ``sample`` call (CFG batch 2)."""
    noise, mask, video, cond, uncond = conditioning(latent)
    stamps = [time.perf_counter()]
    sample(unet, noise, mask, video, cond, uncond, steps=steps, cfg=8.0, sampler="ddim",
           callback=lambda done, total: stamps.append(time.perf_counter()))
    return [b - a for a, b in itertools.pairwise(stamps)]


def forward_time(unet: torch.nn.Module, latent: int, repeats: int) -> tuple[float, torch.Tensor]:
    noise, mask, video, cond, uncond = conditioning(latent)
    x = torch.cat([torch.cat([noise, mask, video], 1)] * 2)
    text = torch.cat([cond, uncond])
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            out = unet(x, torch.tensor([500, 500]), text)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _decode_peak(size: int, chunk: int, queue: multiprocessing.Queue) -> None:
    """In a fresh process: build SD's VAE, decode the 14 in-between frames in chunks; report the RSS peak rise."""
    from diffusers import AutoencoderKL

    from mvg_backend.pie.loading import SD15_CONFIG

    torch.manual_seed(0)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIG / "vae")).eval()
    latents = torch.randn(FRAMES - 2, 4, size // 8, size // 8)
    with torch.no_grad():
        vae.decode(latents[:1])  # warm up kernels and allocator outside the measurement
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        for i in range(0, len(latents), chunk):
            vae.decode(latents[i:i + chunk]).sample.numpy()
        elapsed = time.perf_counter() - t0
    queue.put(((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, elapsed))


def decode_peak(size: int, chunk: int) -> tuple[float, float]:
    """``(peak MiB added, seconds)`` of decoding in ``chunk``-frame calls, measured in a child process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_decode_peak, args=(size, chunk, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


class CountingUNet(torch.nn.Module):
    """Stands in for the network and counts its evaluations (and the batch each one carries)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = self.samples = 0

    def forward(self, sample_in: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.samples += sample_in.shape[0]
        return 0.1 * sample_in[:, :4]


def count_evaluations(sampler: str, steps: int) -> tuple[int, int]:
    unet = CountingUNet()
    noise, mask, video, cond, uncond = conditioning(4)
    sample(unet, noise, mask, video, cond, uncond, steps=steps, sampler=sampler, generator=torch.Generator().manual_seed(0))
    return unet.calls, unet.samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="clip side in pixels (latents are size/8)")
    parser.add_argument("--steps", type=int, default=3, help="DDIM steps timed in part 1")
    parser.add_argument("--repeats", type=int, default=3, help="forward passes per attention kernel (minimum kept)")
    args = parser.parse_args()
    latent = args.size // 8
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    unet = mid_model()
    params = sum(p.numel() for p in unet.parameters())
    print(f"mid-size SEINE: widths {MID.block_out_channels}, heads {MID.attention_heads}, {params / 1e6:.1f} M "
          f"parameters; {FRAMES} frames of {args.size}x{args.size} px ({latent}x{latent} latents), CFG batch 2")

    times = step_times(unet, latent, args.steps + 1)[1:]  # the first step warms up
    step = min(times)
    print(f"\n1. sampler step: {step:.2f} s (min of {len(times)}; all: {', '.join(f'{t:.2f}' for t in times)})")

    sdpa, out_sdpa = forward_time(unet, latent, args.repeats)
    original = seine_attention.scaled_dot_product
    seine_attention.scaled_dot_product = naive_attention
    try:
        naive, out_naive = forward_time(unet, latent, args.repeats)
    finally:
        seine_attention.scaled_dot_product = original
    print(f"2. UNet forward: SDPA {sdpa:.2f} s, naive attention {naive:.2f} s -> naive/SDPA = {naive / sdpa:.2f}x "
          f"(max |difference| {(out_sdpa - out_naive).abs().max().item():.1e})")

    chunked = decode_peak(args.size, VAE_CHUNK)
    whole = decode_peak(args.size, FRAMES - 2)
    print(f"3. VAE decode of {FRAMES - 2} frames at {args.size} px (SD VAE, random weights): all at once "
          f"+{whole[0]:.0f} MiB peak in {whole[1]:.1f} s; chunks of {VAE_CHUNK}: +{chunked[0]:.0f} MiB in "
          f"{chunked[1]:.1f} s -> memory ratio {whole[0] / max(chunked[0], 1):.1f}x, time ratio "
          f"{chunked[1] / whole[1]:.2f}")

    print("4. UNet evaluations per transition (CFG: each evaluation carries cond and uncond):")
    ddpm_calls, _ = count_evaluations("ddpm", 250)
    for sampler, steps in (("ddpm", 250), ("ddim", 50), ("ddim", 25)):
        calls, samples = count_evaluations(sampler, steps)
        print(f"   {sampler}-{steps}: {calls} evaluations ({samples} batch items), ~{calls * step / 60:.1f} min at "
              f"part 1's step time; DDPM-250 / this = {ddpm_calls / calls:.0f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
