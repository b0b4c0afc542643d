"""The backend contract without ComfyUI: noise, schedule, mask grid, text, cfg, schedulers, posterior.

The two-backend comparison in real ComfyUI is tests/test_pie_comfy.py.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fixtures.backends import CallCounter, FakeBackend
from mvg_backend.errors import MVGInputError
from mvg_backend.pie import (MAX_PROMPT_TOKENS, SCHEDULERS, DiffusersBackend, RoundSpec, TextConditioning,
                             latent_mask, progressive_edit, round_noise)
from mvg_backend.pie import diffusers_backend as diffusers_backend_module
from mvg_backend.pie.engine import fit_prompt
from mvg_backend.pie.schedulers import make_scheduler, round_timesteps
from mvg_backend.prompts import Stage

PROMPT = "a chest x-ray with a large effusion"


def run(backend, image, mask, **kw):
    kw.setdefault("steps", 10)
    kw.setdefault("rounds", 2)
    return progressive_edit(backend, image, mask, kw.pop("prompts", PROMPT), **kw)


class FirstInputs:
    """Records what a diffusers UNet receives (sample, timestep) on every call."""

    def __init__(self, unet):
        self.calls = []
        self.handle = unet.register_forward_pre_hook(
            lambda m, args, kwargs: self.calls.append((args[0].clone(), args[1])), with_kwargs=True)


# --- noise: drawn by the engine from the round seed, over the whole latent -----------------------------

def test_engine_draws_noise_and_anchor_noise_from_the_round_seed(phantom):
    image, mask = phantom
    fake = FakeBackend()
    run(fake, image, mask, rounds=3, seed=11)
    for k, call in enumerate(fake.calls):
        spec = call["spec"]
        g = torch.Generator().manual_seed(11 + k)
        torch.testing.assert_close(spec.noise, torch.randn(call["start"].shape, generator=g), rtol=0, atol=0)
        torch.testing.assert_close(spec.anchor_noise, torch.randn(call["start"].shape, generator=g), rtol=0, atol=0)
        assert spec.seed == 11 + k and spec.steps == 10 and spec.denoise_steps == 5
    assert not torch.equal(fake.calls[0]["spec"].noise, fake.calls[1]["spec"].noise)
    # the first draw is ComfyUI's prepare_noise(latent, seed): the global generator seeded the same way
    torch.manual_seed(11)
    assert torch.equal(torch.randn(fake.calls[0]["start"].shape), fake.calls[0]["spec"].noise)


def test_first_unet_input_is_the_start_noised_everywhere(tiny_components, phantom):
    """The reference noises the WHOLE latent at a round's start (prepare_latents with mask=None)."""
    unet, vae, text_encoder, tokenizer, scheduler = tiny_components
    backend = DiffusersBackend(unet, vae, text_encoder, tokenizer, scheduler)
    image, mask = phantom
    z0 = backend.encode_image(torch.from_numpy(image)[None])
    hook = FirstInputs(unet)
    try:
        run(backend, image, mask, rounds=1, steps=10, strength=0.5, seed=5)
    finally:
        hook.handle.remove()
    x, t = hook.calls[0]
    assert int(t) == 401  # DDIM, 10 steps, leading spacing + offset 1: the 5th step from the end
    a = scheduler.alphas_cumprod[401]
    noise = round_noise(tuple(z0.shape), 5)[0]
    expected = a.sqrt() * z0 + (1 - a).sqrt() * noise
    torch.testing.assert_close(x[:1], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(x[1:], expected, rtol=0, atol=1e-6)  # the CFG batch repeats it
    outside = torch.from_numpy(latent_mask(mask, (8, 8), 8).numpy() == 0).expand_as(z0)
    assert (x[:1] - a.sqrt() * z0)[outside].abs().mean() > 0.5  # noised outside the ROI too


# --- the mask on the latent grid ----------------------------------------------------------------------

def test_mask_is_edge_padded_before_area_pooling():
    """An ROI touching the bottom/right border of a 60x70 image stays fully editable there; a region
    that is 0 at the border stays fully anchored (zero padding would give 1/2 and 3/4 there)."""
    mask = np.zeros((60, 70), np.float32)
    mask[40:, 48:] = 1.0  # bottom-right corner block, touching both borders
    m = latent_mask(mask, (8, 9), 8)[0, 0]
    assert m.shape == (8, 9)
    assert torch.all(m[5:, 6:] == 1.0)  # rows 40..63 (60..63 padding), cols 48..71 (70, 71 padding)
    assert torch.all(m[:5] == 0.0) and torch.all(m[:, :6] == 0.0)
    inverse = latent_mask(1 - mask, (8, 9), 8)[0, 0]
    assert torch.all(inverse[5:, 6:] == 0.0) and torch.all(inverse[:5, :6] == 1.0)


@pytest.mark.parametrize("shape", [(60, 70), (57, 63)])
def test_roi_at_the_border_is_edited_and_the_rest_kept(tiny_backend, shape):
    h, w = shape
    rng = np.random.default_rng(0)
    image = rng.random((h, w, 3), dtype=np.float32) * 0.5 + 0.25
    mask = np.zeros((h, w), np.float32)
    mask[h - 16:, w - 16:] = 1.0
    fake = FakeBackend()
    run(fake, image, mask, rounds=1)
    assert torch.all(fake.calls[0]["mask"][0, 0, -1, -1] == 1.0)
    res = run(tiny_backend, image, mask, rounds=1)
    assert res.frames.shape[1:] == (h, w, 3)
    corner = np.abs(res.frames[-1][h - 4:, w - 4:] - image[h - 4:, w - 4:])
    assert corner.mean() > 1e-2  # the last rows/columns of the image are edited
    np.testing.assert_array_equal(res.frames[-1][mask == 0], image[mask == 0])


# --- text: one TextConditioning, one truncation policy -------------------------------------------------

def test_diffusers_text_conditioning_is_named(tiny_backend):
    text = tiny_backend.encode_prompt("a lung", "blurry")
    assert isinstance(text, TextConditioning)
    torch.testing.assert_close(text.positive, tiny_backend._embed("a lung"))
    torch.testing.assert_close(text.negative, tiny_backend._embed("blurry"))
    assert not torch.allclose(text.positive, text.negative)


def test_long_prompts_are_cut_to_whole_words_and_noted(phantom):
    image, mask = phantom
    words = [f"w{i}" for i in range(90)]
    plan = [Stage(" ".join(words), negative_prompt=" ".join(words[:80]), name="severe")]
    fake = FakeBackend()  # one token per word
    res = run(fake, image, mask, rounds=1, prompts=plan)
    assert fake.prompts == [(" ".join(words[:75]), " ".join(words[:75]))]
    notes = [n for n in res.notes if "CLIP tokens" in n]
    assert notes == [
        "stage 1 'severe': the prompt has 90 CLIP tokens, more than the 75 that fit; it was cut after "
        f"'w72 w73 w74', dropping '{' '.join(words[75:])}'.",
        "stage 1 'severe': the negative prompt has 80 CLIP tokens, more than the 75 that fit; it was cut after "
        "'w72 w73 w74', dropping 'w75 w76 w77 w78 w79'.",
    ]
    assert all(f"note: {n}" in res.summary for n in notes)


def test_fit_prompt_with_the_real_clip_tokenizer():
    from mvg_backend.pie.random_model import random_tiny_backend

    backend = random_tiny_backend()
    assert backend.count_tokens("a chest x-ray") == 5  # a, chest, x, -, ray
    text = ", ".join(["moderate right pleural effusion"] * 20)
    kept, tokens, dropped = fit_prompt(backend, text)
    assert tokens > MAX_PROMPT_TOKENS and dropped
    assert backend.count_tokens(kept) <= MAX_PROMPT_TOKENS
    assert backend.count_tokens(kept + " " + dropped.split()[0]) > MAX_PROMPT_TOKENS
    assert f"{kept} {dropped}" == " ".join(text.split())
    short = "a chest x-ray"
    assert fit_prompt(backend, short) == (short, 5, "")


# --- cfg: uncond + g·(cond − uncond) for every g >= 0 ----------------------------------------------------

def test_cfg_below_one_is_the_formula(tiny_components, phantom):
    unet, vae, text_encoder, tokenizer, scheduler = tiny_components
    image, mask = phantom
    counter = CallCounter(unet)
    backend = DiffusersBackend(counter, vae, text_encoder, tokenizer, scheduler)
    p, n = Stage("a large effusion", negative_prompt="a normal chest"), Stage("a normal chest")
    zero = run(backend, image, mask, rounds=1, guidance=0.0, prompts=[p])
    assert set(counter.batch_sizes) == {2}
    counter.batch_sizes.clear()
    negative_alone = run(backend, image, mask, rounds=1, guidance=1.0, prompts=[n])
    assert set(counter.batch_sizes) == {1}  # g = 1: the conditional pass only
    np.testing.assert_allclose(zero.frames, negative_alone.frames, rtol=0, atol=1e-5)  # g = 0 is the uncond
    half = run(backend, image, mask, rounds=1, guidance=0.5, prompts=[p])
    positive_alone = run(backend, image, mask, rounds=1, guidance=1.0, prompts=[Stage(p.prompt)])
    assert np.abs(half.frames - zero.frames).max() > 1e-3
    assert np.abs(half.frames - positive_alone.frames).max() > 1e-3


# --- schedulers: every one recovers x0 from an exact noise prediction ----------------------------------

class OracleUNet(torch.nn.Module):
    """Predicts the exact noise of ``x_t = sqrt(a_t)·x0 + sqrt(1 - a_t)·eps`` for a known ``x0``, and keeps
    that implied ``eps`` of every call. With exact predictions a sampler whose timestep labels match the
    noise level of its latents keeps them on that line: the implied noise stays the noise it started with.
    Fractional timesteps (linspace spacing) take sigma linearly interpolated over t, as diffusers does."""

    def __init__(self, x0: torch.Tensor, alphas_cumprod: torch.Tensor, in_channels: int = 4):
        super().__init__()
        self.x0 = x0
        self.sigmas = ((1 - alphas_cumprod.double()) / alphas_cumprod.double()).sqrt()
        self.config = SimpleNamespace(in_channels=in_channels)
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.implied: list[torch.Tensor] = []

    def forward(self, sample, t, encoder_hidden_states=None):
        t = float(t)
        lo = min(int(t), len(self.sigmas) - 2)
        sigma = self.sigmas[lo] + (t - lo) * (self.sigmas[lo + 1] - self.sigmas[lo])
        a = 1 / (1 + sigma**2)
        eps = (sample.double() - a.sqrt() * self.x0.double()) / (1 - a).sqrt()
        self.implied.append(eps[:1].float())
        return SimpleNamespace(sample=eps.to(sample.dtype))


def _oracle_round(tiny_components, name, steps, n, mask):
    _, vae, text_encoder, tokenizer, base = tiny_components
    sched = make_scheduler(name, base)
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    oracle = OracleUNet(z0, sched.alphas_cumprod)
    backend = DiffusersBackend(oracle, vae, text_encoder, tokenizer, sched)
    noise, anchor, generator = round_noise(tuple(z0.shape), 1)
    spec = RoundSpec(steps=steps, denoise_steps=n, guidance=1.0, seed=1, noise=noise, anchor_noise=anchor,
                     generator=generator)
    text = TextConditioning(positive=torch.zeros(1, 77, 32), negative=torch.zeros(1, 77, 32))
    seen = []
    out = backend.denoise(z0, z0, mask, text, spec, lambda d, t: seen.append((d, t)))
    return SimpleNamespace(out=out, z0=z0, noise=noise, anchor=anchor, implied=oracle.implied, seen=seen,
                           final_alpha=getattr(sched, "final_alpha_cumprod", None))


MASK = torch.zeros(1, 1, 8, 8)
MASK[..., 2:6, 1:5] = 1.0


@pytest.mark.parametrize("name", ["ddim", "pndm", "euler", "dpmpp_2m"])
@pytest.mark.parametrize("steps,n", [(10, 5), (50, 25), (7, 7), (20, 3), (9, 1), (13, 2)])
def test_latents_stay_at_the_noise_level_of_their_timestep(tiny_components, name, steps, n):
    """Start: the whole latent noised with the round's noise to the first timestep's level. Later calls:
    inside the ROI still that noise, outside it the anchor noise (re-anchored to the call's level)."""
    r = _oracle_round(tiny_components, name, steps, n, MASK)
    inside, outside = (MASK == 1).expand_as(r.z0), (MASK == 0).expand_as(r.z0)
    assert len(r.implied) == (n + 1 if name == "pndm" and n >= 2 else n)  # PLMS: its warm-up pair is 2 calls
    torch.testing.assert_close(r.implied[0], r.noise, rtol=0, atol=1e-3)  # everywhere, outside too
    for implied in r.implied[1:]:
        torch.testing.assert_close(implied[inside], r.noise[inside], rtol=0, atol=1e-3)
        torch.testing.assert_close(implied[outside], r.anchor[outside], rtol=0, atol=1e-3)
    if name in ("ddim", "pndm"):  # alpha space; the SD config ends at alpha_0 (set_alpha_to_one=False)
        a = r.final_alpha
        expected = a.sqrt() * r.z0 + (1 - a).sqrt() * r.noise
    else:  # sigma schedules end at sigma 0
        expected = r.z0
    torch.testing.assert_close(r.out[inside], expected[inside].float(), rtol=0, atol=1e-4)
    assert r.seen[-1] == (n, n) and all(d <= n for d, _ in r.seen)


def test_pndm_sliced_like_diffusers_img2img_is_off_by_a_step(tiny_components, monkeypatch):
    """The reference (like diffusers' img2img) slices PNDM's full timestep list, which leaves PLMS's warm-up
    pair at the start of the full schedule: from the third call on, the latents are one step noisier
    than their timestep says. ``round_timesteps`` puts the pair at the round's start (test above)."""

    def sliced(scheduler, steps, n, device=None):
        scheduler.set_timesteps(steps, device=device)
        return scheduler.timesteps[steps - n:]

    monkeypatch.setattr(diffusers_backend_module, "round_timesteps", sliced)
    r = _oracle_round(tiny_components, "pndm", 50, 25, torch.ones(1, 1, 8, 8))
    torch.testing.assert_close(r.implied[0], r.noise, rtol=0, atol=1e-3)
    assert (r.implied[2] - r.noise).abs().max() > 0.05


def test_round_timesteps_are_the_tail_of_the_full_schedule(tiny_components):
    base = tiny_components[4]
    for name in ("ddim", "ddpm", "euler", "dpmpp_2m"):
        sched = make_scheduler(name, base)
        sched.set_timesteps(20)
        full = sched.timesteps.clone()
        for n in (1, 7, 20):
            torch.testing.assert_close(round_timesteps(sched, 20, n), full[20 - n:])
    pndm = make_scheduler("pndm", base)
    pndm.set_timesteps(10)
    assert pndm.timesteps.tolist() == [901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert round_timesteps(pndm, 10, 10).tolist() == pndm.timesteps.tolist()
    assert round_timesteps(pndm, 10, 4).tolist() == [301, 201, 201, 101, 1]
    assert round_timesteps(pndm, 10, 1).tolist() == [1]


def test_unipc_is_refused(tiny_components):
    from diffusers import UniPCMultistepScheduler

    unet, vae, text_encoder, tokenizer, base = tiny_components
    with pytest.raises(MVGInputError, match="corrector.*overwrites PIE's re-anchoring"):
        make_scheduler("unipc", base)
    with pytest.raises(MVGInputError, match="UniPCMultistepScheduler cannot run PIE"):
        DiffusersBackend(unet, vae, text_encoder, tokenizer, UniPCMultistepScheduler.from_config(base.config))
    with pytest.raises(MVGInputError, match="not supported"):
        make_scheduler("heun", base)
    assert "unipc" not in SCHEDULERS and "pndm" in SCHEDULERS


def test_cli_offers_the_backend_schedulers():
    from mvg_backend.cli import SCHEDULER_NAMES, build_parser

    assert SCHEDULER_NAMES == tuple(SCHEDULERS)
    args = build_parser().parse_args(["pie", "--image", "x.png", "--prompt", "y", "--out", "o", "--scheduler", "pndm",
                                      "--posterior", "sample"])
    assert args.scheduler == "pndm" and args.posterior == "sample"


def test_pndm_runs_pie_end_to_end(tiny_components, phantom):
    unet, vae, text_encoder, tokenizer, base = tiny_components
    counter = CallCounter(unet)
    backend = DiffusersBackend(counter, vae, text_encoder, tokenizer, make_scheduler("pndm", base))
    image, mask = phantom
    seen = []
    res = run(backend, image, mask, rounds=2, steps=10, strength=0.5, progress=lambda d, t: seen.append((d, t)))
    assert len(counter.batch_sizes) == 2 * 6  # 5 steps: 6 calls (warm-up pair)
    assert seen[-1] == (10, 10) and max(d for d, _ in seen) == 10
    assert np.isfinite(res.frames).all()
    np.testing.assert_array_equal(res.frames[:, mask == 0], np.broadcast_to(image[mask == 0],
                                                                            res.frames[:, mask == 0].shape))


# --- VAE posterior: the mode by default, a seeded sample on request ------------------------------------

def test_posterior_sampling_is_seeded(tiny_backend, phantom):
    image, mask = phantom
    px = torch.from_numpy(image)[None]
    mode = tiny_backend.encode_image(px)
    a, b = tiny_backend.encode_image(px, sample_seed=1), tiny_backend.encode_image(px, sample_seed=2)
    assert torch.equal(a, tiny_backend.encode_image(px, sample_seed=1))
    assert not torch.equal(a, b) and not torch.equal(a, mode)
    fake = FakeBackend()
    run(fake, image, mask, rounds=2, chain="pixel", seed=7)
    assert fake.encode_seeds == [None, None]
    fake = FakeBackend()
    res = run(fake, image, mask, rounds=2, chain="pixel", seed=7, posterior="sample")
    assert len(fake.encode_seeds) == 2 and len(set(fake.encode_seeds)) == 2 and None not in fake.encode_seeds
    assert "VAE posterior sampled" in res.summary and res.settings["posterior"] == "sample"
    with pytest.raises(MVGInputError, match="posterior='median'"):
        run(fake, image, mask, posterior="median")
    s1 = run(tiny_backend, image, mask, rounds=1, posterior="sample", seed=3)
    s2 = run(tiny_backend, image, mask, rounds=1, posterior="sample", seed=3)
    np.testing.assert_array_equal(s1.frames, s2.frames)


# --- module layout ---------------------------------------------------------------------------------------

def test_loading_does_not_import_the_backend():
    source = (Path(__file__).resolve().parents[1] / "mvg_backend" / "pie" / "loading.py").read_text()
    imported = [node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]
    assert not any(m and "diffusers_backend" in m for m in imported), imported


def test_backend_builds_from_loader_components(tmp_path, tiny_components):
    from fixtures.tiny_checkpoints import write_tiny_ldm_checkpoint
    from mvg_backend.pie.loading import SDComponents, load_single_file

    path, _ = write_tiny_ldm_checkpoint(tmp_path / "tiny.safetensors", config_dir=tmp_path / "cfg")
    parts = load_single_file(path, config=tmp_path / "cfg")
    assert isinstance(parts, SDComponents) and parts.files == [str(path)]
    backend = DiffusersBackend.from_components(parts, scheduler="pndm")
    assert type(backend.scheduler).__name__ == "PNDMScheduler" and backend.unet is parts.unet
    assert backend.model_files() == [str(path)]
