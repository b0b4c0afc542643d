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
    """What every UNet call saw: timestep, batch size and text context."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.timesteps: list[int] = []
        self.batches: list[int] = []
        self.contexts: list[torch.Tensor] = []
        self.handle = unet.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, _module, args, kwargs):
        sample, t = args[0], args[1]
        self.timesteps.append(int(torch.as_tensor(t).reshape(-1)[0]))
        self.batches.append(sample.shape[0])
        self.contexts.append(kwargs["encoder_hidden_states"].detach().float().clone())


@pytest.mark.parametrize("steps, strength", [(10, 0.5), (7, 0.3)])
def test_reference_loop_agrees_with_the_engine_on_its_model_work(tiny_components, phantom, steps, strength):
    image, mask = phantom
    setting = Setting(steps=steps, strength=strength, rounds=3)
    n = denoising_steps(strength, steps)

    backend = DiffusersBackend(*tiny_components)
    timer = ForwardTimer.for_backend(backend)
    calls = UNetCalls(backend.unet)
    try:
        frames = ReferencePIE(backend, prompt=PROMPT, guidance=7.5)(image, mask, setting)
        ref = dict(timer.calls), list(calls.timesteps), list(calls.batches), list(calls.contexts)
        timer.reset()
        calls.timesteps.clear(), calls.batches.clear(), calls.contexts.clear()
        result = progressive_edit(backend, image, mask, PROMPT, rounds=setting.rounds, strength=strength,
                                  steps=steps, guidance=7.5, chain="pixel", include_original=False)
        ours = dict(timer.calls), list(calls.timesteps), list(calls.batches), list(calls.contexts)
    finally:
        timer.remove()
        calls.handle.remove()

    # it runs: R uint8 frames of the image's size
    assert len(frames) == setting.rounds and len(result.frames) == setting.rounds
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == image.shape
    # the same UNet work per round: ceil(γ·S) CFG-batched calls on the same timesteps, the same text context
    (ref_calls, ref_t, ref_b, ref_ctx), (our_calls, our_t, our_b, our_ctx) = ref, ours
    assert ref_calls["unet"] == our_calls["unet"] == setting.unet_calls == setting.rounds * n
    assert ref_t == our_t
    assert ref_b == our_b == [2] * setting.unet_calls
    for a, b in zip(ref_ctx, our_ctx):
        torch.testing.assert_close(a, b)
    # one decode per round on both sides; the reference encodes 3 times a round, the pixel chain once
    # (the original) plus a re-encode after every round but the last; the reference re-encodes the text
    assert ref_calls["vae_decode"] == our_calls["vae_decode"] == setting.rounds
    assert ref_calls["vae_encode"] == 3 * setting.rounds
    assert our_calls["vae_encode"] == 1 + (setting.rounds - 1)
    assert ref_calls["text"] == 2 * setting.rounds and our_calls["text"] == 2

