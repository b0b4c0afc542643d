"""One progress callback for every node: moves ComfyUI's progress bar and honours Cancel."""

from __future__ import annotations

from typing import Callable

import comfy.model_management
import comfy.utils


def comfy_progress(total: int = 1) -> Callable[[int, int], None]:
    """``progress(done, total)`` for the engine: raises ComfyUI's interrupt when the user pressed Cancel."""
    pbar = comfy.utils.ProgressBar(max(1, int(total)))

    def progress(done: int, total: int) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        pbar.update_absolute(done, total)

    return progress
