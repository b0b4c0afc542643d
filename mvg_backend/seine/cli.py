"""``python -m mvg_backend.seine convert|transition``: checkpoint conversion and headless transitions."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import MVGInputError
from ..io.files import OutputDir, read_image, run_command_line, write_png
from .diffusion import SAMPLERS
from .transition import (
    DEFAULT_CFG,
    DEFAULT_FRAMES,
    DEFAULT_PROMPT,
    DEFAULT_RESOLUTION,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    RESOLUTIONS,
    TRANSITION_METHODS,
)

DTYPES = ("fp32", "fp16", "bf16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mvg_backend.seine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert a trusted pickled SEINE checkpoint (seine.pt) to .safetensors once; "
                             "the architecture (GroupNorm groups and eps: from the .pt's config entry, a <stem>.json "
                             "beside it, or the official values) goes into the header")
    convert.add_argument("src", type=Path, help="the .pt/.pth/.ckpt file (e.g. the official seine.pt)")
    convert.add_argument("dst", type=Path, help="the .safetensors file to write")
    convert.add_argument("--trust-pickle", action="store_true",
                         help="required: unpickling can run code stored in the file; only for files you trust")

    run = sub.add_parser("transition", help="frames between keyframes (SEINE, or a fallback interpolator)")
    run.add_argument("--keyframes", type=Path, nargs="+", required=True, help="two or more images, in order")
    run.add_argument("--out", type=Path, required=True, help="output folder (must be new or empty)")
    run.add_argument("--overwrite", action="store_true", help="allow a non-empty --out")
    run.add_argument("--method", choices=TRANSITION_METHODS, default="seine")
    run.add_argument("--seine", type=Path, help="SEINE UNet checkpoint (.safetensors, or a weights-only .pt)")
    run.add_argument("--sd", type=Path, help="SD 1.4 for the VAE and CLIP: a diffusers folder or an SD 1.x .safetensors")
    run.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per transition, keyframes included")
    run.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    run.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    run.add_argument("--sampler", choices=SAMPLERS, default=DEFAULT_SAMPLER)
    run.add_argument("--seed", type=int, default=0, help="transition j uses seed + j - 1")
    run.add_argument("--prompt", default=DEFAULT_PROMPT,
                     help="SEINE's text condition; the default is the official script's effective prompt (its "
                          "'smooth transition' + 'smooth transition.', joined without a space)")
    run.add_argument("--resolution", choices=RESOLUTIONS, default=DEFAULT_RESOLUTION,
                     help="where SEINE works: 512x512 like the official script (frames resized back to the keyframes' "
                          "size), or the keyframes' native size")
    run.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    run.add_argument("--dtype", choices=DTYPES, default="fp32")
    run.add_argument("--compile", action="store_true",
                     help="run SEINE's UNet through torch.compile (compiles on the first step; for GPU runs)")
    return parser


def _transition(args: argparse.Namespace) -> int:
    import torch

    from ..pie.loading import check_device
    from .backend import DiffusersSEINEBackend
    from .transition import VAE_CHUNK, check_settings, transition_frames

    # everything that can be checked is checked before the (large) model is loaded
    check_device(args.device, "--device")
    check_settings(args.method, args.frames, args.steps, args.cfg, args.sampler, args.seed, VAE_CHUNK,
                   args.resolution)
    output = OutputDir(args.out, overwrite=args.overwrite)  # checks --out now; writes only at the end
    keyframes = [read_image(p) for p in args.keyframes]
    backend = None
    if args.method == "seine" and args.seine is not None:
        if args.sd is None:
            raise MVGInputError("--seine needs --sd: SEINE runs on SD 1.4's VAE and CLIP text encoder.")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
        backend = DiffusersSEINEBackend.from_files(args.seine, args.sd, device=args.device, dtype=dtype)
    with output as out:
        def progress(done: int, total: int) -> None:
            print(f"\rstep {done}/{total}", end="", file=sys.stderr, flush=True)

        result = transition_frames(keyframes, method=args.method, backend=backend, frames=args.frames,
                                   steps=args.steps, cfg=args.cfg, sampler=args.sampler, seed=args.seed,
                                   prompt=args.prompt, resolution=args.resolution, progress=progress,
                                   compile=args.compile)
        print(file=sys.stderr)
        (out / "frames").mkdir()
        for i, frame in enumerate(result.frames):
            write_png(out / "frames" / f"frame_{i:03d}.png", frame)
        (out / "summary.txt").write_text(result.summary + "\n", encoding="utf-8")
    print(result.summary)
    print(f"wrote {len(result.frames)} frames to {args.out}")
    return 0


def _command(args: argparse.Namespace) -> int:
    if args.command == "convert":
        from .loading import convert_checkpoint

        resolved = convert_checkpoint(args.src, args.dst, trust_pickle=args.trust_pickle)
        print(f"wrote {args.dst}, with this architecture in its metadata:\n{resolved.summary}")
        return 0
    return _transition(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command_line(lambda: _command(args))
