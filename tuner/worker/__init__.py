"""Workers: claim runs of any study with budget left, ask Optuna, train, record every outcome."""

from tuner.worker._observer import RunObserver
from tuner.worker._rows import PARAMS_ATTR, RESULT_ATTR
from tuner.worker._worker import Worker, WorkerConfig, slot_threads

__all__ = ["PARAMS_ATTR", "RESULT_ATTR", "RunObserver", "Worker", "WorkerConfig", "slot_threads"]
