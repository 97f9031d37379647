"""The tuning engine: study definitions, initializers, tasks, training and the embedded runner.

No HTTP and no SQL text here: results go through :mod:`storage`.
"""

from tuner._data import BUILTIN_DATASETS, DatasetFile, DataSplit, load_dataset
from tuner._engine import RunSummary, run_study
from tuner._errors import (
    InitializerError,
    SpecError,
    SpecIssue,
    StudyStateError,
    TaskError,
    TunerError,
)
from tuner._initializers import (
    ACTIVATIONS,
    ALIASES,
    INITIALIZERS,
    LayerRecord,
    applicability_error,
    apply_initializer,
    canonical_name,
)
from tuner._observer import RunObserver
from tuner._preflight import PreflightReport, run_preflight
from tuner._report import attach_to_dashboard, build_report, param_importances
from tuner._search import TrialParams, suggest
from tuner._service import cancel_study, check_task, ensure_study, submit_study
from tuner._spec import StudySpec, load_spec, parse_spec
from tuner._tasks import ENTRY_POINT_GROUP, Task, TaskPlugin, build_task
from tuner._train import EarlyStopping, EpochStats, TrainConfig, TrainResult, train
from tuner._trial import resolve_device
from tuner._worker import Worker, WorkerConfig

__all__ = [
    "ACTIVATIONS",
    "ALIASES",
    "BUILTIN_DATASETS",
    "ENTRY_POINT_GROUP",
    "INITIALIZERS",
    "DataSplit",
    "DatasetFile",
    "EarlyStopping",
    "EpochStats",
    "InitializerError",
    "LayerRecord",
    "PreflightReport",
    "RunObserver",
    "RunSummary",
    "SpecError",
    "SpecIssue",
    "StudySpec",
    "StudyStateError",
    "Task",
    "TaskError",
    "TaskPlugin",
    "TrainConfig",
    "TrainResult",
    "TrialParams",
    "TunerError",
    "Worker",
    "WorkerConfig",
    "applicability_error",
    "apply_initializer",
    "attach_to_dashboard",
    "build_report",
    "build_task",
    "cancel_study",
    "canonical_name",
    "check_task",
    "ensure_study",
    "load_dataset",
    "load_spec",
    "param_importances",
    "parse_spec",
    "resolve_device",
    "run_preflight",
    "run_study",
    "submit_study",
    "suggest",
    "train",
]
