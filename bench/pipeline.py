"""The whole pipeline on one case: each stage's share of the case time, and the model load against the case
time (what a batch amortises by loading the models once).

    PYTHONPATH=. python bench/pipeline.py                       # random tiny model, the demo's case, 256 px
    PYTHONPATH=. python bench/pipeline.py --model sd15 --steps 10 --rounds 3   # SD 1.5 architecture, random
    PYTHONPATH=. python bench/pipeline.py --checkpoint sd15.safetensors [--seine seine.safetensors]

It runs ``--cases`` identical cases through :func:`mvg_backend.case.run_case` (the function ``run`` and
``batch`` use) after loading the models once, and prints the mean time of each stage (prompts, ROI, PIE,
transitions, video encode, file writing) as a share of the case time, then the load time, the per-case time,
and the per-case cost of a batch of N cases, ``case + load/N``, against a one-case run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from mvg_backend.case import Case, run_case
from mvg_backend.cli_pipeline import DEMO_DEFAULTS, DEMO_REPORT, _demo_image
from mvg_backend.pipeline import LoadedModels, PipelineConfig, load_seine_backend

STAGES = ("prompts", "roi", "pie", "transitions", "video", "write")


def load_models(args: argparse.Namespace) -> LoadedModels:
    if args.model == "sd15" and args.checkpoint is None:
        from bench.pie import build_sd15  # the SD 1.5 architecture with random weights, built offline

        start = time.perf_counter()
        backend = build_sd15()
        seine = load_seine_backend(args.seine, backend) if args.seine else None
        return LoadedModels(backend, seine, "random SD 1.5 architecture (bench)", [], time.perf_counter() - start)
    return LoadedModels.load(checkpoint=args.checkpoint, seine=args.seine)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "sd15"), default="tiny",
                        help="without --checkpoint: the demo's random tiny model, or the SD 1.5 architecture (random)")
    parser.add_argument("--checkpoint", type=Path, help="a real SD 1.x .safetensors (overrides --model)")
    parser.add_argument("--seine", type=Path, help="a SEINE checkpoint (else the optical-flow fallback)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cases", type=int, default=3, help="cases run after one model load (default 3)")
    parser.add_argument("--rounds", type=int, default=DEMO_DEFAULTS["rounds"])
    parser.add_argument("--steps", type=int, default=DEMO_DEFAULTS["steps"])
    parser.add_argument("--transition-steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; torch threads "
          f"{torch.get_num_threads()}")
    models = load_models(args)
    config = PipelineConfig(**{**DEMO_DEFAULTS, "rounds": args.rounds, "steps": args.steps,
                               "transition_steps": args.transition_steps, "transition_sampler": "ddim"})
    image = _demo_image(args.size)
    per_case, stages = [], {s: [] for s in STAGES}
    with tempfile.TemporaryDirectory(prefix="mvg-bench-") as tmp:
        for i in range(args.cases):
            outcome = run_case(Case(image=image, report_text=DEMO_REPORT, name=f"c{i}"), config, models,
                               Path(tmp) / f"c{i}")
            per_case.append(outcome.seconds)
            for s in STAGES:
                stages[s].append(outcome.timings.get(s, 0.0))
    case = statistics.mean(per_case)
    staged = {s: statistics.mean(v) for s, v in stages.items()}
    other = max(0.0, case - sum(staged.values()))
    model = ("checkpoint " + args.checkpoint.name) if args.checkpoint else args.model
    print(f"\none case ({args.size} px, {config.stages} stages, {args.rounds} rounds x {args.steps} steps, "
          f"transition {'SEINE' if models.seine else 'optical flow'} x {config.transition_frames} frames; model {model}),"
          f" mean of {args.cases}:")
    print(f"{'stage':<12}{'seconds':>9}{'share':>8}")
    for s, v in [*staged.items(), ("other", other)]:
        print(f"{s:<12}{v:>9.2f}{100 * v / case:>7.1f}%")
    print(f"{'case':<12}{case:>9.2f}{100.0:>7.1f}%   (min {min(per_case):.2f}, max {max(per_case):.2f})")
    load = models.load_seconds
    print(f"\nmodel load {load:.2f} s = {load / case:.2f} x one case")
    print(f"{'cases':>6}{'per case (s)':>14}{'load share':>12}{'vs 1-case run':>15}")
    for n in (1, 10, 100):
        each = case + load / n
        print(f"{n:>6}{each:>14.2f}{100 * (load / n) / each:>11.1f}%{each / (case + load):>15.2f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
