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


class DeviceCopyCounter:
    """Counts, while active, the tensor copies that change device (host->device and back) and the host syncs
    (``.item()``, ``bool(tensor)`` of a tensor not on the CPU: ``aten._local_scalar_dense``), from the first forward of ``loop_start`` on
    (its forward pre-hook marks where a sampling loop begins; without one, everything counts).

    It sees what the dispatcher sees, on any device: on a GPU the copies a profiler shows as Memcpy HtoD/DtoH;
    with the models on the ``meta`` device, a CPU-only machine sees every tensor made on the CPU and moved to
    the model's device.
    """

    def __init__(self, loop_start: torch.nn.Module | None = None) -> None:
        from collections import Counter

        self.copies: Counter[str] = Counter()
        self.syncs = 0
        self.started = loop_start is None
        self._module = loop_start
        self._handle = None
        self._mode = None

    def _mark(self, *_args: Any) -> None:
        self.started = True

    def __enter__(self) -> DeviceCopyCounter:
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if counter.started:
                    counter._record(str(func.overloadpacket), args, out)
                return out

        if self._module is not None:
            self._handle = self._module.register_forward_pre_hook(self._mark)
        self._mode = _Mode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)
        if self._handle is not None:
            self._handle.remove()

    def _record(self, name: str, args: tuple, out: Any) -> None:
        if name == "aten._local_scalar_dense":
            if isinstance(args[0], torch.Tensor) and args[0].device.type != "cpu":  # a CPU scalar is no sync
                self.syncs += 1
        elif name in ("aten._to_copy", "aten.copy_", "aten._copy_from"):
            src = args[1] if name == "aten.copy_" else args[0]
            if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor) and src.device != out.device:
                self.copies[f"{src.device.type}->{out.device.type}"] += 1

    @property
    def total_copies(self) -> int:
        return sum(self.copies.values())
