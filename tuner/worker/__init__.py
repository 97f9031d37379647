"""Workers: claim runs of any study with budget left, ask Optuna, train, record every outcome."""

from tuner.worker._config import (
    WORKER_ROLE,
    WorkerConfig,
    slot_threads,
    worker_connections,
    worker_database,
)
from tuner.worker._executor import Executor, PopulationExecutor, TrialExecutor
from tuner.worker._observer import RunObserver
from tuner.worker._rows import PARAMS_ATTR, RESULT_ATTR
from tuner.worker._worker import Worker

__all__ = [
    "PARAMS_ATTR",
    "RESULT_ATTR",
    "WORKER_ROLE",
    "Executor",
    "PopulationExecutor",
    "RunObserver",
    "TrialExecutor",
    "Worker",
    "WorkerConfig",
    "slot_threads",
    "worker_connections",
    "worker_database",
]
