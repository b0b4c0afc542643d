"""Benchmark of the PIE engine (``mvg_backend.pie.progressive_edit``) on CPU with random-weight models.

Every number is a ratio of wall times measured in the same run (``time.perf_counter``), because the absolute
times depend on the machine and on whatever else runs on it. Two ratios per setting:

* **overhead** = PIE wall time / floor. The floor is the model work PIE cannot avoid, timed on its own with the
  same components and shapes: R·ceil(γ·S) UNet calls (classifier-free guidance batched, batch 2), one VAE
  encode of the original, one VAE decode per frame (R frames: ``include_original=False``) and one text encoding
  of the run's single stage (negative and positive prompt, one call each, as diffusers' pipelines do).
  ``chain="pixel"`` re-encodes each round's frame but the last, so its "overhead" is against a floor that also
  holds those R−1 encodes, and "vs plain" against the plain floor. Target: <= 1.05.
* **ours/ref**: PIE against a reference-style loop written here after PediaMedAI/PIE, whose pipeline is called
  once per round. Per round it tokenises and encodes the prompt and the empty negative prompt again, runs the VAE
  encoder three times (the current image, the original for the β blend, the original again for the per-step
  re-noised latents), runs the same masked denoising loop with the same number of UNet calls, blends with β1/β2
  in latent space, decodes once and hands the next round an 8-bit image (as its PIL output does). Targets: below
  1 at every setting, <= 0.85 at 10 steps. The last column, **floor/ref** (per-call normalised), is the best
  ours/ref any engine doing the same model work could reach: the floor against the reference.

On a shared machine the wall times drift with the other load; the same ratios are also given in process CPU
time (``time.process_time``), which another process's load disturbs much less (use ``--threads 1`` there: with
more threads than free cores OpenMP's waiting inflates both).

The third pair of ratios removes the drift between runs: every model call of a run is priced at the setting's
pooled mean seconds per call of that model (over the four runs: same shapes, so the same work), plus the run's
own time outside the models. It is what the wall ratios would be had the machine's speed stayed constant.

A second table shows where each run's time went: forward time and call count of the UNet, the VAE encoder, the
VAE decoder and the text encoder (from forward hooks); "other" is the rest (scheduler, masking and blending,
tokenising, conversions, Python).

Models (``bench/models.py``), built offline with random weights and wrapped in ``DiffusersBackend``: ``sd15``
(the SD 1.5 architecture from ``mvg_backend/pie/configs/sd15``) and ``small`` (a few-M-parameter stack with
SD's latent geometry, where the engine's fixed per-step and per-round costs weigh most). The reference-style
loop is ``bench/pie_reference.py`` (importable by tests); the clocks and hooks are ``bench/timing.py``.

Default random initialisation keeps the latents finite at these settings (no rescaling needed); the engine and
the reference loop raise on NaN/Inf if it ever does not.

The input is a synthetic image (a smooth gradient with a disc) and a centred elliptical mask. Each config is
warmed up once (one short run of every kind) before timing; times are the minimum over ``--repeats``, and the
kinds are interleaved within a repeat so that drift in the machine's speed hits them alike.

Run (from the repository root)::

    PYTHONPATH=. python bench/pie.py                      # small and sd15, 50 and 10 steps
    PYTHONPATH=. python bench/pie.py --config small --rounds 10 --repeats 5
    PYTHONPATH=. python bench/pie.py --config sd15 --steps 10 --threads 1   # on a busy machine

The default run makes about 250 SD 1.5 UNet calls (about 4 s each at 256 px on an idle 2-core CPU, 7 s with one
thread) and about 60 VAE passes: some 20 minutes idle, far longer when other processes compete for the cores.
``--rounds 1`` halves it (but leaves the pixel chain a single re-encode); ``--steps 10`` is a look of about 5 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

from bench.models import BUILDERS, build_small, build_sd15, synthetic_case  # noqa: F401 (build_*: re-exported)
from bench.pie_reference import BETA1, BETA2, GUIDANCE, PROMPT, SEED, ReferencePIE, Setting
from bench.timing import ForwardTimer, Measure, Span, measure, now, since
from mvg_backend.pie import DiffusersBackend, denoising_steps, progressive_edit

DEFAULT_ROUNDS = {"sd15": 2, "small": 4}
DEFAULT_REPEATS = {"sd15": 1, "small": 2}
PARTS = ("unet", "vae_encode", "vae_decode", "text")


# --------------------------------------------------------------------------------------------------
# the three kinds of run
# --------------------------------------------------------------------------------------------------
def run_ours(backend: DiffusersBackend, image: np.ndarray, mask: np.ndarray, setting: Setting, chain: str) -> None:
    progressive_edit(backend, image, mask, PROMPT, rounds=setting.rounds, strength=setting.strength,
                     steps=setting.steps, guidance=GUIDANCE, beta1=BETA1, beta2=BETA2, seed=SEED, chain=chain,
                     include_original=False)


@dataclass(frozen=True)
class FloorTimes:
    plain: Span  # text + 1 encode + UNet calls + R decodes
    encodes: Span  # the R−1 extra encodes of chain="pixel" (the last frame is not re-encoded)

    def for_chain(self, chain: str) -> Span:
        return self.plain + self.encodes if chain == "pixel" else self.plain


def run_floor(backend: DiffusersBackend, image: np.ndarray, setting: Setting) -> FloorTimes:
    """The model calls a PIE run cannot avoid, back to back on fixed inputs; see the module docstring."""
    tok, text_encoder, unet, vae = backend.tokenizer, backend.text_encoder, backend.unet, backend.vae
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None] * 2 - 1
    sched = backend.scheduler
    sched.set_timesteps(setting.steps)
    timesteps = sched.timesteps[setting.steps - denoising_steps(setting.strength, setting.steps):]

    start = now()
    ids = tok(["", PROMPT], padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    context = torch.cat([text_encoder(ids[:1])[0], text_encoder(ids[1:])[0]])
    z = vae.encode(pixels).latent_dist.mode()
    latents = torch.randn((2, *z.shape[1:]), generator=torch.Generator().manual_seed(SEED))
    for _ in range(setting.rounds):
        for t in timesteps:
            unet(latents, t, encoder_hidden_states=context)
    for _ in range(setting.rounds):
        vae.decode(z)
    plain = since(start)

    start = now()
    for _ in range(setting.rounds - 1):
        vae.encode(pixels)
    return FloorTimes(plain, since(start))


# --------------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    config: str
    setting: Setting
    latent: Measure
    pixel: Measure
    floor: FloorTimes
    floor_parts: Measure
    reference: Measure

    def _cost_per_call(self) -> dict[str, float]:
        runs = (self.latent, self.pixel, self.floor_parts, self.reference)
        return {p: sum(r.seconds[p] for r in runs) / max(1, sum(r.calls[p] for r in runs)) for p in PARTS}

    def normalised(self, m: Measure) -> float:
        """``m``'s wall time had every model call cost the setting's pooled mean: calls × s/call + other."""
        cost = self._cost_per_call()
        return sum(m.calls[p] * cost[p] for p in PARTS) + m.other

    def normalised_floor(self, chain: str) -> float:
        extra = 0 if chain == "pixel" else (self.setting.rounds - 1) * self._cost_per_call()["vae_encode"]
        return self.normalised(self.floor_parts) - extra


KINDS = ("ours latent", "ours pixel", "floor", "reference")


def bench_setting(config: str, backend: DiffusersBackend, timer: ForwardTimer, image: np.ndarray,
                  mask: np.ndarray, setting: Setting, repeats: int) -> Row:
    """Time every kind ``repeats`` times, interleaved; keep each kind's fastest run (by wall time)."""
    reference = ReferencePIE(backend)
    floors: list[FloorTimes] = []
    runs: dict[str, Callable[[], object]] = {
        "ours latent": partial(run_ours, backend, image, mask, setting, "latent"),
        "ours pixel": partial(run_ours, backend, image, mask, setting, "pixel"),
        "floor": lambda: floors.append(run_floor(backend, image, setting)),
        "reference": partial(reference, image, mask, setting),
    }
    best: dict[str, tuple[Measure, FloorTimes | None]] = {}
    for repeat in range(repeats):
        for kind in KINDS:
            m = measure(timer, runs[kind])
            print(f"  {config} {setting.label} repeat {repeat + 1}/{repeats}: {kind:<11} {m.total.wall:8.2f} s",
                  file=sys.stderr, flush=True)
            if kind not in best or m.total.wall < best[kind][0].total.wall:
                best[kind] = (m, floors[-1] if kind == "floor" else None)
    for kind in ("ours latent", "ours pixel", "reference"):
        made = best[kind][0].calls["unet"]
        if made != setting.unet_calls:
            raise RuntimeError(f"{kind} made {made} UNet calls, expected {setting.unet_calls}")
    floor_measure, floor_times = best["floor"]
    assert floor_times is not None
    return Row(config, setting, best["ours latent"][0], best["ours pixel"][0], floor_times, floor_measure,
               best["reference"][0])


def warm_up(backend: DiffusersBackend, image: np.ndarray, mask: np.ndarray) -> None:
    """One short run of every kind: first-call costs (allocator, oneDNN primitives, lazy imports)."""
    tiny = Setting(steps=2, strength=0.5, rounds=1)
    run_ours(backend, image, mask, tiny, "latent")
    run_ours(backend, image, mask, tiny, "pixel")
    run_floor(backend, image, tiny)
    ReferencePIE(backend)(image, mask, tiny)


def format_tables(rows: list[Row]) -> str:
    head = (f"{'config':<6} {'setting':<20} {'chain':<6} {'ours (s)':>9} {'floor (s)':>10} {'overhead':>9} "
            f"{'vs plain':>9} {'ref (s)':>9} {'ours/ref':>9} | {'overhead':>9} {'ours/ref':>9} | {'overhead':>9} "
            f"{'ours/ref':>9} {'floor/ref':>9}")
    lines = ["PIE wall time: overhead = ours / floor (target <= 1.05); ours/ref (targets < 1, <= 0.85 at 10 steps).",
             "The same two ratios in process CPU time (first |), and per-call normalised (second |): each run's",
             "model calls priced at the setting's pooled mean seconds per call, plus the run's own other time;",
             "floor/ref: the floor against the reference, normalised: the best ours/ref this model work allows.",
             head, "-" * len(head)]
    for r in rows:
        for chain, m in (("latent", r.latent), ("pixel", r.pixel)):
            floor = r.floor.for_chain(chain)
            vs_plain = f"{m.total.wall / r.floor.plain.wall:9.3f}" if chain == "pixel" else f"{'-':>9}"
            lines.append(
                f"{r.config:<6} {r.setting.label:<20} {chain:<6} {m.total.wall:9.2f} {floor.wall:10.2f} "
                f"{m.total.wall / floor.wall:9.3f} {vs_plain} {r.reference.total.wall:9.2f} "
                f"{m.total.wall / r.reference.total.wall:9.3f} | {m.total.cpu / floor.cpu:9.3f} "
                f"{m.total.cpu / r.reference.total.cpu:9.3f} | {r.normalised(m) / r.normalised_floor(chain):9.3f} "
                f"{r.normalised(m) / r.normalised(r.reference):9.3f} "
                f"{r.normalised_floor(chain) / r.normalised(r.reference):9.3f}"
            )
    head2 = (f"{'config':<6} {'setting':<20} {'run':<11} {'total':>8} {'UNet':>14} {'VAE enc':>12} "
             f"{'VAE dec':>12} {'text':>11} {'other':>7}")
    lines += ["", "Where the wall time went: seconds (calls) in each model's forward; other = the rest",
              head2, "-" * len(head2)]
    for r in rows:
        for kind, m in zip(KINDS, (r.latent, r.pixel, r.floor_parts, r.reference)):
            parts = " ".join(
                f"{m.seconds[p]:{w - 5}.2f} ({m.calls[p]:>2})" for p, w in zip(PARTS, (14, 12, 12, 11))
            )
            lines.append(f"{r.config:<6} {r.setting.label:<20} {kind:<11} {m.total.wall:8.2f} {parts} {m.other:7.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=("sd15", "small", "both"), default="both")
    parser.add_argument("--size", type=int, default=256, help="image side in px (default 256)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"PIE rounds R (default: {DEFAULT_ROUNDS})")
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 10],
                        help="scheduler steps S, one setting each (default: 50 10)")
    parser.add_argument("--strength", type=float, default=0.5, help="γ (default 0.5, the reference's)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed repeats per setting, the minimum is kept (default: {DEFAULT_REPEATS})")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = ["small", "sd15"] if args.config == "both" else [args.config]
    image, mask = synthetic_case(args.size)
    load_before = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"{args.size}x{args.size} px, cfg {GUIDANCE}, load average {load_before:.2f} before")
    if load_before > 0.5:
        print("warning: something else is using the CPU: the wall-time ratios will be noisy; read the CPU-time "
              "and per-call normalised ones too (--threads 1 helps)", flush=True)

    started = time.perf_counter()
    rows: list[Row] = []
    with torch.inference_mode():
        for config in configs:
            t0 = time.perf_counter()
            backend = BUILDERS[config]()
            timer = ForwardTimer.for_backend(backend)
            n_params = sum(p.numel() for p in backend.unet.parameters()) / 1e6
            print(f"{config}: built in {time.perf_counter() - t0:.1f} s (UNet {n_params:.1f} M parameters)",
                  flush=True)
            warm_up(backend, image, mask)
            rounds = args.rounds or DEFAULT_ROUNDS[config]
            repeats = args.repeats or DEFAULT_REPEATS[config]
            for steps in args.steps:
                setting = Setting(steps=steps, strength=args.strength, rounds=rounds)
                rows.append(bench_setting(config, backend, timer, image, mask, setting, repeats))
            del backend, timer
    print()
    print(format_tables(rows))
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
