"""Headless CLI: ``python -m mvg_backend demo|run|batch|pie|evaluate|convert ...``. Run with ``-h`` for the options."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from .io import as_mask
from .io.files import OutputDir, read_image, read_text, run_command_line, to_uint8, write_frame_folders, write_png

DTYPES = ("fp32", "fp16", "bf16")
SCHEDULER_NAMES = ("ddim", "pndm", "ddpm", "euler", "euler_ancestral", "dpmpp_2m")  # = pie.schedulers.SCHEDULERS


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (default: a random-weight tiny model, a plumbing check only)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="original-layout SD 1.x .safetensors single file")
    src.add_argument("--model-dir", type=Path, help="diffusers-format SD 1.x folder")
    g.add_argument("--config", type=Path, help="diffusers config folder for --checkpoint (default: shipped SD 1.x)")
    g.add_argument("--unet", type=Path, help="fine-tuned UNet replacing the base one (folder or .safetensors)")
    g.add_argument("--scheduler", default="ddim", choices=SCHEDULER_NAMES,
                   help="ddim (default, deterministic), pndm (the SD 1.4 scheduler the reference ran), ddpm, euler, "
                        "euler_ancestral, dpmpp_2m")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    g.add_argument("--dtype", default="fp32", choices=DTYPES)
    g.add_argument("--compile", action="store_true",
                   help="run the UNet through torch.compile (compiles on the first round; for long GPU runs)")


def _add_pie_args(p: argparse.ArgumentParser, *, rounds: int, steps: int) -> None:
    g = p.add_argument_group("PIE (reference defaults: 10 rounds, γ 0.5, 50 steps, cfg 7.5, β1 0.01, β2 0.75)")
    g.add_argument("--rounds", type=int, default=rounds, help="total rounds over all stages")
    g.add_argument("--strength", type=float, default=0.5, help="γ in (0, 1]")
    g.add_argument("--steps", type=int, default=steps, help="scheduler steps; a round runs ceil(γ·steps)")
    g.add_argument("--cfg", type=float, default=7.5)
    g.add_argument("--beta1", type=float, default=0.01)
    g.add_argument("--beta2", type=float, default=0.75)
    g.add_argument("--seed", type=int, default=0, help="round k uses seed + k - 1")
    g.add_argument("--chain", choices=("latent", "pixel"), default="latent")
    g.add_argument("--posterior", choices=("mode", "sample"), default="mode",
                   help="VAE latents: the posterior mode (default) or a seeded posterior sample (as the reference)")
    g.add_argument("--no-original", action="store_true", help="do not put the original first")
    p.add_argument("--out", type=Path, required=True, help="output folder (must be new or empty)")
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mvg_backend", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from .cli_pipeline import add_pipeline_commands

    add_pipeline_commands(sub, _add_model_args)  # demo, run, batch: the whole pipeline (cli_pipeline.py)
    pie = sub.add_parser("pie", help="progressive editing of your image")
    pie.add_argument("--image", type=Path, required=True)
    pie.add_argument("--mask", type=Path, help="mask image, white = editable (default: whole image)")
    prompts = pie.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompts", type=Path, help="text file, one stage per line (MVG_PromptList syntax)")
    prompts.add_argument("--prompt", action="append", help="a stage prompt (repeat for several stages)")
    pie.add_argument("--negative", default="", help="negative prompt for every stage")
    _add_model_args(pie)
    _add_pie_args(pie, rounds=10, steps=50)
    from .metrics.cli import add_evaluate_parser

    add_evaluate_parser(sub)
    convert = sub.add_parser("convert", help="convert a trusted pickled checkpoint (.ckpt/.pt/.bin) to .safetensors "
                                             "once; the loaders never unpickle anything but tensors")
    convert.add_argument("src", type=Path, help="the pickled file: an SD 1.x .ckpt, or a diffusers/transformers .bin")
    convert.add_argument("dst", type=Path, help="the .safetensors to write (for a folder's .bin: the same folder's "
                                                "diffusion_pytorch_model.safetensors / model.safetensors)")
    convert.add_argument("--trust-pickle", action="store_true",
                         help="required: unpickling can run code stored in the file; only for files you trust")
    return parser


def _load_backend(args: argparse.Namespace) -> tuple[Any, str]:
    from .pipeline import load_pie_backend

    backend, note = load_pie_backend(checkpoint=args.checkpoint, model_dir=args.model_dir, config=args.config,
                                     unet=args.unet, scheduler=args.scheduler, device=args.device, dtype=args.dtype,
                                     seed=args.seed)
    backend.compile = bool(getattr(args, "compile", False))  # --compile: torch.compile the UNet
    return backend, note


def _check_args(args: argparse.Namespace) -> None:
    """What ``pie`` can check before any work: the device and the PIE settings."""
    from .pie.engine import check_settings
    from .pie.loading import check_device

    check_device(args.device, "--device")
    check_settings(args.rounds, args.strength, args.steps, args.cfg, args.beta1, args.beta2, args.chain,
                   args.posterior, args.seed)


def contact_sheet(frames: np.ndarray, labels: Sequence[str], columns: int = 6) -> np.ndarray:
    """Frames (float 0..1) in an 8-bit grid, each labelled underneath."""
    n, h, w, _ = frames.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    band = max(14, h // 12)
    sheet = np.full((rows * (h + band), columns * w, 3), 255, np.uint8)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        r, c = divmod(i, columns)
        y, x = r * (h + band), c * w
        sheet[y:y + h, x:x + w] = to_uint8(frame)
        cv2.putText(sheet, label, (x + 3, y + h + band - 4), cv2.FONT_HERSHEY_SIMPLEX, band / 30, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return sheet


def _write_outputs(out: Path, result: Any, mask: np.ndarray, provenance: dict) -> None:
    write_frame_folders(out, result.frames, result.keyframes)
    labels = ["original" if r.stage < 0 else f"s{r.stage + 1} r{r.round}" for r in result.records]
    cv2.imwrite(str(out / "contact_sheet.png"), cv2.cvtColor(contact_sheet(result.frames, labels), cv2.COLOR_RGB2BGR))
    write_png(out / "mask.png", mask)
    (out / "summary.txt").write_text(result.summary + "\n", encoding="utf-8")
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from .pie import progressive_edit
    from .prompts import parse_prompt_lines
    from .provenance import pie_provenance

    if args.command in ("demo", "run", "batch"):
        from .cli_pipeline import run_command

        return run_command(args)
    _check_args(args)
    with OutputDir(args.out, overwrite=args.overwrite) as out:
        image = read_image(args.image)
        mask = None if args.mask is None else read_image(args.mask)
        inputs = {"image": args.image, **({"mask": args.mask} if args.mask else {})}
        if args.prompts:
            plan = parse_prompt_lines(read_text(args.prompts, "--prompts"), args.negative)
        else:
            plan = parse_prompt_lines("\n".join(args.prompt), args.negative)
        backend, model_note = _load_backend(args)
        if model_note:
            print(f"note: {model_note}", file=sys.stderr)

        def progress(done: int, steps: int) -> None:
            print(f"\rPIE step {done}/{steps}", end="", file=sys.stderr, flush=True)

        result = progressive_edit(
            backend, image, mask, plan, rounds=args.rounds, strength=args.strength, steps=args.steps,
            guidance=args.cfg, beta1=args.beta1, beta2=args.beta2, seed=args.seed, chain=args.chain,
            include_original=not args.no_original, posterior=args.posterior, progress=progress,
        )
        print(file=sys.stderr)
        if model_note:
            result.notes.append(model_note)
        provenance = pie_provenance(result, model_files=backend.model_files(), inputs=inputs, model_note=model_note)
        _write_outputs(out, result, as_mask(mask, image.shape[:2])[0], provenance)
    print(result.summary)
    print(f"wrote {len(result.frames)} frames, {len(result.keyframes)} keyframes to {args.out}")
    return 0


def convert(args: argparse.Namespace) -> int:
    from .io.pickles import convert_to_safetensors

    count, dropped = convert_to_safetensors(args.src, args.dst, trust_pickle=args.trust_pickle)
    left_out = f"; left out {len(dropped)} non-tensor entries ({', '.join(dropped[:6])})" if dropped else ""
    print(f"wrote {count} tensors to {args.dst}{left_out}")
    return 0


def _command(args: argparse.Namespace) -> int:
    if args.command == "evaluate":
        from .metrics.cli import run_evaluate

        return run_evaluate(args)
    return convert(args) if args.command == "convert" else run(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command_line(lambda: _command(args))
