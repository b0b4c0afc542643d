"""Timing helpers for the benchmarks: wall and CPU clocks together, per-module forward time from hooks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch


class ForwardTimer:
    """Seconds and calls spent in the forward of named modules, through forward (pre-)hooks."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.seconds = dict.fromkeys(modules, 0.0)
        self.calls = dict.fromkeys(modules, 0)
        self._started = dict.fromkeys(modules, 0.0)
        self._handles = []
        for name, module in modules.items():
            self._handles.append(module.register_forward_pre_hook(partial(self._start, name)))
            self._handles.append(module.register_forward_hook(partial(self._stop, name)))

    @classmethod
    def for_backend(cls, backend: Any) -> ForwardTimer:
        """UNet, VAE encoder, VAE decoder and text encoder of a ``DiffusersBackend``."""
        return cls({"unet": backend.unet, "vae_encode": backend.vae.encoder, "vae_decode": backend.vae.decoder,
                    "text": backend.text_encoder})

    def _start(self, name: str, _module: torch.nn.Module, _args: Any) -> None:
        self._started[name] = time.perf_counter()

    def _stop(self, name: str, _module: torch.nn.Module, _args: Any, _output: Any) -> None:
        self.seconds[name] += time.perf_counter() - self._started[name]
        self.calls[name] += 1

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@dataclass(frozen=True)
class Span:
    """Wall-clock and process CPU seconds (or, from :func:`now`, the two clocks' readings)."""

    wall: float
    cpu: float

    def __add__(self, other: Span) -> Span:
        return Span(self.wall + other.wall, self.cpu + other.cpu)


def now() -> Span:
    return Span(time.perf_counter(), time.process_time())


def since(start: Span) -> Span:
    end = now()
    return Span(end.wall - start.wall, end.cpu - start.cpu)


@dataclass(frozen=True)
class Measure:
    """One timed run: its time and what the hooked modules took of its wall time."""

    total: Span
    seconds: dict[str, float]
    calls: dict[str, int]

    @property
    def other(self) -> float:
        return self.total.wall - sum(self.seconds.values())


def measure(timer: ForwardTimer, run: Callable[[], object]) -> Measure:
    timer.reset()
    start = now()
    run()
    total = since(start)
    return Measure(total, dict(timer.seconds), dict(timer.calls))
