"""PIE in real ComfyUI (>= 0.3.64), in-process: the schedule a round runs, and one contract for both backends.

Each test drives ``tests/fixtures/comfy_pie_probe.py`` with ComfyUI's own Python (``COMFYUI_PYTHON``) and
checks what it reports. Skipped without COMFYUI_DIR / COMFYUI_PYTHON. CPU, a tiny SD1.5-shaped checkpoint
with the full KL VAE (so diffusers' ``load_single_file`` reads the same file as ComfyUI).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.comfyui

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "fixtures" / "comfy_pie_probe.py"
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal"]
GRID_STEPS = list(range(1, 71))
GRID_STRENGTHS = [0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.56, 0.6, 0.7, 0.8, 0.9, 1.0]
LONG_PROMPT = ("a chest x-ray with a large right pleural effusion, blunting of the right costophrenic angle, "
               "a meniscus sign along the lateral chest wall, partial collapse of the right lower lobe, mild "
               "mediastinal shift to the left, no pneumothorax, normal heart size, clear left lung, intact ribs "
               "and clavicles, well expanded upper lobes, no free air under the diaphragm, standard PA view "
               "with good inspiration and no rotation of the patient")

# (key, settings): contract runs; ``set_alpha_to_one`` True makes diffusers' DDIM end at sigma 0 like
# ComfyUI's ddim_uniform, so the two compute the same steps and must agree to float error
CONTRACT = [
    {"key": "S10_g0.5", "steps": 10, "strength": 0.5, "set_alpha_to_one": True},
    {"key": "S28_g0.56", "steps": 28, "strength": 0.56, "set_alpha_to_one": True},
    {"key": "S50_g0.3_cfg0.5", "steps": 50, "strength": 0.3, "cfg": 0.5, "set_alpha_to_one": True},
    {"key": "S7_g1.0_pixel_long", "steps": 7, "strength": 1.0, "chain": "pixel", "prompt": LONG_PROMPT,
     "set_alpha_to_one": True},
    {"key": "S10_g0.5_sd_config", "steps": 10, "strength": 0.5, "set_alpha_to_one": None},
]
TOKEN_TEXTS = ["a chest x-ray", "", "right-sided pleural effusion, moderate", LONG_PROMPT]
ATOL = 1e-4  # measured: UNet inputs <= 1e-5, frames <= 2e-5 (fp32, CPU)


@pytest.fixture(scope="module")
def comfy():
    from comfyui_harness import find_comfyui

    found = find_comfyui()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def kl_checkpoint(tmp_path_factory):
    from fixtures.tiny_checkpoints import write_tiny_sd15_comfy_checkpoint

    return write_tiny_sd15_comfy_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_kl.safetensors", seed=0,
                                            vae="kl")


def probe(comfy, request: dict, out: Path, timeout: float = 900) -> Path:
    comfyui_dir, python = comfy
    out.mkdir(parents=True, exist_ok=True)
    (out / "request.json").write_text(json.dumps(request))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([str(python), str(PROBE), str(comfyui_dir), str(REPO), str(out / "request.json"), str(out)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


# --------------------------------------------------------------------------------------------------
# the schedule: the tail of the full S-step schedule, in ComfyUI's own scheduler code
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grid(comfy, kl_checkpoint, tmp_path_factory):
    request = {"mode": "schedule", "checkpoint": str(kl_checkpoint), "sampler": "ddim", "schedulers": SCHEDULERS,
               "steps": GRID_STEPS, "strengths": GRID_STRENGTHS}
    out = probe(comfy, request, tmp_path_factory.mktemp("grid"))
    return json.loads((out / "schedule.json").read_text())


def test_round_runs_the_last_n_sigmas_of_the_full_schedule(grid):
    assert len(grid) == len(SCHEDULERS) * len(GRID_STEPS) * len(GRID_STRENGTHS)  # 7560
    bad = [(r["scheduler"], r["steps"], r["strength"]) for r in grid
           if r["received"] != r["full"][-(r["n"] + 1):]]
    assert bad == [], f"{len(bad)} settings got other sigmas, e.g. {bad[:5]}"
    for r in grid:
        assert r["n"] == max(1, min(r["steps"], math.ceil(round(r["strength"] * r["steps"], 6))))
        # every round runs n steps unless the scheduler's own S-step list is shorter (beta drops repeats)
        assert len(r["received"]) - 1 == min(r["n"], len(r["full"]) - 1)
        assert r["received"][-1] == 0.0
    # KSampler's denoise=γ (an int(n/γ)-step schedule) starts elsewhere in many of these settings
    moved = [r for r in grid if not math.isclose(r["denoise_gamma"][0], r["received"][0], rel_tol=1e-6)]
    print(f"\n{len(moved)} of {len(grid)} (scheduler, S, γ) settings: denoise=γ would start at another sigma")
    assert len(moved) > len(grid) // 10


def test_start_timestep_matches_diffusers(grid):
    """ComfyUI's ddim_uniform and diffusers' DDIM / PNDM (SD config: leading spacing, offset 1) start the
    round at the same timestep for every (S, γ)."""
    from diffusers import DDIMScheduler

    from mvg_backend.pie.loading import SD15_CONFIG
    from mvg_backend.pie.schedulers import make_scheduler, round_timesteps

    ddim = DDIMScheduler.from_pretrained(SD15_CONFIG / "scheduler")
    pndm = make_scheduler("pndm", ddim)
    rows = [r for r in grid if r["scheduler"] == "ddim_uniform"]
    assert len(rows) == len(GRID_STEPS) * len(GRID_STRENGTHS)
    for r in rows:
        ts = round_timesteps(ddim, r["steps"], r["n"])
        assert len(ts) == r["n"]
        assert int(ts[0]) == r["t_start"], r
        assert int(round_timesteps(pndm, r["steps"], r["n"])[0]) == r["t_start"], r


def test_samplers_that_drop_the_penultimate_sigma(comfy, kl_checkpoint, tmp_path):
    """uni_pc (like dpm_2) runs KSampler's S+1-step list less its second-to-last sigma: the round runs the
    tail of that list."""
    request = {"mode": "schedule", "checkpoint": str(kl_checkpoint), "sampler": "uni_pc", "schedulers": ["normal"],
               "steps": [2, 3, 10, 25], "strengths": [0.3, 0.5, 1.0], "discard_penultimate": True}
    rows = json.loads((probe(comfy, request, tmp_path) / "schedule.json").read_text())
    assert len(rows) == 12
    for r in rows:
        assert len(r["full"]) == r["steps"] + 1
        assert r["received"] == r["full"][-(r["n"] + 1):], r


def test_every_comfy_sampler_starts_from_the_noised_start_and_anchors_with_the_anchor_noise(comfy, kl_checkpoint,
                                                                                         tmp_path):
    """For every sampler ComfyUI offers (uni_pc included): the first model call sees ``start + σ0·noise``
    everywhere (the whole latent noised, not re-anchored); every later call sees the original re-noised
    with the anchor noise, ``original + σ·anchor_noise``, outside the mask."""
    rows = json.loads((probe(comfy, {"mode": "samplers", "checkpoint": str(kl_checkpoint)}, tmp_path)
                       / "samplers.json").read_text())
    assert len(rows) >= 40 and {"ddim", "euler", "uni_pc", "dpmpp_2m_sde", "lcm"} <= {r["sampler"] for r in rows}
    failed = [r for r in rows if "error" in r or not r["finite"] or r["first_error"] > 1e-5
              or r["anchor_error"] is None or r["anchor_error"] > 1e-5 or r["inside_moves"] < 0.1]
    assert failed == [], failed


# --------------------------------------------------------------------------------------------------
# one contract: both backends, the same weights, image, mask, prompts and seed
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def contract_runs(comfy, kl_checkpoint, tmp_path_factory):
    out = probe(comfy, {"mode": "contract", "checkpoint": str(kl_checkpoint), "settings": CONTRACT,
                        "token_texts": TOKEN_TEXTS}, tmp_path_factory.mktemp("contract"))
    info = json.loads((out / "contract.json").read_text())
    runs = {s["key"]: (dict(np.load(out / f"{s['key']}.npz")), info[s["key"]]) for s in CONTRACT}
    runs["extra"] = ({}, {k: v for k, v in info.items() if k not in runs})
    return runs


def _max(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


@pytest.mark.parametrize("key", [s["key"] for s in CONTRACT if s["set_alpha_to_one"]])
def test_backends_agree(contract_runs, key):
    arrays, info = contract_runs[key]
    c, d = info["comfy"], info["diffusers"]
    assert c["calls"] == d["calls"] > 0
    assert c["notes"] == d["notes"]
    assert c["batch"] == d["batch"] == 2  # CFG: conditional and unconditional in one batch
    np.testing.assert_array_equal(arrays["comfy_t"], arrays["diffusers_t"])
    # the latents of the original (ComfyUI keeps them unscaled) and the text
    np.testing.assert_allclose(arrays["comfy_z0"] * 0.18215, arrays["diffusers_z0"], rtol=0, atol=1e-6)
    ctx_c, ctx_d = arrays["comfy_context"], arrays["diffusers_context"]
    assert min(_max(ctx_c[0], ctx_d[0]) + _max(ctx_c[1], ctx_d[1]),
               _max(ctx_c[0], ctx_d[1]) + _max(ctx_c[1], ctx_d[0])) < 2 * ATOL
    # what the UNet receives: first call, then every call of the run
    x_c, x_d = arrays["comfy_x"], arrays["diffusers_x"]
    first = _max(x_c[0], x_d[0])
    every = max(_max(a, b) for a, b in zip(x_c, x_d))
    frames = _max(arrays["comfy_frames"], arrays["diffusers_frames"])
    print(f"\n{key}: {c['calls']} UNet calls; max |diff| first input {first:.2g}, any input {every:.2g}, "
          f"frames {frames:.2g}")
    assert first < ATOL and every < ATOL and frames < ATOL
    assert np.abs(x_d[0]).max() > 0.5 and arrays["diffusers_frames"].std() > 0.05  # not trivially equal


def test_long_prompt_is_cut_alike(contract_runs):
    _, info = contract_runs["S7_g1.0_pixel_long"]
    notes = [n for n in info["comfy"]["notes"] if "CLIP tokens" in n]
    assert len(notes) == 1 and notes == [n for n in info["diffusers"]["notes"] if "CLIP tokens" in n]
    assert "stage 1" in notes[0] and "the prompt has" in notes[0] and "no rotation of the patient'" in notes[0]


def test_sd_config_ddim_differs_only_in_its_last_step(contract_runs):
    """With the SD scheduler config (set_alpha_to_one False, as the reference's PNDM) diffusers' last
    step ends at ᾱ_0 (σ ≈ 0.029) where ComfyUI's ddim_uniform ends at σ = 0: the first round's model
    inputs still agree, the frames differ by that last bit of noise."""
    arrays, info = contract_runs["S10_g0.5_sd_config"]
    x_c, x_d = arrays["comfy_x"], arrays["diffusers_x"]
    n = info["comfy"]["calls"] // 2  # two rounds of 5 steps
    assert max(_max(a, b) for a, b in zip(x_c[:n], x_d[:n])) < ATOL
    later = _max(x_c[n], x_d[n])
    frames = _max(arrays["comfy_frames"], arrays["diffusers_frames"])
    print(f"\nSD config: round 2 first input differs by {later:.2g}, frames by {frames:.2g}")
    assert ATOL < later < 0.1 and ATOL < frames < 0.1


def test_both_backends_count_tokens_alike_and_comfy_refuses_posterior_sampling(contract_runs):
    extra = contract_runs["extra"][1]
    assert extra["tokens"]["comfy"] == extra["tokens"]["diffusers"]
    assert extra["tokens"]["diffusers"][:2] == [5, 0] and extra["tokens"]["diffusers"][3] > 75
    assert extra["comfy_posterior_sample"].startswith("MVGInputError: posterior='sample'")
