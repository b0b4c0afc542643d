"""ADM's respaced diffusion, the DDPM/DDIM samplers and classifier-free guidance, with stand-in networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures.tiny_seine import one_torch_thread  # noqa: F401  (a fixture)

from mvg_backend.errors import MVGInputError
from mvg_backend.seine import RespacedSchedule, respaced_timesteps, sample

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeUNet(torch.nn.Module):
    """``eps = 0.3·x + 0.1·mask + 0.05·masked_video + sin(t/100) + mean(text)``; records every call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    def forward(self, sample, timestep, encoder_hidden_states):
        self.calls.append(dict(sample=sample.clone(), timestep=timestep.clone(), text=encoder_hidden_states.clone()))
        x, mask, video = sample[:, :4], sample[:, 4:5], sample[:, 5:]
        t = torch.sin(timestep.float() / 100).view(-1, 1, 1, 1, 1)
        text = encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)
        return 0.3 * x + 0.1 * mask + 0.05 * video + t + text


def inputs(b=1, f=5, h=4, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, 4, f, h, w, generator=g)
    mask = torch.ones(b, 1, f, h, w)
    mask[:, :, 0] = mask[:, :, -1] = 0
    video = torch.randn(b, 4, f, h, w, generator=g)
    cond, uncond = torch.randn(b, 77, 8, generator=g), torch.randn(b, 77, 8, generator=g)
    return noise, mask, video, cond, uncond


def test_respaced_timesteps():
    assert respaced_timesteps(1) == [0]
    assert respaced_timesteps(2) == [0, 999]
    assert respaced_timesteps(1000) == list(range(1000))
    ts = respaced_timesteps(250)
    assert len(ts) == 250 and ts[0] == 0 and ts[-1] == 999 and ts[:4] == [0, 4, 8, 12] and np.all(np.diff(ts) > 0)
    assert respaced_timesteps(21)[10] == 499  # ADM's summed stride lands below the exact half (round(499.5) = 500)
    with pytest.raises(MVGInputError, match="steps=0"):
        respaced_timesteps(0)


def diffusers_ddpm():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         variance_type="fixed_large", clip_sample=False, timestep_spacing="linspace")


@pytest.mark.parametrize("steps", [10, 25, 50, 100, 250])
def test_respaced_timesteps_equal_diffusers_linspace(steps):
    scheduler = diffusers_ddpm()
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps.tolist() == respaced_timesteps(steps)[::-1]


def test_respaced_schedule_keeps_the_cumulative_alphas():
    full = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    schedule = RespacedSchedule.create(50)
    assert np.allclose(schedule.alphas_cumprod, full[schedule.timesteps])
    assert np.allclose(np.cumprod(1 - schedule.betas), schedule.alphas_cumprod)


@pytest.mark.parametrize("steps", [10, 50])
def test_ddpm_path_equals_diffusers_ddpm_scheduler(steps):
    """Without guidance, ADM's DDPM = DDPMScheduler(linear 1e-4..0.02, fixed_large, no clipping, linspace)."""
    net = FakeUNet()
    noise, mask, video, cond, _ = inputs()
    ours = sample(net, noise, mask, video, cond, None, steps=steps, sampler="ddpm",
                  generator=torch.Generator().manual_seed(7))

    scheduler = diffusers_ddpm()
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(7)
    x = noise.clone()
    for t in scheduler.timesteps:
        eps = net(torch.cat([x, mask, video], 1), t.reshape(1), cond)
        x = scheduler.step(eps, t, x, generator=generator).prev_sample
    assert torch.allclose(ours, x, atol=1e-4, rtol=1e-4), (ours - x).abs().max()


def test_ddim_telescopes_for_a_zero_noise_prediction():
    """With eps ≡ 0, DDIM's steps multiply x by √(ᾱ_prev/ᾱ); over the run that is 1/√ᾱ at t = 999."""
    zero = FakeUNet()
    zero.forward = lambda sample, timestep, encoder_hidden_states: torch.zeros_like(sample[:, :4])
    noise, mask, video, cond, _ = inputs()
    out = sample(zero, noise, mask, video, cond, None, steps=25, sampler="ddim")
    acp_999 = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[999]
    assert torch.allclose(out, noise / np.sqrt(acp_999), rtol=1e-5)


def test_guidance_batches_cond_then_uncond_with_identical_conditioning():
    net = FakeUNet()
    noise, mask, video, cond, uncond = inputs(b=1)
    out = sample(net, noise, mask, video, cond, uncond, steps=3, cfg=8.0, sampler="ddim")
    assert len(net.calls) == 3
    call = net.calls[0]
    assert call["sample"].shape == (2, 9, 5, 4, 4)
    assert torch.equal(call["sample"][0], call["sample"][1])  # same x, mask and masked video in both halves
    assert torch.equal(call["sample"][:1, :4], noise)  # channel order: noisy (4), mask (1), masked video (4)
    assert torch.equal(call["sample"][:1, 4:5], mask) and torch.equal(call["sample"][:1, 5:], video)
    assert torch.equal(call["text"], torch.cat([cond, uncond]))
    assert call["timestep"].tolist() == [999, 999]
    assert [c["timestep"][0].item() for c in net.calls] == [999, 500, 0]

    # the guided eps is uncond + 8·(cond − uncond): replay step one by hand
    eps = FakeUNet()(call["sample"], call["timestep"], call["text"])
    guided = eps[1:] + 8.0 * (eps[:1] - eps[1:])
    schedule = RespacedSchedule.create(3)
    assert torch.allclose(net.calls[1]["sample"][:1, :4], schedule.ddim_step(2, noise, guided), atol=1e-6)
    assert out.shape == noise.shape


def test_ddpm_is_seeded_and_draws_noise_for_the_guided_batch():
    net = FakeUNet()
    noise, mask, video, cond, uncond = inputs()
    run = lambda seed: sample(net, noise, mask, video, cond, uncond, steps=5, sampler="ddpm",
                              generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3))
    assert not torch.allclose(run(3), run(4))
    # like the official sampler: each step draws noise for [cond; uncond] and keeps the first half
    generator = torch.Generator().manual_seed(3)
    draws = [torch.randn((2, *noise.shape[1:]), generator=generator)[:1] for _ in range(4)]
    schedule = RespacedSchedule.create(5)
    x = noise
    for n, i in enumerate(reversed(range(5))):
        e = net(torch.cat([torch.cat([x, x]), torch.cat([mask, video], 1).repeat(2, 1, 1, 1, 1)], 1),
                torch.full((2,), int(schedule.timesteps[i])), torch.cat([cond, uncond]))
        e = e[1:] + 8.0 * (e[:1] - e[1:])
        x = schedule.ddpm_step(i, x, e, draws[n] if i > 0 else None)
    assert torch.allclose(run(3), x, atol=1e-6)


def test_callback_every_step_and_cancel():
    net = FakeUNet()
    noise, mask, video, cond, uncond = inputs()
    seen = []
    sample(net, noise, mask, video, cond, uncond, steps=4, sampler="ddim", callback=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done == 2:
            raise Cancelled

    net.calls.clear()
    with pytest.raises(Cancelled):
        sample(net, noise, mask, video, cond, uncond, steps=50, sampler="ddim", callback=cancel)
    assert len(net.calls) == 2


def test_bad_sampler_inputs():
    net = FakeUNet()
    noise, mask, video, cond, uncond = inputs()
    with pytest.raises(MVGInputError, match="seeded torch.Generator"):
        sample(net, noise, mask, video, cond, uncond, steps=2, sampler="ddpm")
    with pytest.raises(MVGInputError, match="sampler 'euler'"):
        sample(net, noise, mask, video, cond, uncond, steps=2, sampler="euler")
    with pytest.raises(MVGInputError, match="do not fit the noise"):
        sample(net, noise, mask[:, :, :3], video, cond, uncond, steps=2, sampler="ddim")
    with pytest.raises(MVGInputError, match="uncond text embeddings"):
        sample(net, noise, mask, video, cond, uncond[0], steps=2, sampler="ddim")
