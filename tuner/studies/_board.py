"""A study and its leaderboard read straight from a database, in the client's models.

The embedded counterpart of ``TunerClient.get`` / ``TunerClient.leaderboard``: the CLI and
the sweep reports show a study the same way whether it ran here or on a service.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

import storage
from tuner.client._models import (
    InitializerStats,
    Leaderboard,
    SeedVarianceGroup,
    Study,
    Trial,
    TrialCounts,
)
from tuner.errors import TunerError
from tuner.variance import by_initializer


def _record(db: storage.Database, session: Session, name: str) -> storage.StudyRecord:
    record = storage.get_study_record(session, name)
    if record is None:
        raise TunerError(f"no study named {name!r} in {db.shown_url}")
    return record


def _study(session: Session, record: storage.StudyRecord) -> Study:
    name = record.name
    finished = {
        state: storage.count_trial_results(session, name, state=state)
        for state in storage.TRIAL_STATES
    }
    live = storage.count_runs_by_state(session, name)
    best = storage.list_trial_results(session, name, state="complete", limit=1)
    return Study(
        name=name,
        status=record.status,
        metric=record.metric,
        direction=record.direction,
        n_trials=record.n_trials,
        created_at=record.created_at,
        counts=TrialCounts(
            **finished, running=live.get("running", 0), pending=live.get("pending", 0)
        ),
        best=Trial.model_validate(best[0]) if best and best[0].value is not None else None,
        spec=dict(record.spec_json),
        error=record.error,
    )


def _migrated(db: storage.Database, name: str) -> None:
    if db.current_revision() is None:
        raise TunerError(f"no study named {name!r}: {db.shown_url} holds no results yet")


def find_study(db: storage.Database, name: str) -> Study | None:
    """Study ``name`` as ``GET /v1/studies/{name}`` shows it, or None if there is none."""
    if db.current_revision() is None:
        return None
    with db.session() as session:
        record = storage.get_study_record(session, name)
        return None if record is None else _study(session, record)


def read_study(db: storage.Database, name: str) -> Study:
    """Study ``name`` as ``GET /v1/studies/{name}`` shows it; TunerError if there is none."""
    _migrated(db, name)
    with db.session() as session:
        return _study(session, _record(db, session, name))


def read_leaderboard(db: storage.Database, name: str, top: int = 10) -> Leaderboard:
    """Study ``name``, its ``top`` best trials and its results per initializer."""
    _migrated(db, name)
    with db.session() as session:
        study = _study(session, _record(db, session, name))
        rows = storage.list_trial_results(session, name, limit=top)
        total = storage.count_trial_results(session, name)
        groups = storage.summarize_by_initializer(session, name)
        replicated = storage.replicates_by_trial(session, name)
    return Leaderboard(
        study=study,
        top=[Trial.model_validate(row) for row in rows],
        total=total,
        initializers=[
            InitializerStats(
                initializer=g.initializer,
                count=g.n_trials,
                complete=g.n_complete,
                best=g.best_value,
                mean=g.mean_value,
            )
            for g in groups
        ],
        seed_variance=[
            SeedVarianceGroup.model_validate({"initializer": label, **split.to_json()})
            for label, split in by_initializer((init, reps) for _, init, reps in replicated)
        ],
    )
