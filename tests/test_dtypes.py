"""Half precision against fp32 on the tiny models: PIE (diffusers backend) and SEINE, end to end.

On the CPU: bf16 and fp16 (fp16 also exercises the fp32 VAE policy of ``mvg_backend.sd_parts``). When CUDA is
present, the same comparisons run on it too (added as parameters, never skipped). Tolerances are on frames in
0..1 (max absolute difference); the measured values are in the README's "Speed and precision".
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fixtures.tiny_seine import make_tiny_seine, one_torch_thread  # noqa: F401 (a fixture)
from mvg_backend.pie import DiffusersBackend, progressive_edit
from mvg_backend.sd_parts import vae_compute_dtype, vae_decode
from mvg_backend.seine import DiffusersSEINEBackend, transition_frames

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CASES = [(d, dt) for d in DEVICES for dt in (torch.bfloat16, torch.float16)]
IDS = [f"{d}-{str(dt).removeprefix('torch.')}" for d, dt in CASES]
# |frame - fp32 frame| over all frames and pixels (0..1 scale): (max, 99th percentile, mean). bf16 keeps 8 bits
# of mantissa, fp16 11; CFG 7.5 multiplies the UNet's error and random-weight models are far from smooth, so a
# few pixels move much more than the rest (measured on CPU, PIE bf16: max 0.19, p99 0.054, mean 0.0024).
PIE_TOL = {torch.bfloat16: (0.25, 0.08, 0.01), torch.float16: (0.03, 0.01, 0.002)}
SEINE_TOL = {torch.bfloat16: (0.08, 0.04, 0.01), torch.float16: (0.015, 0.005, 0.002)}


def _check_close(diff: np.ndarray, tolerance: tuple[float, float, float]) -> None:
    largest, p99, mean = tolerance
    assert diff.max() <= largest and np.quantile(diff, 0.99) <= p99 and diff.mean() <= mean


def _parts(components, device, dtype):
    unet, vae, text_encoder, tokenizer, scheduler = (copy.deepcopy(c) for c in components)
    for module in (unet, vae, text_encoder):
        module.to(device=device, dtype=dtype)
    return unet, vae, text_encoder, tokenizer, scheduler


def _pie_frames(components, phantom, device, dtype):
    backend = DiffusersBackend(*_parts(components, device, dtype))
    image, mask = phantom
    result = progressive_edit(backend, image, mask, ["small opacity", "large opacity"], rounds=2, steps=10,
                              strength=0.5, seed=3, chain="pixel")
    return result.frames, backend


@pytest.mark.parametrize("device, dtype", CASES, ids=IDS)
def test_pie_in_half_precision_matches_fp32(tiny_components, phantom, one_torch_thread, device, dtype):
    reference, _ = _pie_frames(tiny_components, phantom, "cpu", torch.float32)
    frames, backend = _pie_frames(tiny_components, phantom, device, dtype)
    assert backend.unet.dtype == dtype and backend.dtype == dtype
    # the policy: an fp16 VAE runs in fp32, a bf16 one in bf16
    assert backend.vae.dtype == (torch.float32 if dtype == torch.float16 else dtype)
    assert np.isfinite(frames).all() and frames.shape == reference.shape
    diff = np.abs(frames - reference)
    print(f"PIE {device} {dtype}: max |diff| {diff.max():.4f}, p99 {np.quantile(diff, 0.99):.4f}, mean {diff.mean():.5f}")
    _check_close(diff, PIE_TOL[dtype])
    np.testing.assert_array_equal(frames[0], reference[0])  # the original frame is passed through exactly


def _seine_frames(components, device, dtype):
    _, vae, text_encoder, tokenizer, _ = _parts(components, device, dtype)
    unet = make_tiny_seine(cross_attention_dim=32).to(device=device, dtype=dtype)
    backend = DiffusersSEINEBackend(unet, vae, text_encoder, tokenizer)
    y, x = np.mgrid[0:64, 0:64].astype(np.float32) / 63
    keyframes = np.stack([np.stack([x, y, 0.5 * (x + y)], -1), np.stack([1 - x, y * y, 0.3 + 0 * x], -1)])
    result = transition_frames(keyframes, backend=backend, frames=5, steps=4, sampler="ddim", seed=1,
                               resolution="native")
    return result.frames, unet


@pytest.mark.parametrize("device, dtype", CASES, ids=IDS)
def test_seine_in_half_precision_matches_fp32(tiny_components, one_torch_thread, device, dtype):
    reference, _ = _seine_frames(tiny_components, "cpu", torch.float32)
    frames, unet = _seine_frames(tiny_components, device, dtype)
    assert unet.conv_in.weight.dtype == dtype
    # the rotary frequencies stay float32 (and exact) whatever the model is cast to: angles reach f radians
    exact = make_tiny_seine(cross_attention_dim=32).state_dict()
    for name, buffer in unet.named_buffers():
        if name.endswith("rotary_emb.freqs"):
            assert buffer.dtype == torch.float32
            torch.testing.assert_close(buffer.cpu(), exact[name], rtol=0, atol=0)
    assert np.isfinite(frames).all() and frames.shape == reference.shape
    diff = np.abs(frames - reference)
    print(f"SEINE {device} {dtype}: max |diff| {diff.max():.4f}, p99 {np.quantile(diff, 0.99):.4f}, mean {diff.mean():.5f}")
    _check_close(diff, SEINE_TOL[dtype])


def test_fp16_vae_decode_does_not_overflow(tiny_components):
    """A decoder whose activations pass fp16's 65504: in fp16 it gives NaN/inf; under the policy it decodes
    in fp32 and matches the fp32 VAE."""
    vae = copy.deepcopy(tiny_components[1])
    with torch.no_grad():  # scale the decoder's first conv up and its output conv down by the same 1e4
        vae.decoder.conv_in.weight.mul_(1e4)
        vae.decoder.conv_in.bias.mul_(1e4)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    reference = vae_decode(vae, latents, scale=0.18215)

    half = copy.deepcopy(vae).half()
    with torch.no_grad():
        raw = half.decoder.conv_in(latents.half() / 0.18215)
    assert not torch.isfinite(raw).all()  # fp16 itself overflows here
    assert vae_compute_dtype(half) == torch.float32
    frames = vae_decode(half, latents, scale=0.18215)
    assert half.dtype == torch.float32  # upcast in place, once
    assert torch.isfinite(frames).all()
    torch.testing.assert_close(frames, reference, atol=2e-3, rtol=0)

    safe = copy.deepcopy(vae).half()
    safe.register_to_config(force_upcast=False)  # an fp16-safe VAE declares it and stays fp16
    assert vae_compute_dtype(safe) == torch.float16
