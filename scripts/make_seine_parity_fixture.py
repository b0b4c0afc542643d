"""Record what the OFFICIAL SEINE code computes on tiny random weights: tests/fixtures/seine_official/.

    python scripts/make_seine_parity_fixture.py --official /path/to/SEINE [--out DIR] [--force]

``--official`` is a checkout of https://github.com/Vchitect/SEINE. Its modules (``models.unet``,
``diffusion``) are imported from there at run time; nothing of the official code is in this repository.
The Python running this needs torch, numpy, safetensors and what the official model imports, at the
versions its requirement.txt pins where they matter: diffusers 0.15.0 (with huggingface_hub 0.13.x),
rotary-embedding-torch 0.3.5 and einops. diffusers 0.15 imports transformers when it finds it, and a
current transformers no longer fits huggingface_hub 0.13, so this script hides transformers from it (the
UNet and the diffusion code do not use it). For example, with a scratch venv that sees a torch install:

    pip install einops rotary-embedding-torch==0.3.5
    pip install --no-deps --target /tmp/d015 diffusers==0.15.0 huggingface_hub==0.13.4
    PYTHONPATH=/tmp/d015 python scripts/make_seine_parity_fixture.py --official /tmp/SEINE

What it writes (the cases, sizes and seeds are in tests/fixtures/seine_parity.py):

- ``tiny_seine_g8.safetensors``: the ``g8`` case's weights (float8), converted by this pack's
  ``convert_checkpoint`` from a ``.pt`` holding ``ema`` and the official model's own ``config`` (8 groups,
  eps 1e-3), so the header declares them;
- ``official_outputs.safetensors``: fixed inputs and the official outputs: the UNet's eps for both cases, DDIM
  and DDPM trajectories (the latents after every step, with classifier-free guidance and SEINE's
  mask/masked-video conditioning), the timesteps the official sampler passed to the network, and the official
  respaced timesteps for a few step counts;
- ``manifest.json``: provenance (official commit, library versions), the cases and the settings.

At the end it replays everything with this pack's loader, UNet and sampler and prints the largest
differences (what tests/test_seine_parity.py then checks on every run).

``--check-sd14`` writes nothing: it builds the official model in the full SD 1.4 configuration (909 M
parameters, random weights), runs it and this pack's UNet on one input (16 frames of 8x8 latents, batch 2)
and prints the largest eps difference. About 8 GB of memory and a few minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from fixtures import seine_parity as P  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def import_official(path: Path):
    """The official UNet class, ``create_diffusion`` and ``space_timesteps``, imported from the checkout."""
    if not (path / "models" / "unet.py").is_file() or not (path / "diffusion" / "respace.py").is_file():
        sys.exit(f"{path} is not a Vchitect/SEINE checkout (no models/unet.py, diffusion/respace.py)")
    sys.modules.setdefault("transformers", None)  # see the module docstring: diffusers 0.15 must not import it
    sys.path.insert(0, str(path))
    from diffusion import create_diffusion
    from diffusion.respace import space_timesteps
    from models.unet import UNet3DConditionModel

    return UNet3DConditionModel, create_diffusion, space_timesteps


def provenance(official: Path) -> dict:
    import diffusers
    import rotary_embedding_torch

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(official), *args], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    try:
        from importlib.metadata import version

        rotary_version = version("rotary-embedding-torch")
    except Exception:  # noqa: BLE001
        rotary_version = getattr(rotary_embedding_torch, "__version__", "unknown")
    return {
        "official_repository": "https://github.com/Vchitect/SEINE",
        "official_commit": git("rev-parse", "HEAD"),
        "diffusers": diffusers.__version__,
        "rotary_embedding_torch": rotary_version,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def official_model(cls, case: str, weights: dict[str, torch.Tensor]):
    model = cls(**P.OFFICIAL_CONFIGS[case]).eval()
    freqs = [v for k, v in model.state_dict().items() if k.endswith("rotary_emb.freqs")]
    assert all(torch.allclose(f, P.rotary_freqs(2 * f.shape[0]), rtol=1e-6) for f in freqs), "rotary frequencies differ"
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    return model


def inputs() -> dict[str, torch.Tensor]:
    rng = np.random.RandomState(P.INPUT_SEED)

    def normal(*shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal(size=shape).astype(np.float32))

    f, h, w = P.FRAMES, P.LATENT_H, P.LATENT_W
    first, last, grey = normal(4, h, w), normal(4, h, w), normal(4, h, w)
    masked_video = torch.stack([first, *([grey] * (f - 2)), last], dim=1)[None]
    mask = torch.ones(1, 1, f, h, w)
    mask[:, :, 0] = mask[:, :, -1] = 0  # SEINE's "onelast": first and last frames known
    return {
        "eps.sample": normal(2, 9, f, h, w),
        "eps.timesteps": torch.tensor(P.EPS_TIMESTEPS, dtype=torch.int64),
        "eps.text": normal(2, P.TEXT_TOKENS, P.TEXT_DIM),
        "sampler.noise": normal(1, 4, f, h, w),
        "sampler.mask": mask,
        "sampler.masked_video": masked_video,
        "sampler.cond": normal(1, P.TEXT_TOKENS, P.TEXT_DIM),
        "sampler.uncond": normal(1, P.TEXT_TOKENS, P.TEXT_DIM),
    }


def official_trajectory(model, create_diffusion, sampler: str, steps: int, x: dict[str, torch.Tensor]):
    """The official sampler as its sample script drives it: a batch doubled for CFG, ``forward_with_cfg``."""
    diffusion = create_diffusion(str(steps))
    called: list[int] = []

    def forward(sample, timestep, **kwargs):
        called.append(int(timestep[0]))
        return model.forward_with_cfg(sample, timestep, **kwargs)

    kwargs = dict(encoder_hidden_states=torch.cat([x["sampler.cond"], x["sampler.uncond"]]), class_labels=None,
                  cfg_scale=P.CFG, use_fp16=False)
    noise = torch.cat([x["sampler.noise"]] * 2)
    common = dict(noise=noise, clip_denoised=False, model_kwargs=kwargs, device="cpu",
                  mask=torch.cat([x["sampler.mask"]] * 2), x_start=torch.cat([x["sampler.masked_video"]] * 2),
                  use_concat=True)
    if sampler == "ddim":
        loop = diffusion.ddim_sample_loop_progressive(forward, noise.shape, **common)
    else:
        torch.manual_seed(P.DDPM_SEED)  # the official sampler draws its noise from the global generator
        loop = diffusion.p_sample_loop_progressive(forward, noise.shape, **common)
    trajectory = torch.stack([out["sample"][:1].clone() for out in loop])
    return trajectory, torch.tensor(called, dtype=torch.int64)


def write_g8_checkpoint(weights: dict[str, torch.Tensor], official_config: dict, target: Path) -> None:
    """``tiny_seine_g8.safetensors`` through the pack's converter, from a .pt like a trained SEINE checkpoint."""
    from mvg_backend.seine import convert_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tiny_seine_g8.pt"
        torch.save({"ema": weights, "config": official_config}, str(src))
        target.unlink(missing_ok=True)
        print(convert_checkpoint(src, target, trust_pickle=True).summary)


def replay(outputs: dict[str, torch.Tensor], out_dir: Path) -> dict[str, float]:
    """This pack's loader, UNet and sampler on the recorded inputs: the largest differences to the official outputs
    (absolute for eps, relative to the largest official value for the trajectories)."""
    from mvg_backend.seine import load_seine_unet, respaced_timesteps, sample

    diffs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        g32 = Path(tmp) / "tiny_seine_g32.safetensors"
        save_file(P.g32_weights(), str(g32))
        nets = {"g32": load_seine_unet(g32), "g8": load_seine_unet(out_dir / P.G8_CHECKPOINT.name)}
    for case, net in nets.items():
        eps = net(outputs["eps.sample"], outputs["eps.timesteps"], outputs["eps.text"])
        diffs[f"{case}.eps"] = float((eps - outputs[f"{case}.eps"]).abs().max())
        for sampler, steps in P.TRAJECTORIES[case]:
            key = f"{case}.{sampler}{steps}"
            seen: list[tuple[int, torch.Tensor]] = []

            def record(net_input, timestep, text, net=net, seen=seen):
                seen.append((int(timestep[0]), net_input[:1, :4].clone()))
                return net(net_input, timestep, text)

            generator = torch.Generator().manual_seed(P.DDPM_SEED) if sampler == "ddpm" else None
            final = sample(record, outputs["sampler.noise"], outputs["sampler.mask"], outputs["sampler.masked_video"],
                           outputs["sampler.cond"], outputs["sampler.uncond"], steps=steps, cfg=P.CFG, sampler=sampler,
                           generator=generator)
            trajectory = torch.stack([x for _, x in seen[1:]] + [final])  # the latents after every step
            official = outputs[key]
            diffs[key] = float((trajectory - official).abs().max() / official.abs().max())
            assert [t for t, _ in seen] == outputs[key + ".timesteps"].tolist(), key
    for n in P.RESPACINGS:
        assert respaced_timesteps(n) == outputs[f"respacing.{n}"].tolist(), n
    return diffs


def check_sd14(OfficialUNet) -> None:
    """eps of the official model and of ours in the full SD 1.4 configuration, same random weights."""
    from mvg_backend.seine import unet_from_state_dict

    model = OfficialUNet(in_channels=9, out_channels=4, attention_head_dim=8, cross_attention_dim=768,
                         block_out_channels=(320, 640, 1280, 1280)).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(P.parity_weights(shapes, seed=14), strict=True)
    ours = unet_from_state_dict(dict(model.state_dict()))  # shares the tensors: no second copy
    rng = np.random.RandomState(P.INPUT_SEED)
    x = torch.from_numpy(rng.standard_normal(size=(2, 9, 16, 8, 8)).astype(np.float32))
    text = torch.from_numpy(rng.standard_normal(size=(2, 77, 768)).astype(np.float32))
    t = torch.tensor(P.EPS_TIMESTEPS)
    official = model(x, t, text).sample
    eps = ours(x, t, text)
    print(f"SD 1.4 configuration: {len(shapes)} keys, {sum(p.numel() for p in ours.parameters()):,} parameters; "
          f"eps max |official| {official.abs().max():.3f}, largest difference {(eps - official).abs().max():.2e}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of github.com/Vchitect/SEINE")
    parser.add_argument("--out", type=Path, default=P.FIXTURE_DIR)
    parser.add_argument("--force", action="store_true", help="overwrite an existing fixture")
    parser.add_argument("--check-sd14", action="store_true",
                        help="write nothing; compare eps in the full SD 1.4 configuration (about 8 GB, minutes)")
    args = parser.parse_args(argv)
    official_root = args.official.expanduser().resolve()
    if args.check_sd14:
        torch.set_grad_enabled(False)
        torch.set_num_threads(1)
        check_sd14(import_official(official_root)[0])
        return 0
    if (args.out / P.OUTPUTS.name).exists() and not args.force:
        sys.exit(f"{args.out / P.OUTPUTS.name} exists; pass --force to overwrite")
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)  # deterministic reductions, and the machine stays usable
    OfficialUNet, create_diffusion, space_timesteps = import_official(official_root)

    x = inputs()
    outputs = dict(x)
    for n in P.RESPACINGS:
        outputs[f"respacing.{n}"] = torch.tensor(sorted(space_timesteps(1000, str(n))), dtype=torch.int64)

    # the weights: g32 regenerated from its seed by the tests; g8 rounded to float8 and stored
    shapes = {k: tuple(v.shape) for k, v in OfficialUNet(**P.OFFICIAL_CONFIGS["g8"]).state_dict().items()}
    g8 = {k: (v if k.endswith("rotary_emb.freqs") else v.to(torch.float8_e4m3fn))
          for k, v in P.parity_weights(shapes, P.WEIGHT_SEEDS["g8"]).items()}
    weights = {"g32": P.g32_weights(), "g8": g8}
    official_shapes = {k: tuple(v.shape) for k, v in OfficialUNet(**P.OFFICIAL_CONFIGS["g32"]).state_dict().items()}
    assert official_shapes == {k: tuple(v.shape) for k, v in weights["g32"].items()}, "g32: key/shape mismatch"

    args.out.mkdir(parents=True, exist_ok=True)
    for case in ("g32", "g8"):
        model = official_model(OfficialUNet, case, weights[case])
        if case == "g8":
            official_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()}
            write_g8_checkpoint(weights["g8"], official_config, args.out / P.G8_CHECKPOINT.name)
        outputs[f"{case}.eps"] = model(x["eps.sample"], x["eps.timesteps"], x["eps.text"]).sample
        for sampler, steps in P.TRAJECTORIES[case]:
            trajectory, called = official_trajectory(model, create_diffusion, sampler, steps, x)
            outputs[f"{case}.{sampler}{steps}"] = trajectory
            outputs[f"{case}.{sampler}{steps}.timesteps"] = called

    manifest = {
        "made_by": "scripts/make_seine_parity_fixture.py (runs the official code; see tests/fixtures/seine_parity.py)",
        "provenance": provenance(official_root),
        "official_configs": P.OFFICIAL_CONFIGS,
        "weight_seeds": P.WEIGHT_SEEDS,
        "g32_weights_sha256": P.weights_digest(weights["g32"]),
        "g8_checkpoint": P.G8_CHECKPOINT.name + " (float8_e4m3fn weights, float32 rotary frequencies)",
        "input_seed": P.INPUT_SEED,
        "ddpm_seed": P.DDPM_SEED,
        "cfg": P.CFG,
        "eps_timesteps": list(P.EPS_TIMESTEPS),
        "trajectories": {case: [f"{s}{n}" for s, n in runs] for case, runs in P.TRAJECTORIES.items()},
        "shapes": {k: list(v.shape) for k, v in sorted(outputs.items())},
    }
    save_file({k: v.contiguous() for k, v in outputs.items()}, str(args.out / P.OUTPUTS.name),
              metadata={"manifest": json.dumps(manifest)})
    (args.out / P.MANIFEST.name).write_text(json.dumps(manifest, indent=1) + "\n")

    diffs = replay(outputs, args.out)
    print(json.dumps(diffs, indent=1))
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"wrote {args.out} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
