"""Trial runs: heartbeats, leases, their end, and retries (claims: ``storage._claims``).

Every state change here is one conditional UPDATE, so whichever of two racing writers
(two workers claiming, or a worker finishing while a reaper declares it lost) gets
the row wins, and the other sees zero rows and backs off. SQLite serializes writers;
on PostgreSQL the row locks of UPDATE do the same.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage._errors import translate_errors
from storage._models import ACTIVE_STATUSES, StudyRecord, TrialRun, WorkerRecord, utcnow


@dataclasses.dataclass(frozen=True)
class LostRun:
    """A running run whose worker stopped heartbeating (or died on this host)."""

    run_id: int
    study_name: str
    trial_number: int | None
    attempt: int
    retry_of: int | None
    worker: str | None


def _rowcount(result: sa.Result[Any]) -> int:
    return cast("sa.CursorResult[Any]", result).rowcount


# The statements every trial runs are built once, on the tables, with bound parameters:
# building an ORM statement costs more than the round trip it makes.
_RUNS, _STUDIES = cast(sa.Table, TrialRun.__table__), cast(sa.Table, StudyRecord.__table__)
_SET_RUN_TRIAL = (
    sa.update(_RUNS).where(_RUNS.c.id == sa.bindparam("run")).values(trial_number=sa.bindparam("n"))
)
_FINISH_RUN = (
    sa.update(_RUNS)
    .where(_RUNS.c.id == sa.bindparam("run"), _RUNS.c.state == "running")
    .values(state=sa.bindparam("to"), finished_at=sa.bindparam("now"))
)
_LOCK_STUDY = (
    sa.update(_STUDIES)
    .where(_STUDIES.c.name == sa.bindparam("study"))
    .values(updated_at=sa.bindparam("now"))
)
_DONE_RUNS = sa.select(sa.func.count(_RUNS.c.id)).where(
    _RUNS.c.study_name == sa.bindparam("study"), _RUNS.c.state == "done"
)
_COMPLETE_STUDY = (
    sa.update(_STUDIES)
    .where(_STUDIES.c.name == sa.bindparam("study"), _STUDIES.c.status == "running")
    .where(_STUDIES.c.n_trials <= _DONE_RUNS.scalar_subquery())
    .values(status="completed", updated_at=sa.bindparam("now"))
)


@translate_errors
def set_run_trial(session: Session, run_id: int, trial_number: int) -> None:
    session.execute(_SET_RUN_TRIAL, {"run": run_id, "n": trial_number})


@translate_errors
def finish_run(session: Session, run_id: int, state: str = "done") -> bool:
    """End a run we own; False if it is no longer ours (a reaper declared it lost)."""
    result = session.execute(_FINISH_RUN, {"run": run_id, "to": state, "now": utcnow()})
    return _rowcount(result) == 1


@translate_errors
def owns_run(session: Session, run_id: int, worker: str) -> bool:
    """Whether ``worker`` still holds the running run."""
    stmt = sa.select(TrialRun.id).where(
        TrialRun.id == run_id, TrialRun.worker == worker, TrialRun.state == "running"
    )
    return session.scalar(stmt) is not None


@translate_errors
def lock_study(session: Session, name: str) -> None:
    """Take the study row's write lock: transactions that do this run one after another.

    A write, not SELECT FOR UPDATE: it is also what makes SQLite take its lock up front.
    """
    session.execute(_LOCK_STUDY, {"study": name, "now": utcnow()})


@translate_errors
def set_run_state(session: Session, run_id: int, state: str) -> None:
    session.execute(
        sa.update(TrialRun).where(TrialRun.id == run_id).values(state=state, finished_at=utcnow())
    )


@translate_errors
def heartbeat(session: Session, worker: str) -> tuple[set[int], set[str]]:
    """Mark the worker and its running runs alive.

    Returns the ids of runs it still owns (a missing one was declared lost) and the
    names of cancelled studies among them (their trials should stop).
    """
    now = utcnow()
    owned = session.execute(
        sa.update(TrialRun)
        .where(TrialRun.worker == worker, TrialRun.state == "running")
        .values(heartbeat_at=now)
        .returning(TrialRun.id, TrialRun.study_name)
    ).all()
    session.execute(
        sa.update(WorkerRecord).where(WorkerRecord.name == worker).values(heartbeat_at=now)
    )
    names = {row.study_name for row in owned}
    cancelled = set(
        session.scalars(
            sa.select(StudyRecord.name).where(
                StudyRecord.name.in_(names), StudyRecord.status == "cancelled"
            )
        )
    )
    return {row.id for row in owned}, cancelled


@translate_errors
def running_workers(session: Session) -> set[str]:
    """Names of workers that hold running runs."""
    stmt = sa.select(TrialRun.worker).where(TrialRun.state == "running").distinct()
    return {w for w in session.scalars(stmt) if w}


#: What a taken run is returned as, in :class:`LostRun`'s order.
_LOST_COLUMNS = (
    TrialRun.id,
    TrialRun.study_name,
    TrialRun.trial_number,
    TrialRun.attempt,
    TrialRun.retry_of,
    TrialRun.worker,
)


@translate_errors
def reap_lost_runs(
    session: Session, *, stale_before: datetime.datetime, dead_workers: Iterable[str] = ()
) -> list[LostRun]:
    """Take over running runs with a stale heartbeat (or a known-dead worker), and runs an
    earlier reaper took but never settled (it died, or the database went away, in between).

    The runs move to ``retried``, unsettled (no ``finished_at``), with ``heartbeat_at`` now:
    for ``stale_before``'s grace no other reaper takes them. The caller then settles each
    (:func:`settle_run` in the transaction that records it and queues its retry); one that
    is never settled is taken again once its grace runs out, so no trial is ever lost.
    """
    lost = sa.or_(TrialRun.heartbeat_at < stale_before, TrialRun.worker.in_(list(dead_workers)))
    unsettled = sa.and_(
        TrialRun.state == "retried",
        TrialRun.finished_at.is_(None),
        TrialRun.heartbeat_at < stale_before,
    )
    rows = session.execute(
        sa.update(TrialRun)
        .where(sa.or_(sa.and_(TrialRun.state == "running", lost), unsettled))
        .values(state="retried", heartbeat_at=utcnow(), finished_at=None)
        .returning(*_LOST_COLUMNS)
    ).all()
    return [LostRun(*row) for row in rows]


@translate_errors
def release_runs(
    session: Session, worker: str, run_ids: Iterable[int] | None = None
) -> list[LostRun]:
    """The runs ``worker`` still holds (these ``run_ids``, or all as it stops), taken as a
    reaper takes lost runs (``retried``, unsettled) for the worker itself to settle."""
    mine = sa.and_(TrialRun.state == "running", TrialRun.worker == worker)
    if run_ids is not None:
        mine = sa.and_(mine, TrialRun.id.in_(list(run_ids)))
    rows = session.execute(
        sa.update(TrialRun)
        .where(mine)
        .values(state="retried", heartbeat_at=utcnow(), finished_at=None)
        .returning(*_LOST_COLUMNS)
    ).all()
    return [LostRun(*row) for row in rows]


@translate_errors
def settle_run(session: Session, run_id: int, state: str) -> bool:
    """End a reaped run as ``retried`` (its retry queued in the same transaction) or ``done``.

    False when it was settled already (another reaper took it again): write nothing then.
    """
    result = session.execute(
        sa.update(TrialRun)
        .where(TrialRun.id == run_id, TrialRun.state == "retried", TrialRun.finished_at.is_(None))
        .values(state=state, finished_at=utcnow())
    )
    return _rowcount(result) == 1


@translate_errors
def unsettled_runs(session: Session, names: Iterable[str]) -> int:
    """Reaped runs of these studies not settled yet (their retries may still come)."""
    stmt = sa.select(sa.func.count(TrialRun.id)).where(
        TrialRun.study_name.in_(list(names)),
        TrialRun.state == "retried",
        TrialRun.finished_at.is_(None),
    )
    return int(session.scalar(stmt) or 0)


@translate_errors
def queue_retry(
    session: Session,
    *,
    study_name: str,
    attempt: int,
    retry_of: int | None,
    params_json: Mapping[str, Any] | None,
) -> None:
    """A pending run that any worker may claim (without touching the study budget)."""
    session.add(
        TrialRun(
            study_name=study_name,
            attempt=attempt,
            retry_of=retry_of,
            state="pending",
            params_json=None if params_json is None else dict(params_json),
        )
    )
    session.flush()


@translate_errors
def complete_study_if_done(session: Session, name: str) -> bool:
    """Mark a running study completed once it has n_trials runs done."""
    result = session.execute(_COMPLETE_STUDY, {"study": name, "now": utcnow()})
    return _rowcount(result) == 1


@translate_errors
def count_runs_by_state(session: Session, name: str) -> dict[str, int]:
    stmt = (
        sa.select(TrialRun.state, sa.func.count(TrialRun.id))
        .where(TrialRun.study_name == name)
        .group_by(TrialRun.state)
    )
    return {state: int(n) for state, n in session.execute(stmt).all()}


@translate_errors
def cancel_pending_runs(session: Session, name: str) -> int:
    result = session.execute(
        sa.update(TrialRun)
        .where(TrialRun.study_name == name, TrialRun.state == "pending")
        .values(state="cancelled", finished_at=utcnow())
    )
    return _rowcount(result)


@translate_errors
def queue_depth(session: Session) -> int:
    """Trials waiting for a worker: unclaimed budget of active studies plus pending retries."""
    unclaimed = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(StudyRecord.n_trials - StudyRecord.n_claimed), 0))
        .where(StudyRecord.status.in_(ACTIVE_STATUSES))
        .where(StudyRecord.n_claimed < StudyRecord.n_trials)
    )
    pending = session.scalar(
        sa.select(sa.func.count(TrialRun.id)).where(TrialRun.state == "pending")
    )
    return int(unclaimed or 0) + int(pending or 0)
