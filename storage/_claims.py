"""Claims: a worker takes a waiting retry, else a new trial of a study with budget left.

Each claim is one conditional UPDATE: of racing claimers for the last trial of a budget,
exactly one gets a row back (PostgreSQL re-checks the condition on the locked row; SQLite
serializes writers), so no race starts more than ``n_trials`` trials.

The same rules, counted in plain SQL for an autoscaler (KEDA's ``postgresql`` trigger in
``deploy/kubernetes``): :data:`CLAIMABLE_SQL` (what :func:`claim_run` would hand out),
:data:`HELD_SQL` (what workers hold now) and :data:`WORKER_DEMAND_SQL` (both: the work the
worker replicas should be sized for).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage._errors import translate_errors
from storage._models import ACTIVE_STATUSES, StudyRecord, TrialRun, utcnow

_RUNS, _STUDIES = cast(sa.Table, TrialRun.__table__), cast(sa.Table, StudyRecord.__table__)
_ACTIVE_SQL = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)

# What claim_run hands out, as two counts: a pending retry of an active study (one claim each,
# no budget spent), and the unclaimed budget of every active study (one claim per trial; a
# budget lowered below n_claimed counts nothing). A study's deadline (budget.timeout_s) is not
# a claim condition: its next claim is granted, and that trial's first epoch ends the study.
_PENDING_RETRIES = (
    "(SELECT count(*) FROM tuner_trial_runs AS r JOIN tuner_studies AS s"
    " ON s.name = r.study_name\n"
    f"    WHERE r.state = 'pending' AND s.status IN ({_ACTIVE_SQL}))"
)
_UNCLAIMED_BUDGET = (
    "(SELECT coalesce(sum(n_trials - n_claimed), 0) FROM tuner_studies\n"
    f"    WHERE status IN ({_ACTIVE_SQL}) AND n_claimed < n_trials)"
)
# What workers hold: runs training (a lost one too: its heartbeat stopped, and only a worker
# can reap it), and runs a reaper took but has not settled yet (a worker settles them again).
_HELD_RUNS = (
    "(SELECT count(*) FROM tuner_trial_runs\n"
    "    WHERE state = 'running' OR (state = 'retried' AND finished_at IS NULL))"
)
#: One number: the trials :func:`claim_run` would hand out now, claimed one by one until it
#: returns None (any worker, any study). PostgreSQL and SQLite.
CLAIMABLE_SQL = f"SELECT {_PENDING_RETRIES}\n  + {_UNCLAIMED_BUDGET}"
#: One number: the runs that workers hold (training, or lost and not yet settled).
HELD_SQL = f"SELECT {_HELD_RUNS}"
#: One number: claimable plus held, the trials worker slots are needed for. A claim moves a
#: trial from one term to the other, so claiming never lowers it: an autoscaler sized on it
#: does not remove workers as they take work (sized on the claimable count alone, each claim
#: would), and does not scale to zero while a lost run still waits for a worker to reap it.
WORKER_DEMAND_SQL = f"{CLAIMABLE_SQL}\n  + {_HELD_RUNS}"

_NEW_RUN = sa.insert(_RUNS).returning(_RUNS.c.id)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A run a worker now owns: a new trial of a study, or a retry of a failed one."""

    run_id: int
    study_name: str
    spec_json: dict[str, Any]
    created_at: datetime.datetime  # the study's
    attempt: int
    retry_of: int | None  # the first attempt's trial number, for a retry
    params_json: dict[str, Any] | None  # a retry's parameters
    seq: int  # the study's claim counter after this claim (1-based); distinct per new trial


def _named(stmt: sa.Select[Any], named: bool) -> sa.Select[Any]:
    if named:
        return stmt.where(_STUDIES.c.name.in_(sa.bindparam("studies", expanding=True)))
    return stmt


@functools.cache
def _retry_claim(postgres: bool, named: bool) -> sa.Update:
    active = _named(sa.select(_STUDIES.c.name).where(_STUDIES.c.status.in_(ACTIVE_STATUSES)), named)
    pick = (
        sa.select(_RUNS.c.id)
        .where(_RUNS.c.state == "pending", _RUNS.c.study_name.in_(active))
        .order_by(_RUNS.c.id)
        .limit(1)
    )
    if postgres:
        pick = pick.with_for_update(skip_locked=True)
    return (
        sa.update(_RUNS)
        .where(_RUNS.c.id == pick.scalar_subquery(), _RUNS.c.state == "pending")
        .values(
            state="running",
            worker=sa.bindparam("by"),
            device=sa.bindparam("on"),
            heartbeat_at=sa.bindparam("now"),
        )
        .returning(
            _RUNS.c.id, _RUNS.c.study_name, _RUNS.c.attempt, _RUNS.c.retry_of, _RUNS.c.params_json
        )
    )


@functools.cache
def _new_claim(named: bool) -> sa.Update:
    has_budget = _STUDIES.c.n_claimed < _STUDIES.c.n_trials
    pick = _named(
        sa.select(_STUDIES.c.id).where(_STUDIES.c.status.in_(ACTIVE_STATUSES), has_budget), named
    ).order_by(_STUDIES.c.created_at, _STUDIES.c.id)
    # The budget test sits in the UPDATE itself: PostgreSQL re-checks it on the locked row,
    # so of N racing claimers for the last slot exactly one gets a row back.
    return (
        sa.update(_STUDIES)
        .where(
            _STUDIES.c.id == pick.limit(1).scalar_subquery(),
            has_budget,
            _STUDIES.c.status.in_(ACTIVE_STATUSES),
        )
        .values(
            n_claimed=_STUDIES.c.n_claimed + 1, status="running", updated_at=sa.bindparam("now")
        )
        .returning(
            _STUDIES.c.name, _STUDIES.c.spec_json, _STUDIES.c.created_at, _STUDIES.c.n_claimed
        )
    )


def _claim_params(worker: str, device: str, studies: Sequence[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {"by": worker, "on": device, "now": utcnow()}
    if studies is not None:
        params["studies"] = list(studies)
    return params


def _claim_retry(
    session: Session, worker: str, device: str, studies: Sequence[str] | None
) -> Claim | None:
    postgres = session.get_bind().dialect.name == "postgresql"
    stmt = _retry_claim(postgres, studies is not None)
    row = session.execute(stmt, _claim_params(worker, device, studies)).first()
    if row is None:
        return None
    study = session.execute(
        sa.select(StudyRecord.spec_json, StudyRecord.created_at, StudyRecord.n_claimed).where(
            StudyRecord.name == row.study_name
        )
    ).one()
    return Claim(
        row.id,
        row.study_name,
        study.spec_json,
        study.created_at,
        row.attempt,
        row.retry_of,
        row.params_json,
        study.n_claimed,
    )


def _claim_new(
    session: Session, worker: str, device: str, studies: Sequence[str] | None
) -> Claim | None:
    params = _claim_params(worker, device, studies)
    row = session.execute(_new_claim(studies is not None), params).first()
    if row is None:
        return None
    run = {"study_name": row.name, "attempt": 0, "state": "running", "worker": worker}
    run.update(device=device, heartbeat_at=params["now"])
    run_id = session.execute(_NEW_RUN, run).scalar_one()
    return Claim(run_id, row.name, row.spec_json, row.created_at, 0, None, None, row.n_claimed)


@translate_errors
def claim_run(
    session: Session, *, worker: str, device: str, studies: Sequence[str] | None = None
) -> Claim | None:
    """Claim a waiting retry, else a new trial of the oldest active study with budget left.

    ``studies`` limits the claim to those study names. None when there is nothing to do.
    """
    for _ in range(3):  # a lost race on one study may leave budget on another
        claim = _claim_retry(session, worker, device, studies) or _claim_new(
            session, worker, device, studies
        )
        if claim is not None:
            return claim
        if not claimable(session, studies):
            return None
    return None


@translate_errors
def claimable(session: Session, studies: Sequence[str] | None = None) -> bool:
    """Whether an active study (of ``studies``; None: any) has budget left to claim."""
    stmt = sa.select(sa.func.count(StudyRecord.id)).where(
        StudyRecord.status.in_(ACTIVE_STATUSES), StudyRecord.n_claimed < StudyRecord.n_trials
    )
    if studies is not None:
        stmt = stmt.where(StudyRecord.name.in_(studies))
    return bool(session.scalar(stmt))
