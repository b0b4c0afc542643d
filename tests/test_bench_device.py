"""bench/device.py --tiny runs (CI keeps the device benchmark working), and the sampling loops of PIE and SEINE
make no host-device copy and no host sync once they run (checked on the CPU with the models on ``meta``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.timing import DeviceCopyCounter
from fixtures.tiny_seine import make_tiny_seine
from mvg_backend.pie import DiffusersBackend
from mvg_backend.pie.backend import RoundSpec, TextConditioning, round_noise
from mvg_backend.seine import sample
from mvg_backend.seine.transition import step_generator

ROOT = Path(__file__).resolve().parents[1]
ROWS = (
    "s/round", "PIE floor", "PIE overhead vs floor", "PIE copies in the loop", "PIE fp16 vs fp32", "PIE bf16 vs fp32",
    "DDIM-25 s/transition", "DDIM-50 s/transition", "DDPM-250 s/transition", "SEINE FLOPs per CFG step",
    "SEINE achieved TFLOP/s", "SEINE peak memory", "SEINE copies in the loop", "SEINE fp16 vs fp32",
    "SEINE bf16 vs fp32",
)


def test_device_benchmark_tiny_prints_its_table():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "device.py"), "--tiny", "--device", "cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = {line.split(" | ")[0].strip(): line.split(" | ", 1)[1] for line in done.stdout.splitlines()
             if " | " in line}
    for row in ROWS:
        assert any(row in key for key in table), f"no row {row!r} in:\n{done.stdout}"
    copies = [v for k, v in table.items() if "copies in the loop" in k]
    assert copies and all(v.startswith("0 / 0 ") for v in copies), copies
    for key, value in table.items():
        if "vs fp32" in key:
            assert float(value) < 0.5, (key, value)  # finite, and not a black or NaN frame


def _pie_loop_on_meta(components, scheduler=None):
    unet, vae, text_encoder, tokenizer, sched = components
    backend = DiffusersBackend(unet.to("meta"), vae, text_encoder, tokenizer, scheduler or sched)
    noise, anchor, generator = round_noise((1, 4, 8, 8), 0)
    spec = RoundSpec(steps=10, denoise_steps=5, guidance=7.5, seed=0, noise=noise, anchor_noise=anchor,
                     generator=generator)
    z = torch.zeros(1, 4, 8, 8, device="meta")
    mask = torch.ones(1, 1, 8, 8, device="meta")
    text = TextConditioning(torch.zeros(1, 77, 32, device="meta"), torch.zeros(1, 77, 32, device="meta"))
    with DeviceCopyCounter(loop_start=backend.unet) as in_loop, DeviceCopyCounter() as whole:
        backend.denoise(z, z, mask, text, spec)
    return in_loop, whole


@pytest.mark.parametrize("name", ["ddim", "pndm", "ddpm"])  # Euler-type keep sigmas on the CPU: no meta run
def test_pie_loop_makes_no_host_device_copy(tiny_components, name):
    """The round's noise, schedule and text cross to the device once, before the loop; the loop itself makes
    no copy from the host and never reads a device value back (which would sync a GPU every step).

    Ancestral samplers (ddpm here) draw noise every step: with the round's CPU generator (what a ``meta`` run
    uses) that is one copy a step, which is why on a GPU the backend gives them a generator on the GPU."""
    import copy

    from mvg_backend.pie.schedulers import make_scheduler

    components = copy.deepcopy(tiny_components)
    in_loop, whole = _pie_loop_on_meta(components, make_scheduler(name, components[4]))
    assert whole.total_copies >= 2  # the set-up does cross (noise, anchor noise): the counter sees copies
    per_step_noise = 5 if name == "ddpm" else 0
    assert in_loop.total_copies == per_step_noise and in_loop.syncs == 0, (in_loop.copies, in_loop.syncs)


def test_seine_loop_makes_no_host_device_copy():
    unet = make_tiny_seine(cross_attention_dim=32).to("meta")
    shape = (1, 4, 5, 4, 4)
    noise, video = torch.zeros(shape, device="meta"), torch.zeros(shape, device="meta")
    mask, cond = torch.ones(1, 1, 5, 4, 4, device="meta"), torch.zeros(1, 77, 32, device="meta")
    with DeviceCopyCounter(loop_start=unet) as ddim:
        sample(unet, noise, mask, video, cond, cond, steps=3, sampler="ddim")
    assert ddim.total_copies == 0 and ddim.syncs == 0
    # DDPM draws noise every step: from a generator on the host it would be copied each step (the counter
    # sees it), so the engine draws it on the model's device (step_generator)
    with DeviceCopyCounter(loop_start=unet) as host_noise:
        sample(unet, noise, mask, video, cond, cond, steps=3, sampler="ddpm", generator=torch.Generator())
    assert host_noise.copies == {"cpu->meta": 2}
    if torch.cuda.is_available():
        generator = step_generator(torch.Generator(), torch.device("cuda"), 0)
        assert generator.device.type == "cuda"


def test_compile_flag_compiles_each_unet_once_and_changes_nothing(tiny_components, phantom, monkeypatch):
    """``compile=True`` (PIE backend, SEINE transitions; CLI ``--compile``) hands the UNet to ``torch.compile``
    once and runs what it returns. Here torch.compile is replaced by a counting pass-through: compiling for
    real takes minutes on this CPU, and bench/device.py --compile times it on a GPU."""
    import numpy as np

    from mvg_backend.pie import progressive_edit
    from mvg_backend.seine import DiffusersSEINEBackend, transition_frames

    compiled: list[torch.nn.Module] = []

    def fake_compile(module):
        compiled.append(module)
        return lambda *a, **k: module(*a, **k)

    monkeypatch.setattr(torch, "compile", fake_compile)
    image, mask = phantom
    unet, vae, text_encoder, tokenizer, scheduler = tiny_components
    kwargs = dict(rounds=2, steps=4, seed=1)
    eager = progressive_edit(DiffusersBackend(*tiny_components), image, mask, "a", **kwargs).frames
    backend = DiffusersBackend(*tiny_components, compile=True)
    frames = progressive_edit(backend, image, mask, "a", **kwargs).frames
    assert compiled == [unet]
    np.testing.assert_array_equal(frames, eager)

    seine = DiffusersSEINEBackend(make_tiny_seine(cross_attention_dim=32), vae, text_encoder, tokenizer)
    keyframes = np.stack([image, image[::-1].copy(), image[:, ::-1].copy()])
    settings = dict(backend=seine, frames=4, steps=2, sampler="ddim", resolution="native")
    eager = transition_frames(keyframes, **settings).frames
    frames = transition_frames(keyframes, compile=True, **settings).frames
    transition_frames(keyframes, compile=True, **settings)
    assert compiled == [unet, seine.unet]  # once per network, over two transitions and two calls
    np.testing.assert_array_equal(frames, eager)
