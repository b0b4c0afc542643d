"""The Ray engine (``batch --engine ray``): the local engine's cases, outputs and summary, on Ray actors.

Each worker is a Ray actor that loads the models once (:class:`~mvg_backend.batch.models.ModelSpec`: paths and
settings travel, not weights) and then runs cases with :func:`~mvg_backend.batch.local.run_one`, writing
straight into the output folder (a shared filesystem on a cluster), staged as the local engine does. The driver
streams the cases through the actors with at most :data:`IN_FLIGHT_PER_WORKER` calls queued on each (back
pressure: a 10,000-case CSV holds 10,000 small rows, never 10,000 results), applies the one resume rule, and
writes each row of ``summary.csv`` as it arrives. A case whose worker process dies is retried, preferably on
another worker, up to ``worker_retries`` times; Ray restarts the dead actor (which loads the models again).

Ray is an optional extra, imported only here and only when this engine runs.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..case import Case, CaseOutcome
from ..errors import MVGInputError, MVGRuntimeError
from ..pipeline import PipelineConfig
from .local import SummaryWriter, clear_staging, finished_outcome, prepare_root, run_one
from .models import ModelSpec

RAY_MISSING = ("--engine ray needs Ray, an optional extra: pip install 'comfyui-mvg[ray]' (or pip install "
               "'ray>=2.11'); or use --engine local.")
IN_FLIGHT_PER_WORKER = 2
"""Calls queued on one worker: one running, one ready to start, so a worker never waits for the driver."""
MAX_PROBES, PROBE_WAIT_S = 50, 0.2  # asking a worker whose process died whether it is back: for about 10 s
TEST_KILL_ENV = "MVG_TEST_KILL_CASE"


@dataclass(frozen=True)
class RaySettings:
    """``address``: None starts a local Ray instance (or uses the one this process already started); ``auto``
    or ``ray://host:port`` joins a cluster. ``workers``: None = as many as the free resources allow."""

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 with a CUDA --device, else 0
    worker_retries: int = 2

    def checked(self, spec: ModelSpec) -> RaySettings:
        """The settings with ``gpus_per_worker`` decided, or an :class:`MVGInputError` naming the flag."""
        cuda = spec.device.startswith("cuda")
        gpus = (1.0 if cuda else 0.0) if self.gpus_per_worker is None else self.gpus_per_worker
        if self.workers is not None and self.workers < 1:
            raise MVGInputError(f"--workers {self.workers}: give 1 or more (or leave it off: as many as the "
                                "resources allow).")
        if not self.cpus_per_worker > 0:
            raise MVGInputError(f"--cpus-per-worker {self.cpus_per_worker:g}: give a number above 0 (e.g. 1, or "
                                "0.5 to put two workers on a core).")
        if gpus < 0:
            raise MVGInputError(f"--gpus-per-worker {gpus:g}: give 0 or more (fractions share a GPU, e.g. 0.5).")
        if cuda and gpus == 0:
            raise MVGInputError(f"--device {spec.device} with --gpus-per-worker 0: Ray would give the workers no "
                                "GPU; give --gpus-per-worker 1 (or 0.5 to put two workers on a GPU).")
        if gpus > 0 and not cuda:
            raise MVGInputError(f"--gpus-per-worker {gpus:g} with --device {spec.device}: the workers would hold "
                                "GPUs and compute on the CPU; add --device cuda.")
        if self.worker_retries < 0:
            raise MVGInputError(f"--worker-retries {self.worker_retries}: give 0 or more.")
        return replace(self, gpus_per_worker=gpus)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MVGInputError(RAY_MISSING) from None
    return ray


class CaseWorker:
    """A Ray actor's class: the models loaded once in the constructor, then :meth:`run` per case."""

    def __init__(self, index: int, spec: ModelSpec, config: PipelineConfig, root: Path, dicom_out: str | None,
                 debug: bool) -> None:
        self.name = f"w{index}@{socket.gethostname()}:{os.getpid()}"
        self.models = spec.load()
        self.config, self.root, self.dicom_out, self.debug = config, root, dicom_out, debug

    def ready(self) -> tuple[str, float, str]:
        """``(worker name, model-load seconds, model note)``."""
        return self.name, self.models.load_seconds, self.models.note

    def run(self, case: Case) -> CaseOutcome:
        return run_one(case, self.config, self.models, self.root, dicom_out=self.dicom_out, debug=self.debug,
                       worker=self.name, progress=_test_kill_hook(case.name, self.root))


def _test_kill_hook(name: str, root: Path) -> Callable[[str, int, int], None] | None:
    """Test-only (tests/test_batch_ray.py): the case named by MVG_TEST_KILL_CASE kills its own worker process
    at its first model step, once (a marker file in the output folder lets the retry finish)."""
    if os.environ.get(TEST_KILL_ENV) != name:
        return None
    marker = root / f".mvg-test-killed-{name}"

    def kill(_stage: str, _done: int, _total: int) -> None:
        if not marker.exists():
            marker.touch()
            os._exit(1)

    return kill


def run_batch_ray(cases: list[Case], config: PipelineConfig, spec: ModelSpec, out_root: str | Path,
                  settings: RaySettings = RaySettings(), *, dicom_out: str | None = None,
                  on_case: Callable[[CaseOutcome], None] | None = None, debug: bool = False,
                  log: Callable[[str], None] = lambda text: print(text, file=sys.stderr)) -> list[CaseOutcome]:
    """Run ``cases`` on Ray workers into ``out_root/<case>/``; one outcome per case (in ``cases`` order) and
    ``summary.csv``, as :func:`~mvg_backend.batch.local.run_batch` gives."""
    ray = import_ray()
    settings = settings.checked(spec)
    spec = spec.resolved()
    if spec.threads is None and not spec.is_tiny:
        spec = replace(spec, threads=max(1, int(settings.cpus_per_worker)))
    root = prepare_root(out_root).resolve()
    cases = [_absolute(c) for c in cases]
    outcomes: list[CaseOutcome | None] = [None] * len(cases)
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=settings.address, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise MVGInputError(f"--address {settings.address}: no Ray cluster there ({_first_line(exc)}); start "
                                "one (ray start --head), or leave --address off for a local instance.") from None
    try:
        with SummaryWriter(root) as summary:
            def record(i: int, outcome: CaseOutcome) -> None:
                outcomes[i] = outcome
                summary.add(outcome)
                if on_case is not None:
                    on_case(outcome)

            pending: deque[tuple[int, int, int | None]] = deque()  # (case index, attempt, worker to avoid)
            for i, case in enumerate(cases):
                done = finished_outcome(case, root)
                if done is None:
                    pending.append((i, 1, None))
                else:
                    record(i, done)
            if pending:
                _Pool(ray, settings, spec, config, root, dicom_out, debug, len(pending), log).run(
                    cases, pending, record)
            summary.finish(outcomes)
    finally:
        if started_here:
            ray.shutdown()
    return outcomes


class _Pool:
    """The actors, and the loop that streams cases through them. A worker takes cases once its ``ready`` call
    has answered (models loaded); after its process died, once it answers again (Ray restarted it)."""

    def __init__(self, ray: Any, settings: RaySettings, spec: ModelSpec, config: PipelineConfig, root: Path,
                 dicom_out: str | None, debug: bool, cases: int, log: Callable[[str], None]) -> None:
        self.ray, self.settings, self.root, self.log = ray, settings, root, log
        count = settings.workers or _workers_allowed(ray, settings, cases)
        actor = ray.remote(CaseWorker).options(num_cpus=settings.cpus_per_worker,
                                               num_gpus=settings.gpus_per_worker,
                                               max_restarts=-1, max_task_retries=0)
        self.actors = [actor.remote(i, spec, config, root, dicom_out, debug) for i in range(count)]
        self.starting: dict[Any, int] = {}  # ready-call ObjectRef -> worker
        self.queued = [0] * count
        self.active: set[int] = set()  # taking cases
        self.loaded: set[int] = set()  # loaded the models at least once
        self.probes = [0] * count  # ready calls since the worker last answered
        self.noted = False
        for a in range(count):
            self._probe(a)

    def _probe(self, a: int) -> None:
        self.starting[self.actors[a].ready.remote()] = a

    def run(self, cases: list[Case], pending: deque, record: Callable[[int, CaseOutcome], None]) -> None:
        ray = self.ray
        inflight: dict[Any, tuple[int, int, int]] = {}  # ObjectRef -> (case index, attempt, worker)
        try:
            while pending or inflight:
                while pending:
                    i, attempt, avoid = pending[0]
                    free = [a for a in self.active if self.queued[a] < IN_FLIGHT_PER_WORKER]
                    if not free:
                        break
                    a = min(free, key=lambda w: (w == avoid, self.queued[w], w))
                    pending.popleft()
                    inflight[self.actors[a].run.remote(cases[i])] = (i, attempt, a)
                    self.queued[a] += 1
                if not inflight and not self.starting:
                    raise MVGRuntimeError("no Ray worker is left to run the remaining cases; see the notes above.")
                [ref], _ = ray.wait([*inflight, *self.starting], num_returns=1)
                if ref in self.starting:
                    self._answered(ref)
                    continue
                i, attempt, a = inflight.pop(ref)
                self.queued[a] -= 1
                outcome = self._outcome(ref, cases[i], attempt)
                if outcome is None:  # the worker died: the case again, on another worker if one has room
                    pending.appendleft((i, attempt + 1, a))
                    if a in self.active:  # no more cases for it until Ray has restarted it
                        self.active.discard(a)
                        self._probe(a)
                else:
                    record(i, outcome)
        finally:
            for a in self.actors:
                ray.kill(a)

    def _answered(self, ref: Any) -> None:
        ray, a = self.ray, self.starting.pop(ref)
        try:
            _name, _seconds, note = ray.get(ref)
        except ray.exceptions.ActorUnavailableError:  # the driver heard of the death before Ray's restart began
            self.probes[a] += 1
            if self.probes[a] <= MAX_PROBES:
                time.sleep(PROBE_WAIT_S)
                self._probe(a)
            else:
                self.log(f"note: Ray worker w{a} did not come back after its process died; going on without it.")
            return
        except ray.exceptions.RayError as exc:
            if a not in self.loaded:  # the first load failed: every worker loads the same models
                raise MVGRuntimeError(f"Ray worker w{a} could not load the models: {_first_line(exc)}") from None
            self.log(f"note: Ray worker w{a} is gone ({_first_line(exc)}); going on without it.")
            return
        self.probes[a] = 0
        self.active.add(a)
        self.loaded.add(a)
        if note and not self.noted:
            self.log(f"note: {note}")
            self.noted = True

    def _outcome(self, ref: Any, case: Case, attempt: int) -> CaseOutcome | None:
        """The case's outcome, or None to run it again (its worker died and retries are left)."""
        ray = self.ray
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            if attempt <= self.settings.worker_retries:
                return None
            clear_staging(self.root, case.name)
            return CaseOutcome(case.name, "failed", error=f"its worker process died on each of {attempt} attempt(s) "
                               f"(killed, e.g. out of memory): {_first_line(exc)}", attempts=attempt)
        except ray.exceptions.RayError as exc:
            return CaseOutcome(case.name, "failed", error=f"Ray: {_first_line(exc)}", attempts=attempt)
        outcome.attempts = attempt
        return outcome


def _workers_allowed(ray: Any, settings: RaySettings, cases: int) -> int:
    """As many workers as the cluster's resources hold (at most one per case); those that find no free room
    wait in Ray's queue and take cases once they start."""
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    allowed = cpus // settings.cpus_per_worker
    if settings.gpus_per_worker:
        allowed = min(allowed, gpus // settings.gpus_per_worker)
    if allowed < 1:
        raise MVGInputError(f"the Ray cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s): not enough for one "
                            f"worker of --cpus-per-worker {settings.cpus_per_worker:g} --gpus-per-worker "
                            f"{settings.gpus_per_worker:g}; lower them, or add nodes.")
    return int(min(allowed, cases))


def _absolute(case: Case) -> Case:
    """The case with absolute input paths (a worker's working folder is not the driver's)."""
    def absolute(value: Any) -> Any:
        return Path(value).resolve() if isinstance(value, (str, Path)) and str(value) != "-" else value

    return replace(case, image=absolute(case.image), report=absolute(case.report), mask=absolute(case.mask),
                   keep_mask=absolute(case.keep_mask))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
