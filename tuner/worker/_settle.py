"""Lost runs: whatever a dead worker left behind is recorded, and its trial queued again.

A run whose heartbeat went stale (or whose process on this host is gone) is settled by
whichever worker notices first. What it needs is on the Optuna trial: the configuration set
when the trial started (:data:`~tuner.worker._rows.PARAMS_ATTR`) and, if training had ended, the
results row (:data:`~tuner.worker._rows.RESULT_ATTR`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import optuna
from sqlalchemy.orm import Session

import storage
from tuner.spec import StudySpec, parse_spec
from tuner.worker._rows import PARAMS_ATTR, RESULT_ATTR, failure_row, frozen_trial, retry_payload

_STATES = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}


def queue_again(
    session: Session, study_name: str, attempt: int, retry_of: int | None, trial: Any = None
) -> None:
    """Queue the trial's configuration (None: a fresh one) as a pending run of attempt N."""
    storage.queue_retry(
        session,
        study_name=study_name,
        attempt=attempt,
        retry_of=retry_of,
        params_json=None if trial is None else retry_payload(trial),
    )


def complete_if_done(db: storage.Database, name: str) -> None:
    # In its own transaction, after ours committed: of workers finishing the last trials
    # at once, the last to commit then sees every run done (inside the finishing
    # transaction each would see only its own).
    with db.session() as session:
        storage.complete_study_if_done(session, name)


def settle_lost_run(
    db: storage.Database,
    run: storage.LostRun,
    *,
    grace: float,
    handed_back: bool = False,
    why: str | None = None,
) -> None:
    """Record a lost run and queue its retry (or end it, once retries are spent).

    Each way ends in one transaction that settles the run (:func:`storage.settle_run`) with
    what it records and queues: if this reaper dies or the database goes away before it, the
    run stays unsettled and a later reap takes it again; if another reaper got there first,
    nothing is written twice.
    """
    backend = db.optuna_storage()
    with db.session() as session:
        record = storage.get_study_record(session, run.study_name)
    assert record is not None
    spec = parse_spec(record.spec_json)
    if run.trial_number is None:  # lost before it asked Optuna: just run it again
        with db.session() as session:
            if storage.settle_run(session, run.run_id, "retried"):
                queue_again(session, run.study_name, run.attempt, run.retry_of)
        return
    frozen = frozen_trial(backend, run.study_name, run.trial_number)
    with db.session() as session:
        recorded = storage.get_trial_result(session, run.study_name, run.trial_number)
        recorded_data = None if recorded is None else storage.TrialResultData.from_row(recorded)
    if recorded_data is not None:
        _finish_recorded(db, run, frozen, recorded_data)
        return
    if frozen.state == optuna.trial.TrialState.RUNNING:
        # ValueError/RuntimeError: its worker finished it just now, handled below
        with contextlib.suppress(RuntimeError, ValueError):
            optuna.load_study(study_name=run.study_name, storage=backend).tell(
                run.trial_number, state=optuna.trial.TrialState.FAIL
            )
        frozen = frozen_trial(backend, run.study_name, run.trial_number)
    kept = frozen.user_attrs.get(RESULT_ATTR)
    root = run.retry_of if run.retry_of is not None else run.trial_number
    with db.session() as session:
        if kept is not None:  # its worker finished the trial but died before recording it
            if storage.settle_run(session, run.run_id, "done"):
                storage.upsert_trial_result(session, storage.TrialResultData.from_json(kept))
        elif PARAMS_ATTR not in frozen.user_attrs:  # died right after asking: run it anew
            if storage.settle_run(session, run.run_id, "retried"):
                queue_again(session, run.study_name, run.attempt, run.retry_of)
        else:
            retry = _retries_left(record.status, run, spec, handed_back)
            if handed_back:  # its own worker stopped before the trial ended: no retry spent
                why = why or "handed back: the worker stopped before the trial ended"
            else:
                why = f"worker {run.worker} lost: no heartbeat for {grace:g}s"
            row = failure_row(run.study_name, frozen, error=why + ("; retrying" if retry else ""))
            if storage.settle_run(session, run.run_id, "retried" if retry else "done"):
                storage.upsert_trial_result(session, row)
                if retry:
                    attempt = run.attempt if handed_back else run.attempt + 1
                    queue_again(session, run.study_name, attempt, root, frozen)
    complete_if_done(db, run.study_name)


def _retries_left(
    status: str, run: storage.LostRun, spec: StudySpec, handed_back: bool = False
) -> bool:
    active = status in storage.ACTIVE_STATUSES
    return active and (handed_back or run.attempt < spec.budget.max_retries)


def _finish_recorded(
    db: storage.Database,
    run: storage.LostRun,
    frozen: optuna.trial.FrozenTrial,
    row: storage.TrialResultData,
) -> None:
    """Its worker wrote the row, then died before telling Optuna or ending the run."""
    assert run.trial_number is not None
    if frozen.state == optuna.trial.TrialState.RUNNING:
        state = _STATES.get(row.state, optuna.trial.TrialState.FAIL)
        complete = state == optuna.trial.TrialState.COMPLETE and row.value is not None
        values = [float(row.value)] if complete and row.value is not None else None
        with contextlib.suppress(RuntimeError, ValueError):
            optuna.load_study(study_name=run.study_name, storage=db.optuna_storage()).tell(
                run.trial_number, values, state=state
            )
    retry = (row.error or "").endswith("(retrying)")
    with db.session() as session:
        if storage.settle_run(session, run.run_id, "retried" if retry else "done") and retry:
            root = run.retry_of if run.retry_of is not None else run.trial_number
            queue_again(session, run.study_name, run.attempt + 1, root, frozen)
    complete_if_done(db, run.study_name)
