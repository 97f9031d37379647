"""The autoscaler's SQL (``storage.CLAIMABLE_SQL``, ``HELD_SQL``, ``WORKER_DEMAND_SQL``) counts
exactly what ``storage.claim_run`` hands out and what workers hold, over studies and runs in
every state, built with storage's own functions; then everything is claimed for real."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import storage
from storage import Database


def _ago(**delta: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(**delta)


def _count(db: Database, sql: str) -> int:
    with db.session() as session:
        return int(session.scalar(sa.text(sql)) or 0)


def _counts(db: Database) -> tuple[int, int, int]:
    """(claimable, held, demand)."""
    return (
        _count(db, storage.CLAIMABLE_SQL),
        _count(db, storage.HELD_SQL),
        _count(db, storage.WORKER_DEMAND_SQL),
    )


def _study(db: Database, name: str, n_trials: int) -> None:
    with db.session() as session:
        storage.create_study_record(
            session,
            name=name,
            spec_json={"name": name},
            metric="val_accuracy",
            direction="maximize",
            n_trials=n_trials,
        )


def _claim(db: Database, name: str, worker: str = "w-setup") -> storage.Claim:
    with db.session() as session:
        claim = storage.claim_run(session, worker=worker, device="cpu", studies=[name])
    assert claim is not None and claim.study_name == name
    return claim


def _finish(db: Database, claim: storage.Claim) -> None:
    with db.session() as session:
        assert storage.finish_run(session, claim.run_id, "done")
        storage.complete_study_if_done(session, claim.study_name)


def _retry(db: Database, name: str, attempt: int = 1, retry_of: int = 0) -> None:
    with db.session() as session:
        storage.queue_retry(
            session, study_name=name, attempt=attempt, retry_of=retry_of, params_json={"lr": 0.1}
        )


def _age(db: Database, run_id: int, minutes: int = 60) -> None:
    """Time passes for one run: its heartbeat is ``minutes`` old (its worker went silent)."""
    with db.session() as session:
        session.execute(
            sa.update(storage.TrialRun)
            .where(storage.TrialRun.id == run_id)
            .values(heartbeat_at=_ago(minutes=minutes))
        )


def _claim_everything(db: Database) -> Iterator[storage.Claim]:
    """What workers would take: claim_run, each in its own transaction, until it says None."""
    for i in range(1000):
        with db.session() as session:
            claim = storage.claim_run(session, worker=f"w-{i}", device="cpu")
        if claim is None:
            return
        yield claim
    raise AssertionError("claim_run never ran dry")


@pytest.fixture
def landscape(database: Database) -> dict[str, int]:
    """Studies and runs in every state a worker meets; what each contributes, by hand."""
    db = database
    expected = {"claimable": 0, "held": 0}

    _study(db, "fresh", 3)  # queued, never claimed: its whole budget
    expected["claimable"] += 3

    _study(db, "busy", 6)  # running: 2 of 6 claimed, one of those lost its lease
    _claim(db, "busy")
    lost = _claim(db, "busy", worker="w-vanished")
    _age(db, lost.run_id)  # still 'running': claim_run never takes it, only a reaper does
    _retry(db, "busy")  # a failed trial's retry waits: claimable, outside the budget
    expected["claimable"] += 4 + 1
    expected["held"] += 2

    _study(db, "exhausted", 2)  # every trial claimed, one still training
    _finish(db, _claim(db, "exhausted"))
    _claim(db, "exhausted")
    expected["held"] += 1

    _study(db, "completed", 2)  # done; a retry left pending is not claimable any more
    _finish(db, _claim(db, "completed"))
    _finish(db, _claim(db, "completed"))
    with db.session() as session:
        assert storage.get_study_record(session, "completed").status == "completed"  # type: ignore[union-attr]
    _retry(db, "completed")

    _study(db, "cancelled", 5)  # budget left, one running (ends at its next epoch)
    _claim(db, "cancelled")
    _retry(db, "cancelled")
    with db.session() as session:
        storage.set_study_status(session, "cancelled", "cancelled")
        storage.cancel_pending_runs(session, "cancelled")
    _retry(db, "cancelled")  # a retry queued after the cancel (a reaper racing it)
    expected["held"] += 1

    _study(db, "failed", 4)  # budget left, runs ended by fail_study
    _claim(db, "failed")
    _retry(db, "failed")
    with db.session() as session:
        storage.fail_study(session, "failed", "its task cannot be built")

    _study(db, "lowered", 5)  # 3 claimed, then the budget lowered to 2: nothing, not -1
    for _ in range(3):
        _finish(db, _claim(db, "lowered"))
    with db.session() as session:
        storage.set_study_budget(session, "lowered", 2)

    _study(db, "reopened", 1)  # completed, then given a larger budget: queued again
    _finish(db, _claim(db, "reopened"))
    with db.session() as session:
        storage.set_study_budget(session, "reopened", 3)
    expected["claimable"] += 2

    _study(db, "reaped", 3)  # a reaper took a dead worker's run and has not settled it yet
    _claim(db, "reaped", worker="w-dead")
    with db.session() as session:
        (taken,) = storage.reap_lost_runs(
            session, stale_before=_ago(days=1), dead_workers=["w-dead"]
        )
    assert taken.study_name == "reaped"
    expected["claimable"] += 2
    expected["held"] += 1
    return expected


def test_claim_run_hands_out_exactly_the_claimable_count(
    database: Database, landscape: dict[str, int]
) -> None:
    claimable, held, demand = _counts(database)
    assert (claimable, held) == (landscape["claimable"], landscape["held"])
    assert demand == claimable + held
    taken = 0
    for claim in _claim_everything(database):
        taken += 1
        # Each claim moves one trial from claimable to held: the demand never drops, so an
        # autoscaler sized on it keeps the worker that just took the trial.
        assert _counts(database) == (claimable - taken, held + taken, demand), claim
    assert taken == claimable == landscape["claimable"]
    assert _counts(database) == (0, held + taken, demand)


def test_a_lost_run_stays_held_until_reaped_then_its_retry_is_claimable(
    database: Database, landscape: dict[str, int]
) -> None:
    for _ in _claim_everything(database):
        pass
    claimable, held, demand = _counts(database)
    assert claimable == 0 and held > 0  # the lost run keeps a worker around to reap it
    with database.session() as session:
        lost = storage.reap_lost_runs(session, stale_before=_ago(minutes=30), dead_workers=[])
    assert [run.worker for run in lost] == ["w-vanished"]
    assert _counts(database) == (0, held, demand)  # reaped, unsettled: still a worker's job
    with database.session() as session:  # settled as a reaper does: its retry queued
        assert storage.settle_run(session, lost[0].run_id, "retried")
    _retry(database, "busy", attempt=1, retry_of=7)
    assert _counts(database) == (1, held - 1, demand)
    (retry,) = _claim_everything(database)
    assert (retry.study_name, retry.attempt, retry.retry_of) == ("busy", 1, 7)


def test_nothing_to_do_counts_zero(database: Database) -> None:
    assert _counts(database) == (0, 0, 0)
    _study(database, "one", 1)
    claim = _claim(database, "one")
    assert _counts(database) == (0, 1, 1)
    _finish(database, claim)
    assert _counts(database) == (0, 0, 0)  # idle: KEDA may scale the workers to zero
