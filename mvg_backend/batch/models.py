"""Where a batch's models come from: the sources (paths and settings), not the loaded models, so that every
engine loads them the same way: the local engine once in this process, the Ray engine once in each worker."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import MVGInputError
from ..pipeline import LoadedModels


@dataclass(frozen=True)
class ModelSpec:
    """The arguments of :meth:`LoadedModels.load`, plus the torch threads. ``threads`` None: torch's default,
    except 1 for the random-weight tiny model on a CPU (it gains nothing from threads, and on a busy machine
    OpenMP's waiting made it about 10x slower)."""

    checkpoint: Path | None = None
    model_dir: Path | None = None
    config: Path | None = None
    unet: Path | None = None
    seine: Path | None = None
    scheduler: str = "ddim"
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 0
    threads: int | None = None

    @property
    def is_tiny(self) -> bool:
        """No base model given: the random-weight tiny model (a plumbing check)."""
        return self.checkpoint is None and self.model_dir is None

    def resolved(self) -> ModelSpec:
        """The same spec with absolute paths (workers may run in another folder or on another machine that
        shares the filesystem); a path that does not exist is named here, before any worker starts."""
        flags = {"checkpoint": "--checkpoint", "model_dir": "--model-dir", "config": "--config", "unet": "--unet",
                 "seine": "--seine"}
        paths = {}
        for name, flag in flags.items():
            value = getattr(self, name)
            if value is None:
                continue
            path = Path(value).expanduser().resolve()
            if not path.exists():
                raise MVGInputError(f"{flag} {str(value)!r} does not exist; give the model file or folder (on a "
                                    "cluster: a path every worker can read).")
            paths[name] = path
        return replace(self, **paths)

    def load(self) -> LoadedModels:
        """Load the models (once per process) and set torch's threads."""
        import torch

        models = LoadedModels.load(checkpoint=self.checkpoint, model_dir=self.model_dir, config=self.config,
                                   unet=self.unet, seine=self.seine, scheduler=self.scheduler, device=self.device,
                                   dtype=self.dtype, seed=self.seed)
        threads = self.threads
        if threads is None and self.is_tiny and self.device == "cpu":
            threads = 1
        if threads:
            torch.set_num_threads(threads)
        return models
