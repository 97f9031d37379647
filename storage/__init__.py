"""Storage for the tuning service: the ``tuner_`` tables, their migrations, Optuna's storage.

Everything a caller needs is exported here; the underscore modules are private. Every error
raised on purpose is a :class:`StorageError`; database driver errors are translated into it.
This package never imports torch, ``tuner`` or ``api``.
"""

from __future__ import annotations

from storage._database import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    Database,
    resolve_database_url,
)
from storage._errors import (
    ConstraintViolationError,
    StorageError,
    StudyExistsError,
    StudyNotFoundError,
)
from storage._models import (
    DIRECTIONS,
    RUN_STATES,
    STOP_REASONS,
    STUDY_STATUSES,
    TRIAL_STATES,
    Base,
    StudyRecord,
    TrialResult,
    TrialRun,
    WorkerRecord,
)
from storage._optuna_tables import write_intermediate_values
from storage._results import (
    CONTRACT_COLUMNS,
    ORDERABLE_COLUMNS,
    InitializerSummary,
    TrialResultData,
    count_trial_results,
    get_trial_result,
    list_trial_results,
    page_trial_results,
    recorded_trial_numbers,
    summarize_by_initializer,
    upsert_trial_result,
)
from storage._runs import (
    Claim,
    LostRun,
    cancel_pending_runs,
    claim_run,
    complete_study_if_done,
    count_runs_by_state,
    finish_run,
    heartbeat,
    hold_run,
    lock_study,
    owns_run,
    queue_depth,
    queue_retry,
    reap_lost_runs,
    running_workers,
    set_run_state,
    set_run_trial,
)
from storage._studies import (
    create_study_record,
    get_study_record,
    list_study_records,
    set_study_budget,
    set_study_status,
)
from storage._workers import WorkerInfo, list_workers, register_worker, stop_worker

__all__ = [
    "CONTRACT_COLUMNS",
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "DIRECTIONS",
    "ORDERABLE_COLUMNS",
    "RUN_STATES",
    "STOP_REASONS",
    "STUDY_STATUSES",
    "TRIAL_STATES",
    "Base",
    "Claim",
    "ConstraintViolationError",
    "Database",
    "InitializerSummary",
    "LostRun",
    "StorageError",
    "StudyExistsError",
    "StudyNotFoundError",
    "StudyRecord",
    "TrialResult",
    "TrialResultData",
    "TrialRun",
    "WorkerInfo",
    "WorkerRecord",
    "cancel_pending_runs",
    "claim_run",
    "complete_study_if_done",
    "count_runs_by_state",
    "count_trial_results",
    "create_study_record",
    "finish_run",
    "get_study_record",
    "get_trial_result",
    "heartbeat",
    "hold_run",
    "list_study_records",
    "list_trial_results",
    "list_workers",
    "lock_study",
    "owns_run",
    "page_trial_results",
    "queue_depth",
    "queue_retry",
    "reap_lost_runs",
    "recorded_trial_numbers",
    "register_worker",
    "resolve_database_url",
    "running_workers",
    "set_run_state",
    "set_run_trial",
    "set_study_budget",
    "set_study_status",
    "stop_worker",
    "summarize_by_initializer",
    "upsert_trial_result",
    "write_intermediate_values",
]
