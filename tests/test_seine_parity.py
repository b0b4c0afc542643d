"""Parity with the official SEINE code, replayed on every run from recorded official outputs.

tests/fixtures/seine_official/ holds what the official code (Vchitect/SEINE, run by
scripts/make_seine_parity_fixture.py outside this repository) computed on two tiny random-weight UNets: one
with SEINE's 32 GroupNorm groups (weights regenerated here from a seed), one with 8 groups and eps 1e-3 (a
stored checkpoint whose header declares them). Here the same weights go through this pack's real loader, UNet
and sampler, and the results must agree within the tolerances the README states.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fixtures import seine_parity as P
from fixtures.tiny_seine import one_torch_thread  # noqa: F401  (a fixture)
from safetensors.torch import load_file, save_file

from mvg_backend.seine import load_seine_unet, read_seine_checkpoint, respaced_timesteps, sample, unet_from_state_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS_TOLERANCE = 1e-5
"""Largest absolute difference allowed between our eps and the official eps (measured: about 2e-6)."""
TRAJECTORY_TOLERANCE = 1e-5
"""Largest difference over a whole sampler trajectory, relative to its largest official value (measured: 2-3e-6)."""
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def official():
    return load_file(str(P.OUTPUTS))


@pytest.fixture(scope="module")
def g32_path(tmp_path_factory):
    """The g32 weights, regenerated from their seed, as a bare safetensors file (declaring nothing)."""
    weights = P.g32_weights()
    assert P.weights_digest(weights) == P.load_manifest()["g32_weights_sha256"], \
        "parity_weights no longer regenerates the recorded g32 weights: rerun scripts/make_seine_parity_fixture.py"
    path = tmp_path_factory.mktemp("parity") / "tiny_seine_g32.safetensors"
    save_file(weights, str(path))
    return path


@pytest.fixture(scope="module")
def nets(g32_path):
    """Both cases through the real loader: g32 with the official defaults, g8 with what its header declares."""
    return {"g32": load_seine_unet(g32_path), "g8": load_seine_unet(P.G8_CHECKPOINT)}


def test_the_fixture_is_small_and_says_how_it_was_made():
    files = [p for p in P.FIXTURE_DIR.iterdir() if p.is_file()]
    assert {p.name for p in files} == {"manifest.json", "official_outputs.safetensors", "tiny_seine_g8.safetensors"}
    assert sum(p.stat().st_size for p in files) < 800_000
    manifest = P.load_manifest()
    assert manifest["provenance"]["official_repository"] == "https://github.com/Vchitect/SEINE"
    assert re.fullmatch(r"[0-9a-f]{40}", manifest["provenance"]["official_commit"])
    assert manifest["provenance"]["diffusers"] == "0.15.0"  # the version the official requirement.txt pins
    assert manifest["official_configs"] == P.OFFICIAL_CONFIGS and manifest["weight_seeds"] == P.WEIGHT_SEEDS


def test_the_loader_reads_the_g8_architecture_from_the_checkpoint_header(g32_path):
    g8 = read_seine_checkpoint(P.G8_CHECKPOINT)
    assert (g8.config.norm_num_groups, g8.config.norm_eps) == (8, 1e-3)
    assert g8.config.block_out_channels == (32, 32) and g8.config.attention_heads == (1, 1)
    assert "GroupNorm 8 groups, eps 0.001, relative-position max distance 32 declared in the safetensors metadata" \
        in g8.summary
    assert "norm_num_groups=8, norm_eps=0.001: declared in the 'config' entry of 'tiny_seine_g8.pt'" in g8.summary
    g32 = read_seine_checkpoint(g32_path)
    assert (g32.config.norm_num_groups, g32.config.norm_eps, g32.config.attention_heads) == (32, 1e-5, (1, 2))
    assert "GroupNorm 32 groups, eps 1e-05, relative-position max distance 32: official SEINE values" in g32.summary


@pytest.mark.parametrize("case", ["g32", "g8"])
def test_unet_eps_equals_the_official(nets, official, case):
    eps = nets[case](official["eps.sample"], official["eps.timesteps"], official["eps.text"])
    expected = official[f"{case}.eps"]
    assert expected.abs().max() > 0.1 and expected.std() > 0.1  # a live network, not a degenerate one
    assert (eps - expected).abs().max() < EPS_TOLERANCE


def run_sampler(net, official, sampler, steps, seed=P.DDPM_SEED):
    """Our sampler on the recorded inputs: the latents after every step, and the timesteps the network saw."""
    seen = []

    def record(net_input, timestep, text):
        seen.append((int(timestep[0]), net_input[:1, :4].clone()))
        return net(net_input, timestep, text)

    generator = torch.Generator().manual_seed(seed) if sampler == "ddpm" else None
    final = sample(record, official["sampler.noise"], official["sampler.mask"], official["sampler.masked_video"],
                   official["sampler.cond"], official["sampler.uncond"], steps=steps, cfg=P.CFG, sampler=sampler,
                   generator=generator)
    return torch.stack([x for _, x in seen[1:]] + [final]), [t for t, _ in seen]


@pytest.mark.parametrize("case,sampler,steps", [(c, s, n) for c, runs in P.TRAJECTORIES.items() for s, n in runs])
def test_sampler_trajectory_equals_the_official(nets, official, case, sampler, steps):
    """CFG 8 with SEINE's mask and masked-video conditioning; DDPM replays the official noise draws."""
    trajectory, timesteps = run_sampler(nets[case], official, sampler, steps)
    key = f"{case}.{sampler}{steps}"
    assert timesteps == official[key + ".timesteps"].tolist()
    expected = official[key]
    assert trajectory.shape == expected.shape == (steps, 1, 4, P.FRAMES, P.LATENT_H, P.LATENT_W)
    assert (trajectory - expected).abs().max() < TRAJECTORY_TOLERANCE * expected.abs().max()


def test_respaced_timesteps_equal_the_official(official):
    for n in P.RESPACINGS:
        assert respaced_timesteps(n) == official[f"respacing.{n}"].tolist(), n
    assert 499 in official["respacing.21"].tolist()  # ADM's summed stride, not round(10 * 999 / 20) = 500


def test_the_fixture_tells_wrong_architectures_and_samplers_apart(nets, official, g32_path):
    """Each check above can fail: wrong GroupNorm groups, a wrong eps, another DDPM seed all miss by far."""
    x, t, text = official["eps.sample"], official["eps.timesteps"], official["eps.text"]
    state = read_seine_checkpoint(P.G8_CHECKPOINT).state
    as_32_groups = unet_from_state_dict(dict(state))  # the shapes alone: the official 32 groups
    assert (as_32_groups(x, t, text) - official["g8.eps"]).abs().max() > 1000 * EPS_TOLERANCE
    config = read_seine_checkpoint(P.G8_CHECKPOINT).config
    default_eps = unet_from_state_dict(dict(state), config=replace(config, norm_eps=1e-5))
    assert (default_eps(x, t, text) - official["g8.eps"]).abs().max() > 10 * EPS_TOLERANCE

    trajectory, _ = run_sampler(nets["g32"], official, "ddpm", 5)
    other, _ = run_sampler(nets["g32"], official, "ddpm", 5, seed=P.DDPM_SEED + 1)
    expected = official["g32.ddpm5"]
    assert (trajectory - expected).abs().max() < TRAJECTORY_TOLERANCE * expected.abs().max()
    assert (other - expected).abs().max() > 1000 * TRAJECTORY_TOLERANCE * expected.abs().max()


def test_the_readme_states_what_these_tests_check():
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("**Fidelity to the official model**"):]
    paragraph = paragraph[: paragraph.index("\n\n")]
    assert "tests/test_seine_parity.py" in paragraph and "scripts/make_seine_parity_fixture.py" in paragraph
    assert f"eps within {EPS_TOLERANCE:.0e}".replace("e-0", "e-") in paragraph
    assert f"within {TRAJECTORY_TOLERANCE:.0e}".replace("e-0", "e-") + " of the largest value" in paragraph
    assert "8 GroupNorm groups" in paragraph and "32" in paragraph
