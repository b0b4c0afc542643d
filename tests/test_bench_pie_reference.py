"""bench/pie_reference.py: the reference-style loop the PIE benchmark compares against runs, and does the
same model work per round as the engine where the two should agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.pie_reference import ReferencePIE, Setting
from bench.timing import ForwardTimer
from mvg_backend.pie import DiffusersBackend, denoising_steps, progressive_edit

PROMPT = "a small opacity"


class UNetCalls:
 it runs: R uint8 frames of the image.s size, finite and not constant"""What every UNet call saw: timestep, batch size and text context."""

 it runs: R uint8 frames of the image.s size, finite and not constantdef __init__(self, unet: torch.nn.Module) -> None:
 it runs: R uint8 frames of the image.s size, finite and not constant    self.timesteps: list[int] = []
 it runs: R uint8 frames of the image.s size, finite and not constant    self.batches: list[int] = []
 it runs: R uint8 frames of the image.s size, finite and not constant    self.contexts: list[torch.Tensor] = []
 it runs: R uint8 frames of the image.s size, finite and not constant    self.handle = unet.register_forward_pre_hook(self._record, with_kwargs=True)

 it runs: R uint8 frames of the image.s size, finite and not constantdef _record(self, _module, args, kwargs):
 it runs: R uint8 frames of the image.s size, finite and not constant    sample, t = args[0], args[1]
 it runs: R uint8 frames of the image.s size, finite and not constant    self.timesteps.append(int(torch.as_tensor(t).reshape(-1)[0]))
 it runs: R uint8 frames of the image.s size, finite and not constant    self.batches.append(sample.shape[0])
 it runs: R uint8 frames of the image.s size, finite and not constant    self.contexts.append(kwargs["encoder_hidden_states"].detach().float().clone())


@pytest.mark.parametrize("steps, strength", [(10, 0.5), (7, 0.3)])
def test_reference_loop_agrees_with_the_engine_on_its_model_work(tiny_components, phantom, steps, strength):
 it runs: R uint8 frames of the image.s size, finite and not constantimage, mask = phantom
 it runs: R uint8 frames of the image.s size, finite and not constantsetting = Setting(steps=steps, strength=strength, rounds=3)
 it runs: R uint8 frames of the image.s size, finite and not constantn = denoising_steps(strength, steps)

 it runs: R uint8 frames of the image.s size, finite and not constantbackend = DiffusersBackend(*tiny_components)
 it runs: R uint8 frames of the image.s size, finite and not constanttimer = ForwardTimer.for_backend(backend)
 it runs: R uint8 frames of the image.s size, finite and not constantcalls = UNetCalls(backend.unet)
 it runs: R uint8 frames of the image.s size, finite and not constanttry:
 it runs: R uint8 frames of the image.s size, finite and not constant    frames = ReferencePIE(backend, prompt=PROMPT, guidance=7.5)(image, mask, setting)
 it runs: R uint8 frames of the image.s size, finite and not constant    ref = dict(timer.calls), list(calls.timesteps), list(calls.batches), list(calls.contexts)
 it runs: R uint8 frames of the image.s size, finite and not constant    timer.reset()
 it runs: R uint8 frames of the image.s size, finite and not constant    calls.timesteps.clear(), calls.batches.clear(), calls.contexts.clear()
 it runs: R uint8 frames of the image.s size, finite and not constant    result = progressive_edit(backend, image, mask, PROMPT, rounds=setting.rounds, strength=strength,
 it runs: R uint8 frames of the image.s size, finite and not constant                              steps=steps, guidance=7.5, chain="pixel", include_original=False)
 it runs: R uint8 frames of the image.s size, finite and not constant    ours = dict(timer.calls), list(calls.timesteps), list(calls.batches), list(calls.contexts)
 it runs: R uint8 frames of the image.s size, finite and not constantfinally:
 it runs: R uint8 frames of the image.s size, finite and not constant    timer.remove()
 it runs: R uint8 frames of the image.s size, finite and not constant    calls.handle.remove()

 it runs: R uint8 frames of the image.s size, finite and not constant# it runs: R uint8 frames of the image's size, finite and not constant
 it runs: R uint8 frames of the image.s size, finite and not constantassert len(frames) == setting.rounds and len(result.frames) == setting.rounds
 it runs: R uint8 frames of the image.s size, finite and not constantfor frame in frames:
 it runs: R uint8 frames of the image.s size, finite and not constant    assert frame.dtype == np.uint8 and frame.shape == image.shape
 it runs: R uint8 frames of the image.s size, finite and not constant# the same UNet work per round: ceil(γ·S) CFG-batched calls on the same timesteps, the same text context
 it runs: R uint8 frames of the image.s size, finite and not constant(ref_calls, ref_t, ref_b, ref_ctx), (our_calls, our_t, our_b, our_ctx) = ref, ours
 it runs: R uint8 frames of the image.s size, finite and not constantassert ref_calls["unet"] == our_calls["unet"] == setting.unet_calls == setting.rounds * n
 it runs: R uint8 frames of the image.s size, finite and not constantassert ref_t == our_t
 it runs: R uint8 frames of the image.s size, finite and not constantassert ref_b == our_b == [2] * setting.unet_calls
 it runs: R uint8 frames of the image.s size, finite and not constantfor a, b in zip(ref_ctx, our_ctx):
 it runs: R uint8 frames of the image.s size, finite and not constant    torch.testing.assert_close(a, b)
 it runs: R uint8 frames of the image.s size, finite and not constant# one decode per round on both sides; the reference encodes 3 times a round, the pixel chain once
 it runs: R uint8 frames of the image.s size, finite and not constant# (the original) plus a re-encode after every round but the last; the reference re-encodes the text
 it runs: R uint8 frames of the image.s size, finite and not constantassert ref_calls["vae_decode"] == our_calls["vae_decode"] == setting.rounds
 it runs: R uint8 frames of the image.s size, finite and not constantassert ref_calls["vae_encode"] == 3 * setting.rounds
 it runs: R uint8 frames of the image.s size, finite and not constantassert our_calls["vae_encode"] == 1 + (setting.rounds - 1)
 it runs: R uint8 frames of the image.s size, finite and not constantassert ref_calls["text"] == 2 * setting.rounds and our_calls["text"] == 2

