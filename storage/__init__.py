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
    STOP_REASONS,
    STUDY_STATUSES,
    TRIAL_STATES,
    Base,
    StudyRecord,
    TrialResult,
)
from storage._results import (
    ORDERABLE_COLUMNS,
    InitializerSummary,
    TrialResultData,
    count_trial_results,
    get_trial_result,
    list_trial_results,
    recorded_trial_numbers,
    summarize_by_initializer,
    upsert_trial_result,
)
from storage._studies import (
    create_study_record,
    get_study_record,
    list_study_records,
    set_study_budget,
    set_study_status,
)

__all__ = [
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "DIRECTIONS",
    "ORDERABLE_COLUMNS",
    "STOP_REASONS",
    "STUDY_STATUSES",
    "TRIAL_STATES",
    "Base",
    "ConstraintViolationError",
    "Database",
    "InitializerSummary",
    "StorageError",
    "StudyExistsError",
    "StudyNotFoundError",
    "StudyRecord",
    "TrialResult",
    "TrialResultData",
    "count_trial_results",
    "create_study_record",
    "get_study_record",
    "get_trial_result",
    "list_study_records",
    "list_trial_results",
    "recorded_trial_numbers",
    "resolve_database_url",
    "set_study_budget",
    "set_study_status",
    "summarize_by_initializer",
    "upsert_trial_result",
]
