"""How long the shipped templates' PIE takes on this CPU inside ComfyUI: seconds per UNet call, then the estimate.

    $COMFYUI_PYTHON bench/comfy_unet.py [--threads 1] [--repeats 2]   (from the repository root)

Runs in ComfyUI's own Python, with ComfyUI's UNet code (``comfy.ldm``, its CPU attention) as the templates do
under ``--cpu``. Two UNets, each called on one CFG batch (2 × 4 × 64 × 64 latents = 512 px, 77 × 768 context):

- ``tiny``: the tests' checkpoint (``tests/fixtures/tiny_checkpoints.py``: SD 1.5's widths, one level), loaded
  with ComfyUI's checkpoint loader;
- ``sd15``: the SD 1.5 architecture (ComfyUI's own SD15 UNet config) with random weights, built offline.

It prints wall and process-CPU seconds per call (minimum over ``--repeats`` after one warm-up call) and the PIE
time of a template as shipped: 3 stages × 10 rounds × ceil(0.5 × 50) = 750 calls (the VAE passes are not
counted). On a machine shared with other jobs the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_CALLS = 3 * 10 * math.ceil(0.5 * 50)  # stages × rounds × ceil(strength × steps)
SD15_UNET = {  # comfy/model_detection.py's SD15 entry (ComfyUI 0.3.64)
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
    "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "channel_mult": [1, 2, 4, 4],
    "transformer_depth_middle": 1, "use_linear_in_transformer": False, "context_dim": 768, "num_heads": 8,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "use_temporal_attention": False,
    "use_temporal_resblock": False}


def seconds_per_call(unet, repeats: int) -> tuple[float, float]:
    """Minimum (wall, CPU) seconds of one CFG-batched call after a warm-up call."""
    import torch

    x, t, context = torch.randn(2, 4, 64, 64), torch.tensor([500.0, 500.0]), torch.randn(2, 77, 768)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            wall, cpu = time.perf_counter(), time.process_time()
            unet(x, t, context=context)
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(w for w, _ in times[1:]), min(c for _, c in times[1:])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the test server uses 1)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    comfyui = Path(os.environ.get("COMFYUI_DIR", ""))
    if not (comfyui / "comfy").is_dir():
        raise SystemExit("set COMFYUI_DIR to a ComfyUI checkout and run this with its Python ($COMFYUI_PYTHON)")
    sys.path[:0] = [str(comfyui), str(ROOT / "tests")]  # ComfyUI has a `tests` package of its own
    import torch

    torch.set_num_threads(args.threads)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # as `main.py --cpu`; before comfy.model_management is imported
    import comfy.model_detection
    import comfy.ops
    import comfy.sd
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    from fixtures.tiny_checkpoints import write_tiny_sd15_comfy_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.safetensors"
        write_tiny_sd15_comfy_checkpoint(path, seed=0)
        tiny = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clip=False)[0]
        tiny = tiny.model.diffusion_model.float()
    sd15 = UNetModel(**comfy.model_detection.convert_config(dict(SD15_UNET, dtype=torch.float32)),
                     operations=comfy.ops.disable_weight_init)
    with torch.no_grad():
        for p in sd15.parameters():
            p.normal_(0.0, 0.02)
    print(f"ComfyUI UNet, CFG batch at 512 px, {args.threads} thread(s); template PIE = {TEMPLATE_CALLS} calls")
    print(f"{'model':6} {'params':>8} {'wall s/call':>12} {'CPU s/call':>11} {'PIE wall h':>11} {'PIE CPU h':>10}")
    for name, unet in (("tiny", tiny), ("sd15", sd15)):
        wall, cpu = seconds_per_call(unet, args.repeats)
        params = sum(p.numel() for p in unet.parameters()) / 1e6
        print(f"{name:6} {params:7.0f}M {wall:12.1f} {cpu:11.1f} {wall * TEMPLATE_CALLS / 3600:11.1f} "
              f"{cpu * TEMPLATE_CALLS / 3600:10.1f}", flush=True)


if __name__ == "__main__":
    main()
