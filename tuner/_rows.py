"""Results rows, and recovery of trials a crash left without one.

Every finished trial gets one flat ``tuner_trial_results`` row. The row also
rides on the Optuna trial as a user attribute, and the trial's configuration is
attached when it starts, so whatever a crash interrupts can be recorded later.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import optuna

import storage
from tuner._trial import TrialOutcome

RESULT_ATTR = "tuner_result"  # the results row, so a row lost in a crash can be rebuilt
PARAMS_ATTR = "tuner_params"  # the trial's configuration, for trials that never ended
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def result_row(study_name: str, outcome: TrialOutcome, worker: str) -> storage.TrialResultData:
    p = outcome.params
    return storage.TrialResultData(
        study_name=study_name,
        trial_number=outcome.number,
        state=outcome.state,
        stop_reason=outcome.stop_reason,
        initializer=p.initializer,
        lr=p.lr,
        weight_decay=p.weight_decay,
        batch_size=p.batch_size,
        patience=p.patience,
        value=outcome.value,
        best_epoch=outcome.best_epoch,
        epochs_run=outcome.epochs_run,
        duration_s=outcome.duration_s,
        worker=worker,
        device=outcome.device,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        params_json={**p.to_json(), "seeds": outcome.seeds},
        error=outcome.error,
    )


def failure_row(
    study_name: str, trial: optuna.trial.FrozenTrial, *, error: str
) -> storage.TrialResultData:
    """The row of a trial that ended without an outcome (interrupted, or its process died)."""
    params: dict[str, Any] = trial.user_attrs[PARAMS_ATTR]
    now = datetime.now(UTC)
    started = trial.datetime_start.astimezone(UTC) if trial.datetime_start else now
    return storage.TrialResultData(
        study_name=study_name,
        trial_number=trial.number,
        state="fail",
        stop_reason="error",
        initializer=params["initializer"],
        lr=params["lr"],
        weight_decay=params["weight_decay"],
        batch_size=params["batch_size"],
        patience=params["patience"],
        value=None,
        best_epoch=None,
        epochs_run=len(trial.intermediate_values),
        duration_s=max(0.0, (now - started).total_seconds()),
        worker=trial.user_attrs.get("worker"),
        device=trial.user_attrs.get("device"),
        started_at=started,
        finished_at=now,
        params_json=params,
        error=error,
    )


def record_failure(
    db: storage.Database, study: optuna.Study, number: int, *, error: str
) -> storage.TrialResultData:
    """Fail a RUNNING trial in Optuna and write its row."""
    backend = db.optuna_storage()
    trial_id = backend.get_trial_id_from_study_id_trial_number(
        backend.get_study_id_from_name(study.study_name), number
    )
    row = failure_row(study.study_name, backend.get_trial(trial_id), error=error)
    backend.set_trial_user_attr(trial_id, RESULT_ATTR, row.to_json())
    study.tell(number, state=optuna.trial.TrialState.FAIL)
    with db.session() as session:
        storage.upsert_trial_result(session, row)
    return row


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(db: storage.Database, study: optuna.Study) -> None:
    """Bring a study back to a fully recorded state after a crash.

    Finished trials whose row is missing get it back from their user attribute;
    trials left RUNNING by a dead process on this host are failed and recorded.
    """
    host = socket.gethostname()
    with db.session() as session:
        have = storage.recorded_trial_numbers(session, study.study_name)
    for trial in study.get_trials(deepcopy=False):
        attr = trial.user_attrs.get(RESULT_ATTR)
        if trial.state in FINISHED and attr and trial.number not in have:
            with db.session() as session:
                storage.upsert_trial_result(session, storage.TrialResultData.from_json(attr))
        elif trial.state == optuna.trial.TrialState.RUNNING and PARAMS_ATTR in trial.user_attrs:
            owner_host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
            if owner_host == host and pid.isdigit() and not _alive(int(pid)):
                record_failure(db, study, trial.number, error=f"worker {owner_host}:{pid} died")
