"""Queries on ``tuner_studies``: one row per study, keyed by its unique name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.orm import Session

from storage._errors import (
    StudyExistsError,
    StudyNotFoundError,
    is_unique_violation,
    translate,
    translate_errors,
)
from storage._models import ACTIVE_STATUSES, StudyRecord, TrialRun, utcnow


@translate_errors
def create_study_record(
    session: Session,
    *,
    name: str,
    spec_json: Mapping[str, Any],
    metric: str,
    direction: str,
    n_trials: int,
) -> StudyRecord:
    """Insert a new ``queued`` study; :class:`StudyExistsError` if ``name`` is taken.

    ``direction`` is ``"maximize"`` or ``"minimize"`` (enforced by a CHECK constraint).
    """
    if session.scalar(sa.select(StudyRecord.id).where(StudyRecord.name == name)) is not None:
        raise StudyExistsError(f"study {name!r} already exists")
    record = StudyRecord(
        name=name,
        spec_json=dict(spec_json),
        metric=metric,
        direction=direction,
        n_trials=n_trials,
        status="queued",
    )
    session.add(record)
    try:
        session.flush()
    except sqlalchemy.exc.IntegrityError as exc:
        # Lost a race with another writer between the check and the insert.
        if is_unique_violation(exc):
            raise StudyExistsError(f"study {name!r} already exists") from exc
        raise translate(exc) from exc
    return record


@translate_errors
def get_study_record(session: Session, name: str) -> StudyRecord | None:
    """The study called ``name``, or None."""
    return session.scalar(sa.select(StudyRecord).where(StudyRecord.name == name))


@translate_errors
def list_study_records(
    session: Session, *, status: str | None = None, limit: int | None = None, offset: int = 0
) -> list[StudyRecord]:
    """Studies, newest first, optionally only those with ``status``."""
    stmt = sa.select(StudyRecord).order_by(StudyRecord.created_at.desc(), StudyRecord.id.desc())
    if status is not None:
        stmt = stmt.where(StudyRecord.status == status)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


@translate_errors
def set_study_status(session: Session, name: str, status: str) -> None:
    """Set a study's status (queued, running, completed, cancelled, failed).

    :class:`StudyNotFoundError` if there is no such study; an unknown status is rejected by
    a CHECK constraint (:class:`~storage.ConstraintViolationError`).
    """
    result = session.execute(
        sa.update(StudyRecord)
        .where(StudyRecord.name == name)
        .values(status=status, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if cast("sa.CursorResult[Any]", result).rowcount == 0:
        raise StudyNotFoundError(f"study {name!r} does not exist")


@translate_errors
def set_study_spec(session: Session, name: str, spec_json: Mapping[str, Any]) -> None:
    """Store a study's new definition (a resume that accepted changes)."""
    session.execute(
        sa.update(StudyRecord)
        .where(StudyRecord.name == name)
        .values(spec_json=dict(spec_json), updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


@translate_errors
def set_study_budget(session: Session, name: str, n_trials: int) -> None:
    """Change the number of finished trials a study should end with.

    A completed study given a larger budget is queued again, so workers pick it up.
    """
    reopen = sa.case(
        (sa.and_(StudyRecord.status == "completed", StudyRecord.n_claimed < n_trials), "queued"),
        else_=StudyRecord.status,
    )
    result = session.execute(
        sa.update(StudyRecord)
        .where(StudyRecord.name == name)
        .values(n_trials=n_trials, status=reopen, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if cast("sa.CursorResult[Any]", result).rowcount == 0:
        raise StudyNotFoundError(f"study {name!r} does not exist")


def study_direction(session: Session, name: str) -> str:
    """The study's direction; :class:`StudyNotFoundError` if there is no such study."""
    direction = session.scalar(sa.select(StudyRecord.direction).where(StudyRecord.name == name))
    if direction is None:
        raise StudyNotFoundError(f"study {name!r} does not exist")
    return direction


@translate_errors
def fail_study(session: Session, name: str, reason: str) -> int:
    """Mark a study that cannot run ``failed`` with ``reason``, and end its runs that have not
    finished (pending and running: no worker may start them again). Returns the runs ended.

    A study already over (completed or cancelled) keeps its status.
    """
    session.execute(
        sa.update(StudyRecord)
        .where(StudyRecord.name == name, StudyRecord.status.in_(ACTIVE_STATUSES))
        .values(status="failed", error=reason[:4000], updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    result = session.execute(
        sa.update(TrialRun)
        .where(TrialRun.study_name == name, TrialRun.state.in_(("pending", "running")))
        .values(state="cancelled", finished_at=utcnow())
    )
    return cast("sa.CursorResult[Any]", result).rowcount
