"""Cohort scale: the Ray engine against the local engine on the same cases, then a projection for N GPUs.

    PYTHONPATH=. python bench/batch_scale.py                  # 6 cases, tiny random model, 128 px, 16 frames
    PYTHONPATH=. python bench/batch_scale.py --cases 12 --size 512 --transition-frames 16 --workers 4
    PYTHONPATH=. python bench/batch_scale.py --sustained-tflops 400   # the projection for another GPU figure

Measured in one run, on this machine (random tiny model, 1 torch thread, as the engines set it; the cases are
the demo's fundus photo and report):

- the local engine (``run_batch``): model load, seconds per case (``run_case``), and the engine's own seconds
  per case: with the cases finishing one after another, the span from the first to the last finished case
  minus those cases' own seconds, per case;
- the Ray engine (``run_batch_ray``) with 1 worker on the same cases: ``ray.init``, the call to the first case's
  start (worker process, imports, model load) and the model load alone, the seconds per case on the worker,
  and the engine's own seconds per case as above (Ray's calls, result transfer, bookkeeping; with two calls
  queued per worker, the next case starts without waiting for the driver). Ray's per-case overhead is the
  difference of the two engines' own seconds, also as a ratio of a whole local case;
- the Ray engine with ``--workers`` workers: the interval between finished cases against 1 worker's.

Then the projection: per-case GPU time = the FLOPs of one case at the pipeline's defaults (counted here with
``FlopCounterMode`` on the SD 1.5 UNet and VAE and SEINE's official UNet, built on the ``meta`` device: shapes
only, no weights, no memory) / an assumed sustained TFLOP/s; plus the measured host-side seconds per frame
(prompts, ROI, video, files, evaluation) times the default case's 46 frames, and Ray's measured per-case
overhead; the model load once per worker.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from mvg_backend.batch import load_cases, run_batch
from mvg_backend.batch.models import ModelSpec
from mvg_backend.batch.ray_engine import RaySettings, run_batch_ray
from mvg_backend.case import CaseOutcome
from mvg_backend.cli_pipeline import DEMO_REPORT, _demo_image
from mvg_backend.pipeline import PipelineConfig

HOST_STAGES = ("prompts", "roi", "video", "write", "evaluate")
COHORT = 10_000
GPUS = (1, 8, 64)


# --------------------------------------------------------------------------------------------------
# measured
# --------------------------------------------------------------------------------------------------
class Clock:
    """The cases as they finish (the engines' ``on_case``), for the steady state: after the first case, the span
    between the first and the last finished case is the cases' own seconds plus the engine's per-case work."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.finished: list[tuple[float, CaseOutcome]] = []

    def __call__(self, outcome: CaseOutcome) -> None:
        self.finished.append((time.perf_counter(), outcome))

    def interval(self) -> float:
        """Mean time between two finished cases (any number of workers)."""
        return (self.finished[-1][0] - self.finished[0][0]) / (len(self.finished) - 1)

    def overhead(self) -> float:
        """One worker: mean seconds per case outside ``run_case`` (the engine's own work, Ray's calls)."""
        span = self.finished[-1][0] - self.finished[0][0]
        return (span - sum(o.seconds for _, o in self.finished[1:])) / (len(self.finished) - 1)

    def first(self) -> float:
        """Seconds from the engine's call to the first case's start (a Ray worker's process, imports, load)."""
        when, outcome = self.finished[0]
        return when - self.start - outcome.seconds


def write_cases(folder: Path, count: int, size: int) -> Path:
    image = cv2.cvtColor(_demo_image(size), cv2.COLOR_RGB2BGR)
    lines = ["case,image,report"]
    for i in range(count):
        cv2.imwrite(str(folder / f"c{i:03d}.png"), image)
        (folder / f"c{i:03d}.txt").write_text(DEMO_REPORT, encoding="utf-8")
        lines.append(f"c{i:03d},c{i:03d}.png,c{i:03d}.txt")
    (folder / "cases.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "cases.csv"


def mean_case(outcomes: list[CaseOutcome]) -> float:
    return statistics.mean(o.seconds for o in outcomes)


def host_seconds(outcomes: list[CaseOutcome]) -> float:
    """Mean seconds per case outside the models (prompts, ROI, video, files, evaluation)."""
    return statistics.mean(sum(o.timings.get(s, 0.0) for s in HOST_STAGES) for o in outcomes)


def check_ok(outcomes: list[CaseOutcome], engine: str) -> None:
    failed = [f"{o.name}: {o.error}" for o in outcomes if o.status != "ok"]
    if failed:
        raise SystemExit(f"{engine}: {len(failed)} case(s) did not finish: {failed[0]}")


# --------------------------------------------------------------------------------------------------
# FLOPs of one case at the pipeline's defaults (meta device)
# --------------------------------------------------------------------------------------------------
def case_flops(config: PipelineConfig, size: int = 512) -> dict[str, float]:
    """FLOPs (FlopCounterMode: matmuls, convolutions, attention; 2 per multiply-add) of one case: PIE's
    ``rounds`` x ceil(γ·steps) CFG-batched UNet calls, one VAE encode and one decode per round; per
    transition, ``transition_steps`` CFG-batched SEINE UNet calls on ``transition_frames`` frames, the
    encodes of its two keyframes and a grey frame, and the decodes of its in-between frames."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from bench.device import MANIFEST, infer_config
    from mvg_backend.pie.loading import SD15_CONFIG
    from mvg_backend.seine import UNet3DConditionModel

    def count(fn: Any) -> float:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            fn()
        return float(counter.get_total_flops())

    meta = torch.device("meta")
    latent, frames = size // 8, config.transition_frames
    with meta:
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(SD15_CONFIG / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(SD15_CONFIG / "vae"))
        seine = UNet3DConditionModel(infer_config(json.loads(MANIFEST.read_text())["params"]))
    text = torch.zeros(2, 77, 768, device=meta)
    unet_call = count(lambda: unet(torch.zeros(2, 4, latent, latent, device=meta), 500, text))
    encode = count(lambda: vae.encode(torch.zeros(1, 3, size, size, device=meta)))
    decode = count(lambda: vae.decode(torch.zeros(1, 4, latent, latent, device=meta)))
    seine_call = count(lambda: seine(torch.zeros(2, 9, frames, latent, latent, device=meta),
                                     torch.full((2,), 500, device=meta), text))
    transitions = config.stages  # stages keyframes after the original: one transition each
    per_round = math.ceil(config.strength * config.steps)
    return {
        "SD 1.5 UNet call (CFG batch 2)": unet_call,
        "VAE encode": encode,
        "VAE decode": decode,
        "SEINE UNet call (CFG batch 2)": seine_call,
        "PIE": config.rounds * per_round * unet_call + encode + config.rounds * decode,
        "SEINE": transitions * (config.transition_steps * seine_call + 3 * encode + (frames - 2) * decode),
    }


# --------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=6, help="cases per engine run (default 6)")
    parser.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    parser.add_argument("--transition-frames", type=int, default=6,
                        help="frames per transition in the measured cases (default 6: 16 frames a case)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers in the scaling run (default 2)")
    parser.add_argument("--sustained-tflops", type=float, default=350.0,
                        help="sustained fp16 TFLOP/s of one GPU for the projection (default 350: about 35%% of an "
                             "H100/H200's 989 dense peak)")
    args = parser.parse_args(argv)
    if args.cases < 3:
        parser.error("--cases: give 3 or more (the steady state needs two intervals)")

    import ray
    import torch

    torch.set_num_threads(1)  # the engines' rule for the tiny model: 1 thread, in this process and in the workers
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    # the measured cases: 3 stages, 3 rounds of 4 steps, optical-flow transitions
    config = PipelineConfig(domain="fundus", rounds=3, steps=4, transition="optical_flow", feather=args.size / 64,
                            transition_frames=args.transition_frames)
    spec = ModelSpec()
    with tempfile.TemporaryDirectory(prefix="mvg-batch-scale-") as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        cases = load_cases(write_cases(root / "in", args.cases, args.size))

        start = time.perf_counter()
        models = spec.load()
        load_local = time.perf_counter() - start
        local_clock = Clock()
        local = run_batch(cases, config, models, root / "local", on_case=local_clock)
        check_ok(local, "local")

        start = time.perf_counter()
        ray.init(num_cpus=max(2, args.workers), include_dashboard=False, log_to_driver=False)
        init = time.perf_counter() - start
        try:
            ray_clock = Clock()
            one = run_batch_ray(cases, config, spec, root / "ray1", RaySettings(workers=1), on_case=ray_clock,
                                log=lambda _text: None)
            check_ok(one, "ray, 1 worker")
            many_clock = Clock()
            many = run_batch_ray(cases, config, spec, root / "rayN", RaySettings(workers=args.workers),
                                 on_case=many_clock, log=lambda _text: None)
            check_ok(many, f"ray, {args.workers} workers")
        finally:
            ray.shutdown()
    frames = local[0].frames
    local_case, ray_case = mean_case(local), mean_case(one)
    local_extra, ray_extra = local_clock.overhead(), ray_clock.overhead()
    overhead = ray_extra - local_extra
    rows = [
        ("cases", f"{args.cases} x ({args.size} px, {config.stages} stages, {config.rounds} rounds x {config.steps} "
                  f"steps, {frames} frames; tiny random model, 1 torch thread)"),
        ("local: model load", f"{load_local:.2f} s"),
        ("local: seconds per case (run_case)", f"{local_case:.2f} s"),
        ("local: engine's own seconds per case", f"{local_extra * 1000:.0f} ms"),
        ("ray.init (local instance)", f"{init:.2f} s"),
        ("ray, 1 worker: call to first case start (process, imports, load)", f"{ray_clock.first():.2f} s"),
        ("ray, 1 worker: model load in the worker", f"{one[0].load_seconds:.2f} s (local {load_local:.2f} s)"),
        ("ray, 1 worker: seconds per case on the worker", f"{ray_case:.2f} s ({ray_case / local_case:.3f} x local)"),
        ("ray, 1 worker: engine's own seconds per case", f"{ray_extra * 1000:.0f} ms"),
        ("Ray's per-case overhead against the local engine",
         f"{overhead * 1000:+.0f} ms = {(local_case + ray_extra) / (local_case + local_extra):.4f} x a local case"),
        (f"ray, {args.workers} workers: interval between finished cases",
         f"{many_clock.interval():.2f} s = {ray_clock.interval() / many_clock.interval():.2f} x the throughput of "
         "1 worker"),
    ]
    host = host_seconds(local)
    evaluate = statistics.mean(o.timings.get("evaluate", 0.0) for o in local)
    rows.append(("host-side seconds per case (" + ", ".join(HOST_STAGES) + ")",
                 f"{host:.2f} s ({host / frames:.2f} s per frame; the evaluation {evaluate:.2f} s of it)"))
    width = max(len(k) for k, _ in rows)
    print("\nmeasured (one run):")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    project(args, host / frames, max(0.0, overhead), one[0].load_seconds)


def project(args: argparse.Namespace, host_per_frame: float, overhead: float, load: float) -> None:
    """Cases/hour and days for the cohort on N GPUs: one worker per GPU (a case's host-side work and GPU work
    one after the other), or two (``--gpus-per-worker 0.5``: one worker's host-side work overlaps the other's
    GPU work, given CPUs for both)."""
    defaults = PipelineConfig()
    frames = 1 + defaults.stages * (defaults.transition_frames - 1)
    host = host_per_frame * frames
    print(f"\nprojection: {COHORT:,} cases at the pipeline's defaults (512 px, PIE {defaults.rounds} rounds x "
          f"{defaults.steps} steps at γ {defaults.strength:g}; SEINE {defaults.stages} transitions x "
          f"{defaults.transition_frames} frames = {frames} frames), sustained {args.sustained_tflops:g} TFLOP/s per "
          f"GPU, host-side {host_per_frame:.2f} s per frame as measured above ({host:.1f} s per case)")
    per_call = None
    for sampler, steps in (("DDPM-250 (official)", 250), ("DDIM-50", 50)):
        flops = case_flops(defaults.replace(transition_steps=steps))
        per_call = per_call or flops
        gpu = (flops["PIE"] + flops["SEINE"]) / (args.sustained_tflops * 1e12)
        serial, overlapped = gpu + host + overhead, max(gpu, host + overhead)
        print(f"\n  SEINE {sampler}: {(flops['PIE'] + flops['SEINE']) / 1e15:.2f} PFLOP per case (PIE "
              f"{flops['PIE'] / 1e12:.0f} TFLOP, SEINE {flops['SEINE'] / 1e12:.0f} TFLOP) = {gpu:.1f} s GPU; "
              f"+ {host:.1f} s host + {overhead * 1000:.0f} ms Ray = {serial:.1f} s per case with 1 worker per GPU, "
              f"{overlapped:.1f} s with 2")
        print(f"  {'GPUs':>6}{'cases/hour':>12}{'days':>8}{'cases/hour (2 workers/GPU)':>29}{'days':>8}")
        for n in GPUS:
            cells = [(n * 3600 / t, (COHORT / n * t + load) / 86400) for t in (serial, overlapped)]
            print(f"  {n:>6}{cells[0][0]:>12.0f}{cells[0][1]:>8.2f}{cells[1][0]:>29.0f}{cells[1][1]:>8.2f}")
    print("\n  FLOPs per call (FlopCounterMode on the meta device, 512 px): " + ", ".join(
        f"{k} {per_call[k] / 1e12:.2f} TFLOP" for k in ("SD 1.5 UNet call (CFG batch 2)", "VAE encode", "VAE decode",
                                                        "SEINE UNet call (CFG batch 2)")))
    print(f"  the model load is paid once per worker, in parallel (here {load:.1f} s for the tiny model; a real "
          "checkpoint's load is not measured here)")

if __name__ == "__main__":
    main()
