"""One worker actor: the ordinary worker loop, in a process Ray placed, on the device Ray gave it.

A plain class: the pool wraps it with ``ray.remote`` when it starts (this module needs no
Ray to import). Ray runs its methods in two threads (``max_concurrency=2``), so ``stop``
reaches a worker while ``run`` works.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tuner.errors import DeviceLost
from tuner.scale._placement import Placement, assigned_device, worker_device
from tuner.scale._ray import import_ray
from tuner.worker import RunObserver, Worker, WorkerConfig, worker_database

log = logging.getLogger("tuner.scale")

#: A worker's end, in its report: nothing left to do (``exit_when_idle``), or asked to stop.
IDLE, STOPPED = "idle", "stopped"


@dataclass(frozen=True)
class WorkerReport:
    """How one actor's worker ended. ``placement`` is None when the actor never reported
    (it died for good, or was killed); ``ended`` is ``idle``, ``stopped`` or what failed."""

    index: int
    placement: Placement | None
    worker: str | None  # its name in the database (``host:pid:tag``)
    trials: int  # trials this actor's last worker recorded
    ended: str

    @property
    def failed(self) -> bool:
        return self.ended not in (IDLE, STOPPED)


def _log_to_stderr(level: int) -> None:
    """The engine's log lines on the actor's stderr, which Ray forwards to the driver."""
    logger = logging.getLogger("tuner")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _restarted(context: Any) -> bool:
    """Whether this actor is a restart (Ray's own property reads a deprecated one: quiet)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(context.was_current_actor_reconstructed)


class WorkerActor:
    """Worker number ``index`` of a pool: joins ``database_url`` and works as ``config``
    says, on the device :func:`worker_device` picks from Ray's assignment."""

    def __init__(
        self,
        index: int,
        database_url: str,
        config: WorkerConfig,
        observer: Callable[[], RunObserver] | None = None,
        log_level: int = logging.WARNING,
    ) -> None:
        self.index, self.database_url, self.config = index, database_url, config
        self.observer = observer
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._worker: Worker | None = None
        _log_to_stderr(log_level)

    def placement(self) -> Placement:
        """Where Ray put this actor, the GPUs it assigned and the device that follows."""
        ray = import_ray()
        context = ray.get_runtime_context()
        gpu_ids = tuple(str(g) for g in ray.get_gpu_ids())
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        assigned = assigned_device(gpu_ids, visible)
        return Placement(
            index=self.index,
            node_id=context.get_node_id(),
            node_ip=ray.util.get_node_ip_address(),
            pid=os.getpid(),
            gpu_ids=gpu_ids,
            visible_devices=visible,
            assigned_device=assigned,
            device=worker_device(self.config.device, assigned),
            restarted=_restarted(context),
        )

    def stop(self) -> None:
        """Stop claiming; running trials are handed back at their next epoch end."""
        with self._lock:
            self._stopping.set()
            if self._worker is not None:
                self._worker.stop()

    def run(self) -> WorkerReport:
        """Work until idle (``exit_when_idle``) or stopped. A lost device ends the process
        (after the worker handed its runs back): Ray restarts the actor in a fresh process,
        with a fresh CUDA context, as a supervisor restarts ``tuner worker``."""
        placement = self.placement()
        if self._stopping.is_set():  # stopped before it started (a restart while stopping)
            return WorkerReport(self.index, placement, None, 0, STOPPED)
        db = worker_database(self.database_url, self.config.slots)  # slots + 1 connections
        try:
            config = replace(self.config, device=placement.device)
            worker = Worker(db, config, observer=self.observer() if self.observer else None)
            with self._lock:
                self._worker = worker
                if self._stopping.is_set():
                    worker.stop()
            log.info("worker %s on %s (node %s)", worker.name, worker.device, placement.node_ip)
            try:
                ran = worker.run()
            except DeviceLost as exc:
                log.error("worker %s: %s; the actor restarts", worker.name, exc)
                logging.shutdown()
                os._exit(1)  # not exit_actor(): Ray restarts an actor that dies, not one that quits
            ended = STOPPED if self._stopping.is_set() else IDLE
            return WorkerReport(self.index, placement, worker.name, ran, ended)
        finally:
            db.dispose()
