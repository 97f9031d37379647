"""A pool of worker actors on a Ray cluster, and the driver loop that waits for them.

Ray places the actors (``num_gpus``/``num_cpus`` each, spread over the nodes), restarts one
that dies (``max_restarts``; its ``run`` call follows it, ``max_task_retries=-1``) and lets an
autoscaler add or remove nodes. Nothing here schedules: a run lost with a node is the
database's to settle (another worker reaps it after the grace and it runs again), so the
pool holds no state a lost actor could take with it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tuner.errors import TunerError
from tuner.scale._actor import WorkerActor, WorkerReport
from tuner.scale._placement import Placement, worker_device
from tuner.scale._ray import import_ray
from tuner.worker import RunObserver, WorkerConfig

log = logging.getLogger("tuner.scale")


@dataclass(frozen=True)
class RayWorkers:
    """How many worker actors, what each reserves, and where the cluster is."""

    replicas: int = 1
    gpus_per_worker: float = 0.0  # a fraction shares a GPU: 0.25 puts four workers on one
    cpus_per_worker: float = 1.0  # also each worker's torch threads (Ray sets OMP_NUM_THREADS)
    max_restarts: int = 5  # restarts of an actor that died (-1: always)
    spread: bool = True  # actors spread over the nodes (else Ray's default: packed first)
    address: str | None = None  # ray.init's: None finds a cluster on this machine or starts one

    def check(self) -> None:
        problems = []
        if self.replicas < 1:
            problems.append("--replicas must be at least 1")
        gpus = self.gpus_per_worker
        if not 0 <= gpus <= 1:
            problems.append("--gpus-per-worker is between 0 and 1: a worker trains on one GPU")
        if self.cpus_per_worker < 0:
            problems.append("--cpus-per-worker cannot be negative")
        if self.max_restarts < -1:
            problems.append("--max-restarts is -1 (always) or more")
        if problems:
            raise TunerError("; ".join(problems))


@dataclass(frozen=True)
class PoolSummary:
    """Every actor's report, in pool order."""

    reports: tuple[WorkerReport, ...]

    @property
    def trials(self) -> int:
        return sum(r.trials for r in self.reports)

    @property
    def failed(self) -> list[WorkerReport]:
        return [r for r in self.reports if r.failed]


class StopRequest:
    """What SIGTERM or Ctrl-C asks of the driver (usable as a signal handler): the first,
    stop cleanly (workers claim nothing more and hand their runs back at the next epoch
    end); the second, at once (actors killed: the reaper settles their runs after the grace)."""

    def __init__(self) -> None:
        self.graceful, self.forceful = threading.Event(), threading.Event()

    def __call__(self, *_: object) -> None:
        (self.forceful if self.graceful.is_set() else self.graceful).set()


def _reason(exc: BaseException) -> str:
    """One line for an actor that failed: its own exception for an error in ``run``."""
    cause = getattr(exc, "cause", None)
    shown = cause if isinstance(cause, BaseException) else exc
    first = (str(shown).strip().splitlines() or [""])[0]
    return f"{type(shown).__name__}: {first}" if first else type(shown).__name__


class RayPool:
    """``settings.replicas`` worker actors on ``database_url``, each working as ``config``
    says (its ``device``: ``auto`` for Ray's assignment, or ``cpu``). Use as a context
    manager: leaving it kills what still runs and disconnects a Ray it started."""

    def __init__(
        self,
        settings: RayWorkers,
        database_url: str,
        config: WorkerConfig,
        *,
        observer: Callable[[], RunObserver] | None = None,
    ) -> None:
        settings.check()
        worker_device(config.device, "cpu")  # refuses a device that is Ray's to assign
        self.settings, self.database_url, self.config = settings, database_url, config
        self.observer = observer
        self._ray: Any = None
        self._started_ray = False
        self._actors: list[Any] = []
        self._stop_calls: dict[int, Any] = {}
        self._heard: set[int] = set()  # actors that answered a stop() call

    def __enter__(self) -> RayPool:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect to Ray (or start a local one) and ask for the actors; Ray places them."""
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            ray.init(address=self.settings.address)
            self._started_ray = True
        s = self.settings
        if s.gpus_per_worker > 0 and not ray.cluster_resources().get("GPU"):
            log.warning("the Ray cluster has no GPU now: the workers wait for a node with one")
        remote = ray.remote(WorkerActor).options(
            num_cpus=s.cpus_per_worker,
            num_gpus=s.gpus_per_worker,
            max_restarts=s.max_restarts,
            max_task_retries=-1,  # a call in flight follows the actor into its restart
            max_concurrency=2,  # run() works while stop() is heard
            scheduling_strategy="SPREAD" if s.spread else "DEFAULT",
        )
        level = logging.getLogger("tuner").getEffectiveLevel()
        self._actors = [
            remote.remote(i, self.database_url, self.config, self.observer, level)
            for i in range(s.replicas)
        ]

    def placements(self) -> list[Placement]:
        """Each actor's :class:`Placement`; waits until Ray has placed every one."""
        placed: list[Placement] = self._ray.get([a.placement.remote() for a in self._actors])
        return placed

    def run(
        self,
        stop: StopRequest | None = None,
        *,
        on_stopping: Callable[[int], None] | None = None,
    ) -> PoolSummary:
        """Wait until every worker ended (idle, stopped, or failed for good); each actor is
        killed as its worker ends, so its node's resources are free for an autoscaler.

        ``on_stopping(n)``: called once, after a graceful stop, when the ``n`` workers still
        running have all heard it."""
        ray, stop = self._ray, stop or StopRequest()
        calls = {actor.run.remote(): i for i, actor in enumerate(self._actors)}
        reports: dict[int, WorkerReport] = {}
        announced = on_stopping is None
        while calls:
            if stop.forceful.is_set():
                for i in calls.values():
                    ray.kill(self._actors[i], no_restart=True)
                    reports[i] = WorkerReport(i, None, None, 0, "killed (stopped at once)")
                break
            if stop.graceful.is_set():
                running = set(calls.values())
                if self._ask_stop(running) and not announced and on_stopping is not None:
                    on_stopping(len(running))
                    announced = True
            done, _ = ray.wait(list(calls), num_returns=1, timeout=0.5)
            for ref in done:
                i = calls.pop(ref)
                reports[i] = self._collect(i, ref)
        return PoolSummary(tuple(reports[i] for i in sorted(reports)))

    def _collect(self, i: int, ref: Any) -> WorkerReport:
        ray = self._ray
        try:
            report: WorkerReport = ray.get(ref)
        except ray.exceptions.RayError as exc:  # died past its restarts, or run() raised
            report = WorkerReport(i, None, None, 0, _reason(exc))
            log.error("worker actor %d failed: %s", i, report.ended)
        ray.kill(self._actors[i], no_restart=True)
        return report

    def _ask_stop(self, running: set[int]) -> bool:
        """Tell each running actor to stop; again once its last call was answered, so an
        actor restarted after the first (a node lost while stopping) hears it too. True
        once every one of them has answered."""
        ray = self._ray
        for i in running:
            call = self._stop_calls.get(i)
            if call is not None and not ray.wait([call], timeout=0)[0]:
                continue  # not answered yet
            if call is not None:
                with contextlib.suppress(ray.exceptions.RayError):  # died: asked again
                    ray.get(call)
                    self._heard.add(i)
            self._stop_calls[i] = self._actors[i].stop.remote()
        return running <= self._heard

    def close(self) -> None:
        """Kill the actors still there, and disconnect a Ray this pool started."""
        ray = self._ray
        if ray is None:
            return
        for actor in self._actors:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started_ray:
            ray.shutdown()


def gpu_share(gpus_per_worker: float) -> str:
    """How a worker's GPU reservation reads: "1 GPU", "1/4 GPU", "0.3 GPU", "no GPU"."""
    if gpus_per_worker == 0:
        return "no GPU"
    inverse = 1 / gpus_per_worker
    if math.isclose(inverse, round(inverse)):
        return "1 GPU" if round(inverse) == 1 else f"1/{round(inverse)} GPU"
    return f"{gpus_per_worker:g} GPU"
