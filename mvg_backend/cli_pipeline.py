"""The whole-pipeline commands of ``python -m mvg_backend``: ``demo``, ``run`` and ``batch``.

Every :class:`~mvg_backend.pipeline.PipelineConfig` field is a flag (``rounds`` -> ``--rounds``,
``transition_steps`` -> ``--transition-steps``; booleans also as ``--no-...``). Only the flags given change the
command's defaults (the nodes' defaults for ``run``/``batch``, quick settings for ``demo``); in a batch,
a CSV cell overrides them for its row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from .batch.models import ModelSpec
from .errors import MVGInputError
from .pipeline import NO_TRANSITION, LoadedModels, PipelineConfig, config_fields

DEMO_REPORT = ("Mild non-proliferative diabetic retinopathy with scattered microaneurysms at the posterior pole. "
               "No macular edema.")
DEMO_DEFAULTS = dict(domain="fundus", rounds=6, steps=20, feather=4.0)
GROUP_TITLES = {
    "prompts": "ReportToPrompts", "roi": "ROIMask", "pie": "ProgressiveEdit (PIE; reference defaults)",
    "transition": "SEINETransition (official defaults; without --seine: optical-flow fallback)",
    "output": "video and DICOM",
}
_TYPES = {"int": int, "float": float, "str": str}


def add_config_args(p: argparse.ArgumentParser, *, skip: tuple[str, ...] = (), base: PipelineConfig | None = None,
                    rename: dict[str, str] | None = None) -> None:
    """One flag per config field, default None (= keep the command's default, shown in the help); ``rename``
    gives a field another flag (``batch``: the prompts' ``engine`` is ``--prompts-engine``)."""
    base = base or PipelineConfig()
    groups: dict[str, Any] = {}
    for f in config_fields():
        if f.name in skip:
            continue
        group_name = f.metadata.get("group", "")
        if group_name not in groups:
            groups[group_name] = p.add_argument_group(GROUP_TITLES.get(group_name, group_name))
        g = groups[group_name]
        flag = (rename or {}).get(f.name) or "--" + f.name.replace("_", "-")
        default = getattr(base, f.name)
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})".replace("%", "%%")
        if f.type in ("bool", bool):
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            g.add_argument(flag, dest=f.name, type=_TYPES.get(f.type, str), default=None,
                           choices=f.metadata.get("choices"), help=help_text)


def config_from_args(args: argparse.Namespace, base: PipelineConfig) -> PipelineConfig:
    given = {f.name: getattr(args, f.name) for f in config_fields() if getattr(args, f.name, None) is not None}
    return base.replace(**given).check()


def add_pipeline_commands(sub: Any, add_model_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``demo``, ``run`` and ``batch`` to the CLI's sub-parsers."""
    demo = sub.add_parser("demo", help="the whole pipeline on shipped inputs (a sample fundus report and the CC0 "
                                       "scikit-image fundus photo) to video.mp4")
    demo.add_argument("--size", type=int, default=256, help="working size in pixels (square)")
    _add_common(demo, add_model_args)
    add_config_args(demo, skip=("domain", "dicom_copy_patient"), base=PipelineConfig(**{**DEMO_DEFAULTS, "feather": "size/64"}))

    run = sub.add_parser("run", help="one case: --image and --report to video.mp4, frames, keyframes, mask, plan and "
                                     "provenance")
    run.add_argument("--image", type=Path, required=True, help="PNG, JPEG, 16-bit PNG, TIFF or DICOM")
    run.add_argument("--report", required=True,
                     help="the report as a text file, or - to read it from standard input (never the text itself: "
                          "shell history and process lists would keep it)")
    run.add_argument("--mask", type=Path, help="your ROI mask image (white = may change), joined by --combine")
    run.add_argument("--keep-mask", type=Path, help="a mask image of what must stay untouched (tubes, lines, a "
                                                   "ruler), even inside the ROI")
    run.add_argument("--domain", required=True, choices=PipelineConfig.__dataclass_fields__["domain"].metadata["choices"],
                     help="imaging domain")
    _add_common(run, add_model_args)
    add_config_args(run, skip=("domain",))

    batch = sub.add_parser("batch", help="many cases from a CSV or a folder; resumable; summary.csv at the end")
    batch.add_argument("cases", type=Path, help="a CSV (image, report, optional mask and case, any parameter as a "
                                                "column) or a folder of cases (one sub-folder each: image.* + "
                                                "report.txt [+ mask.*, params.json])")
    batch.add_argument("--debug", action="store_true", help="put the traceback of failing cases in the summary")
    batch.add_argument("--engine", dest="batch_engine", default="local", metavar="{local,ray}",
                       help="where the cases run. local: one after another in this process (default); ray: on Ray "
                            "workers, each loading the models once (pip install 'comfyui-mvg[ray]'). The report "
                            "engine is --prompts-engine here")
    ray = batch.add_argument_group("Ray engine (--engine ray)")
    for flag, kind, text in RAY_FLAGS:
        ray.add_argument(flag, type=kind, default=None, help=text)
    _add_common(batch, add_model_args, overwrite=False)
    add_config_args(batch, rename={"engine": "--prompts-engine"})


RAY_FLAGS = (
    ("--address", str, "the Ray cluster: auto (the one this machine belongs to) or ray://HOST:10001 (default: start "
                       "a local Ray instance)"),
    ("--workers", int, "workers (default: as many as the cluster's resources hold, at most one per case)"),
    ("--cpus-per-worker", float, "CPUs per worker, also its torch threads (default 1)"),
    ("--gpus-per-worker", float, "GPUs per worker; fractions share a GPU, e.g. 0.5 (default: 1 with a CUDA "
                                 "--device, else 0)"),
    ("--worker-retries", int, "runs of a case again after its worker process died (default 2)"),
)


def _add_common(p: argparse.ArgumentParser, add_model_args: Callable, *, overwrite: bool = True) -> None:
    add_model_args(p)
    p.add_argument("--seine", type=Path, help="SEINE checkpoint (.safetensors, or a weights-only .pt); runs on the "
                                              "SD model's VAE and CLIP")
    p.add_argument("--dicom-out", nargs="?", const="sequence.dcm", default=None, metavar="NAME",
                   help="also write the frames as one multi-frame DICOM Secondary Capture (cine) named NAME in the "
                        "output folder (default name: sequence.dcm)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder" + (" (must be new or empty)" if overwrite else "; finished cases are skipped"))
    if overwrite:
        p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")


class StageBars:
    """tqdm bars, one per stage (PIE model steps, transition steps), on standard error."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None or bar.total != total:
            self.close()  # one bar at a time: the previous stage is done
            label = {"pie": "PIE rounds (model steps)", "transitions": "transitions"}.get(stage, stage)
            bar = self.bars[stage] = tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=True,
                                          dynamic_ncols=True)
        bar.update(max(0, done - bar.n))

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def _model_spec(args: argparse.Namespace, config: PipelineConfig) -> ModelSpec:
    return ModelSpec(checkpoint=args.checkpoint, model_dir=args.model_dir, config=args.config, unet=args.unet,
                     seine=args.seine, scheduler=args.scheduler, device=args.device, dtype=args.dtype, seed=config.seed)


def _models(args: argparse.Namespace, config: PipelineConfig) -> LoadedModels:
    models = _model_spec(args, config).load()
    if models.note:
        print(f"note: {models.note}", file=sys.stderr)
    _seine_note(args, config)
    return models


def _seine_note(args: argparse.Namespace, config: PipelineConfig) -> None:
    if args.seine is None and config.transition == "seine":
        print("note: no --seine checkpoint: the transitions are optical-flow morphs (pass --seine FILE for SEINE).",
              file=sys.stderr)


def run_command(args: argparse.Namespace) -> int:
    """``demo``, ``run`` or ``batch``; errors propagate as MVGInputError/MVGRuntimeError (the CLI prints them)."""
    from .case import Case, check_output_args, run_case
    from .pie.loading import check_device

    check_device(args.device, "--device")  # before anything is read, loaded or written
    if args.command == "batch":
        return _batch(args)
    if args.command == "demo":
        base = PipelineConfig(**{**DEMO_DEFAULTS, "feather": args.size / 64})  # a soft ROI edge at any size
        config = config_from_args(args, base)
        image = _demo_image(args.size)
        case = Case(image=image, report_text=DEMO_REPORT, name="demo")
    else:
        config = config_from_args(args, PipelineConfig(domain=args.domain))
        case = Case(image=args.image, report=args.report, mask=args.mask, keep_mask=args.keep_mask,
                    name=Path(args.out).name)
    _check_out(args.out, args.overwrite)  # before the models load
    check_output_args(config, args.dicom_out, case.image)
    models = _models(args, config)
    bars = StageBars(enabled=not args.no_progress)
    try:
        outcome = run_case(case, config, models, args.out, overwrite=args.overwrite, dicom_out=args.dicom_out,
                           progress=bars)
    finally:
        bars.close()
    shares = ", ".join(f"{k} {v:.1f}s" for k, v in outcome.timings.items())
    print(f"wrote {outcome.frames} frames (video.mp4 at {config.fps:g} fps) to {args.out} in {outcome.seconds:.1f}s "
          f"({shares}; model load {models.load_seconds:.1f}s)")
    if outcome.gates:  # issue 11: the evaluation gates (CLIP-I and the classifier need `evaluate --clip/--classifier`)
        failed = f" ({outcome.failed_gates})" if outcome.failed_gates else ""
        print(f"evaluation gates: {outcome.gates.upper()}{failed}; metrics.json and metrics.png in {args.out}")
    if args.command == "demo" and models.note:
        print("The demo ran on a random-weight tiny model, so the edited region is noise. For real edits pass an SD "
              "1.x checkpoint: python -m mvg_backend demo --out out/demo --checkpoint sd15.safetensors "
              "(and --seine seine.safetensors for SEINE transitions).")
    return 0


def _check_out(out: Path, overwrite: bool) -> None:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MVGInputError(f"--out {str(out)!r} is a file; give a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise MVGInputError(f"--out {str(out)!r} is not empty; choose a new folder or pass --overwrite (only the "
                            "files this run writes are replaced).")


def _demo_image(size: int):
    import cv2
    from skimage import data

    if not 32 <= size <= 2048:
        raise MVGInputError(f"--size {size}: use 32..2048 pixels (the default is 256).")
    return cv2.resize(data.retina(), (size, size), interpolation=cv2.INTER_AREA)


def _batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .batch import format_summary, load_cases, run_batch
    from .case import check_output_args

    config = config_from_args(args, PipelineConfig())
    check_output_args(config.replace(dicom_copy_patient=False), args.dicom_out, None)
    if args.batch_engine in PipelineConfig.__dataclass_fields__["engine"].metadata["choices"]:
        raise MVGInputError(f"--engine {args.batch_engine}: in batch, --engine is local or ray (where the cases run); "
                            f"give the report engine as --prompts-engine {args.batch_engine}.")
    if args.batch_engine not in ("local", "ray"):
        raise MVGInputError(f"--engine {args.batch_engine!r}: use local (default) or ray.")
    ray_given = [flag for flag, _, _ in RAY_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    if args.batch_engine == "local" and ray_given:
        raise MVGInputError(f"{ray_given[0]} only applies to the Ray engine: add --engine ray, or leave it off.")
    cases = load_cases(args.cases)
    bar = tqdm(total=len(cases), desc="cases", unit="case", file=sys.stderr, disable=args.no_progress)

    def on_case(outcome) -> None:
        bar.set_postfix_str(f"{outcome.name}: {outcome.status}")
        bar.update(1)

    try:
        if args.batch_engine == "ray":
            from .batch.ray_engine import RaySettings, run_batch_ray

            settings = RaySettings(address=args.address, workers=args.workers,
                                   cpus_per_worker=1.0 if args.cpus_per_worker is None else args.cpus_per_worker,
                                   gpus_per_worker=args.gpus_per_worker,
                                   worker_retries=2 if args.worker_retries is None else args.worker_retries)
            _seine_note(args, config)
            outcomes = run_batch_ray(cases, config, _model_spec(args, config), args.out, settings,
                                     dicom_out=args.dicom_out, on_case=on_case, debug=args.debug)
        else:
            outcomes = run_batch(cases, config, _models(args, config), args.out, dicom_out=args.dicom_out,
                                 on_case=on_case, debug=args.debug)
    finally:
        bar.close()
    print(format_summary(outcomes))
    print(f"summary written to {Path(args.out) / 'summary.csv'}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


__all__ = ["DEMO_REPORT", "NO_TRANSITION", "add_pipeline_commands", "config_from_args", "run_command"]
