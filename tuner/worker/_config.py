"""A worker's settings, and how many intra-op threads each of its slots uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

import storage

#: ``application_name`` of a worker's connections (``pg_stat_activity`` counts them by it).
WORKER_ROLE = "tuner-worker"


@dataclass(frozen=True)
class WorkerConfig:
    device: str = "auto"
    slots: int = 1
    heartbeat_interval: float = 10.0
    grace: float = 60.0  # a run with no heartbeat for this long is lost
    poll_interval: float = 2.0  # idle wait between claims
    studies: Sequence[str] | None = None  # only these studies; None: any
    # stop when nothing is claimable or running in the served studies (None: in any study)
    exit_when_idle: bool = False
    deadline: float | None = None  # time.monotonic() limit of this worker (embedded runs)
    population: int | None = None  # trials trained as one stack: None/0 auto, 1 off, K
    # fast: TF32 for the process's fp32 on CUDA (every trial; exact: ieee, cuDNN's too) and
    # populations in bf16 with whole-stack optimizer steps; None: fast on CUDA only
    fast: bool | None = None
    compile: bool = False  # populations' stacked step through torch.compile
    threads: int | None = None  # intra-op threads per slot; None: on CPU, the cores shared out


def slot_threads(device: torch.device, slots: int, threads: int | None) -> int | None:
    """Intra-op threads each slot should use; None: leave torch's setting alone.

    On a CPU, slots share the process's threads (torch's default: one per core): two slots
    on two cores run one thread each. Small models' ops (the MLPs populations stack) scale
    badly across threads, so trials in parallel beat threads in parallel there.
    """
    if threads is not None:
        return threads
    if device.type != "cpu" or slots == 1:
        return None
    return max(1, torch.get_num_threads() // slots)


def worker_connections(slots: int) -> int:
    """The PostgreSQL connections a worker process with ``slots`` slots holds at most: one
    per slot (a slot claims, asks, reports and records one transaction at a time, never
    two at once) and one for the heartbeat thread. Optuna's storage shares them."""
    return slots + 1


def worker_database(url: str, slots: int) -> storage.Database:
    """The database of a worker process with ``slots`` slots, its connections bounded to
    :func:`worker_connections` and named :data:`WORKER_ROLE`."""
    return storage.Database(url, connections=worker_connections(slots), role=WORKER_ROLE)


def require_connections(db: storage.Database, slots: int) -> None:
    """ValueError unless ``db`` may hold the connections ``slots`` slots need."""
    needed = worker_connections(slots)
    if db.connections is not None and db.connections < needed:
        raise ValueError(
            f"{slots} slot(s) need {needed} database connections, the database allows "
            f"{db.connections}: open it with tuner.worker.worker_database"
        )
