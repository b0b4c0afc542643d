"""The PIE round logic: anchoring, β blend, chaining, staging, seeds, UNet call counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fixtures.backends import CallCounter, FakeBackend
from mvg_backend.errors import MVGRuntimeError
from mvg_backend.pie import DiffusersBackend, blend_toward_original, denoising_steps, progressive_edit
from mvg_backend.prompts import PromptPlan, Stage

PROMPTS = ["a chest x-ray with a small effusion", "a chest x-ray with a large effusion"]


def run(backend, image, mask, **kw):
    kw.setdefault("steps", 10)
    kw.setdefault("rounds", 2)
    return progressive_edit(backend, image, mask, kw.pop("prompts", PROMPTS), **kw)


# --- β blend and anchoring, on a deterministic denoiser ---------------------------------------------

def test_blend_matches_formula_per_round(phantom):
    image, mask = phantom
    mask[20:24, 8:32] = 0.5  # soft band
    fake = FakeBackend()
    run(fake, image, mask, rounds=3, beta1=0.2, beta2=0.6, include_original=False)
    z0 = fake.calls[0]["original"]
    m = fake.calls[0]["mask"]
    soft = (m > 0) & (m < 1)
    assert soft.any()
    for prev, nxt in zip(fake.calls, fake.calls[1:]):
        raw = prev["start"] * fake.scale + fake.shift  # what the fake returns, outside the mask too
        z_hat = m * raw + (1 - m) * z0  # the engine's final re-anchoring
        expected = m * (z0 + 0.6 * (z_hat - z0)) + (1 - m) * (z0 + 0.2 * (z_hat - z0))
        torch.testing.assert_close(nxt["start"], expected, rtol=0, atol=1e-6)
        # so β1 acts only where 0 < M < 1: cells with M == 0 stay exactly z0
        zero = (m == 0).expand_as(z0)
        assert torch.equal(nxt["start"][zero], z0[zero])
        blend_of_raw = m * (z0 + 0.6 * (raw - z0)) + (1 - m) * (z0 + 0.2 * (raw - z0))  # without re-anchoring
        assert not torch.allclose(nxt["start"][soft.expand_as(z0)], blend_of_raw[soft.expand_as(z0)])


def test_blend_function_endpoints():
    z0, z, m = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2), torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])
    out = blend_toward_original(z, z0, m, beta1=0.01, beta2=0.75)
    assert out[0, 0, 0, 0] == pytest.approx(0.75)
    assert out[0, 0, 0, 1] == pytest.approx(0.01)
    assert out[0, 0, 1, 0] == pytest.approx(0.5 * 0.75 + 0.5 * 0.01)


def test_latent_mask_is_area_pooled_and_passed(phantom):
    image, mask = phantom
    fake = FakeBackend()
    run(fake, image, mask, rounds=1)
    expected = F.interpolate(torch.from_numpy(mask)[None, None], size=(8, 8), mode="area")
    torch.testing.assert_close(fake.calls[0]["mask"], expected)


def test_first_round_starts_from_original_and_chains(phantom):
    image, mask = phantom
    fake = FakeBackend()
    run(fake, image, mask, rounds=2, chain="latent")
    torch.testing.assert_close(fake.calls[0]["start"], fake.calls[0]["original"])
    assert fake.encodes == 1  # latent chaining: one encode of the original, no re-encodes
    assert fake.decodes == 2  # one decode per round's frame
    fake_px = FakeBackend()
    run(fake_px, image, mask, rounds=2, chain="pixel")
    assert fake_px.encodes == 2  # original + one re-encode before each later round
    assert fake_px.decodes == 2


def test_pixels_outside_roi_equal_original_after_composite(phantom):
    image, mask = phantom
    fake = FakeBackend(shift=0.4)  # the fake changes the latents outside the mask as well
    for chain in ("latent", "pixel"):
        res = run(fake, image, mask, chain=chain)
        outside = mask == 0
        assert np.array_equal(res.frames[:, outside], np.broadcast_to(image[outside], res.frames[:, outside].shape))
        assert not np.allclose(res.frames[-1][mask == 1], image[mask == 1])


def test_text_encoded_once_per_stage(phantom):
    image, mask = phantom
    fake = FakeBackend()
    run(fake, image, mask, rounds=6)
    assert fake.prompts == [(PROMPTS[0], ""), (PROMPTS[1], "")]
    assert [c["text"].positive for c in fake.calls] == [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3


def test_nan_in_latents_raises_clear_error(phantom):
    image, mask = phantom
    with pytest.raises(MVGRuntimeError, match=r"NaN/Inf appeared in the latents in stage 2 round 1.*fp32"):
        run(FakeBackend(nan_on_call=2), image, mask, rounds=2)


# --- staging, keyframes, records, seeds ------------------------------------------------------------

def test_stage_schedule_keyframes_and_records(phantom):
    image, mask = phantom
    plan = PromptPlan(stages=(Stage("mild", name="mild"), Stage("moderate", name="moderate", rounds=1,
                                                                  strength=0.3), Stage("severe", name="severe")))
    fake = FakeBackend()
    res = progressive_edit(fake, image, mask, plan, rounds=5, steps=10, strength=0.5, seed=7)
    assert res.settings["stage_rounds"] == [2, 1, 2]  # 4 shared rounds over 2 free stages, 1 fixed
    assert res.frames.shape == (1 + 5, 64, 64, 3)
    assert res.keyframe_indices == [0, 2, 3, 5]
    np.testing.assert_array_equal(res.keyframes, res.frames[[0, 2, 3, 5]])
    assert [(r.stage, r.round, r.global_round) for r in res.records] == [
        (-1, 0, 0), (0, 1, 1), (0, 2, 2), (1, 1, 3), (2, 1, 4), (2, 2, 5)]
    assert [c["seed"] for c in fake.calls] == [7, 8, 9, 10, 11]
    assert [c["denoise_steps"] for c in fake.calls] == [5, 5, 3, 5, 5]  # ceil(γ·10), γ per stage
    assert {c["steps"] for c in fake.calls} == {10}
    assert res.records[3].stage_name == "moderate" and res.records[3].is_keyframe
    assert "frame 3: stage 2 'moderate' round 1/1 (γ 0.3, seed 9) [keyframe]" in res.summary


def test_without_original_frames_are_rounds_only(phantom):
    image, mask = phantom
    res = run(FakeBackend(), image, mask, rounds=4, include_original=False)
    assert res.frames.shape[0] == 4
    assert res.keyframe_indices == [1, 3]
    assert all(r.stage >= 0 for r in res.records)


def test_fewer_rounds_than_stages_runs_one_each(phantom):
    image, mask = phantom
    res = run(FakeBackend(), image, mask, rounds=1, prompts=["a", "b", "c"])
    assert res.settings["stage_rounds"] == [1, 1, 1]
    assert any("fewer than the 3 stage(s)" in n for n in res.notes)


def test_progress_covers_all_steps(phantom):
    image, mask = phantom
    seen = []
    run(FakeBackend(), image, mask, rounds=3, steps=10, strength=0.5, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 15), (6, 15), (11, 15)]  # fake runs 1 callback per round; totals count model steps


# --- real diffusers UNet: call counts, exact anchoring, determinism --------------------------------

@pytest.mark.parametrize("strength,steps,expected", [(0.5, 10, 5), (0.35, 10, 4), (0.07, 100, 7), (1.0, 6, 6)])
def test_unet_calls_per_round(tiny_components, phantom, strength, steps, expected):
    unet, vae, text_encoder, tokenizer, scheduler = tiny_components
    counter = CallCounter(unet)
    backend = DiffusersBackend(counter, vae, text_encoder, tokenizer, scheduler)
    image, mask = phantom
    run(backend, image, mask, rounds=3, steps=steps, strength=strength, prompts=PROMPTS[:1])
    assert denoising_steps(strength, steps) == expected
    assert len(counter.batch_sizes) == 3 * expected
    assert set(counter.batch_sizes) == {2}  # CFG: [uncond; cond] in one call


def test_no_cfg_batch_at_guidance_one(tiny_components, phantom):
    unet, vae, text_encoder, tokenizer, scheduler = tiny_components
    counter = CallCounter(unet)
    image, mask = phantom
    run(DiffusersBackend(counter, vae, text_encoder, tokenizer, scheduler), image, mask, rounds=1, guidance=1.0,
        prompts=PROMPTS[:1])
    assert counter.batch_sizes == [1] * 5


def test_latents_outside_roi_equal_original_exactly(tiny_backend, phantom):
    image, mask = phantom
    decoded = []
    decode = tiny_backend.decode_latents
    tiny_backend.decode_latents = lambda z: decoded.append(z.clone()) or decode(z)
    z0 = tiny_backend.encode_image(torch.from_numpy(image)[None])
    res = run(tiny_backend, image, mask, rounds=3, chain="latent")
    m = F.interpolate(torch.from_numpy(mask)[None, None], size=z0.shape[-2:], mode="area")
    outside = (m == 0).expand_as(z0)
    assert outside.any() and (~outside).any()
    for z in decoded:
        assert torch.equal(z[outside], z0[outside])
        assert not torch.allclose(z[~outside], z0[~outside])
    assert np.array_equal(res.frames[:, mask == 0], np.broadcast_to(image[mask == 0], res.frames[:, mask == 0].shape))


def test_pixel_chain_keeps_outside_pixels(tiny_backend, phantom):
    image, mask = phantom
    res = run(tiny_backend, image, mask, rounds=2, chain="pixel")
    assert np.array_equal(res.frames[:, mask == 0], np.broadcast_to(image[mask == 0], res.frames[:, mask == 0].shape))
    assert np.abs(res.frames[-1][mask == 1] - image[mask == 1]).mean() > 1e-3


def test_same_seed_bit_identical_different_seed_differs(tiny_backend, phantom):
    image, mask = phantom
    a = run(tiny_backend, image, mask, seed=3)
    b = run(tiny_backend, image, mask, seed=3)
    c = run(tiny_backend, image, mask, seed=4)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames[1:], c.frames[1:])


@pytest.mark.parametrize("scheduler", ["euler", "euler_ancestral", "dpmpp_2m", "ddpm"])
def test_other_schedulers_anchor_and_count(tiny_components, phantom, scheduler):
    from mvg_backend.pie.schedulers import make_scheduler

    unet, vae, text_encoder, tokenizer, base = tiny_components
    counter = CallCounter(unet)
    backend = DiffusersBackend(counter, vae, text_encoder, tokenizer, make_scheduler(scheduler, base))
    image, mask = phantom
    a = run(backend, image, mask, rounds=2, steps=10, strength=0.4, seed=1)
    b = run(backend, image, mask, rounds=2, steps=10, strength=0.4, seed=1)
    assert len(counter.batch_sizes) == 2 * 2 * 4
    assert np.isfinite(a.frames).all() and np.array_equal(a.frames, b.frames)
    assert np.array_equal(a.frames[:, mask == 0], np.broadcast_to(image[mask == 0], a.frames[:, mask == 0].shape))


def test_soft_mask_with_real_backend(tiny_backend, phantom):
    image, _ = phantom
    yy, xx = np.mgrid[0:64, 0:64]
    soft = np.clip(1.5 - np.hypot(yy - 32, xx - 32) / 12.0, 0, 1).astype(np.float32)  # 1 in the centre, 0 beyond r=18
    res = run(tiny_backend, image, soft, rounds=2)
    zero = soft == 0
    assert 0 < soft[~zero].min() < 1
    assert np.array_equal(res.frames[:, zero], np.broadcast_to(image[zero], res.frames[:, zero].shape))
    change = np.abs(res.frames[-1] - image).mean(-1)
    assert change[soft == 1].mean() > change[(soft > 0) & (soft < 0.3)].mean() > 0
