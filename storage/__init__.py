"""Storage for the tuning service: the ``tuner_`` tables, their migrations, Optuna's storage.

Everything a caller needs is exported here; the underscore modules are private. Every error
raised on purpose is a :class:`StorageError`; database driver errors are translated into it.
This package never imports torch, ``tuner`` or ``api``.
"""

from __future__ import annotations

from storage._claims import Claim, claim_run
from storage._database import (
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    Database,
    masked_url,
    resolve_database_url,
)
from storage._details import (
    DepthProfile,
    LayerDiagnosticsData,
    ReplicateData,
    diagnostics_by_initializer,
    get_layer_diagnostics,
    get_trial_replicates,
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
    LayerDiagnostic,
    StudyRecord,
    TrialReplicate,
    TrialResult,
    TrialRun,
    WorkerRecord,
)
from storage._optuna_tables import (
    create_optuna_trial,
    finish_optuna_trial,
    write_intermediate_values,
)
from storage._pages import CONTRACT_COLUMNS, TrialPages, page_trial_results
from storage._results import (
    ORDERABLE_COLUMNS,
    InitializerSummary,
    TrialResultData,
    count_trial_results,
    duration_histogram,
    get_trial_result,
    list_trial_results,
    summarize_by_initializer,
    trial_counts,
    upsert_trial_result,
)
from storage._runs import (
    LostRun,
    cancel_pending_runs,
    complete_study_if_done,
    count_runs_by_state,
    finish_run,
    heartbeat,
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
    "DepthProfile",
    "InitializerSummary",
    "LayerDiagnostic",
    "LayerDiagnosticsData",
    "LostRun",
    "ReplicateData",
    "StorageError",
    "StudyExistsError",
    "StudyNotFoundError",
    "StudyRecord",
    "TrialPages",
    "TrialReplicate",
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
    "create_optuna_trial",
    "create_study_record",
    "diagnostics_by_initializer",
    "duration_histogram",
    "finish_optuna_trial",
    "finish_run",
    "get_layer_diagnostics",
    "get_study_record",
    "get_trial_replicates",
    "get_trial_result",
    "heartbeat",
    "list_study_records",
    "list_trial_results",
    "list_workers",
    "lock_study",
    "masked_url",
    "owns_run",
    "page_trial_results",
    "queue_depth",
    "queue_retry",
    "reap_lost_runs",
    "register_worker",
    "resolve_database_url",
    "running_workers",
    "set_run_state",
    "set_run_trial",
    "set_study_budget",
    "set_study_status",
    "stop_worker",
    "summarize_by_initializer",
    "trial_counts",
    "upsert_trial_result",
    "write_intermediate_values",
]
