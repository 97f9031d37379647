"""Worker internals that are hard to reach through a whole run: the lease check, and a
lease that runs out while no other worker is there to reap it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import storage
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.worker import Worker, WorkerConfig


def test_a_lease_is_lost_only_when_the_database_says_so(database_url: str) -> None:
    db = storage.Database(database_url)
    db.upgrade()
    try:
        spec = parse_spec({"name": "lease", "task": {"hidden": [4], "dataset": "synthetic"}})
        submit_study(db, spec)
        worker = Worker(db, WorkerConfig(device="cpu", grace=60.0))
        with db.session() as session:
            claim = storage.claim_run(session, worker=worker.name, device="cpu")
        assert claim is not None
        claimed = time.monotonic() - 1.0
        # A heartbeat that ran before the claim committed does not list the run...
        leases = worker._leases
        leases._owned, leases._beat_at = set(), time.monotonic()
        assert not leases.lost(claim.run_id, claimed)  # ...but the run is still ours
        with db.session() as session:  # a reaper takes it over
            storage.reap_lost_runs(session, stale_before=datetime.now(UTC) + timedelta(1))
        assert leases.lost(claim.run_id, claimed)
        leases._owned, leases._beat_at = {claim.run_id}, time.monotonic() - 61.0
        assert leases.lost(claim.run_id, claimed - 60.0)  # no heartbeat for a grace period
        # ...but a claim is a renewal: a run claimed a moment ago is not lost because the
        # heartbeat has not got through since the database came back
        assert not leases.lost(claim.run_id, claimed)
    finally:
        db.dispose()


def test_a_lease_lost_with_no_reaper_is_handed_back_not_held(database_url: str) -> None:
    """The lease runs out on the worker (no heartbeat got through for the grace) but no
    other worker reaped the run: the worker settles it as a reaper would (recorded lost,
    retried), so its heartbeat does not keep an untrained run alive forever, and the study
    still ends with exactly its budget."""
    db = storage.Database(database_url)
    db.upgrade()
    spec = {
        "name": "orphan",
        "task": {"hidden": [4], "dataset": "synthetic"},
        "budget": {"n_trials": 2, "max_epochs": 2, "max_retries": 1},
        "pruner": "none",
    }
    try:
        submit_study(db, parse_spec(spec))
        # the deadline only bounds a failure: a held run would keep the worker from idling
        config = WorkerConfig(device="cpu", studies=["orphan"], exit_when_idle=True,
                              poll_interval=0.01, deadline=time.monotonic() + 60)  # fmt: skip
        worker = Worker(db, config)
        leases, lost_once = worker._leases, [True]

        def lost(run_id: int, claimed: float) -> bool:  # the first trial's lease runs out
            was, lost_once[0] = lost_once[0], False
            return was

        leases.lost = lost  # type: ignore[method-assign]
        assert worker.run() == 2 and not worker.timed_out
        with db.session() as session:
            record = storage.get_study_record(session, "orphan")
            runs = storage.count_runs_by_state(session, "orphan")
            rows = storage.list_trial_results(session, "orphan", limit=10)
        assert record is not None and record.status == "completed"
        assert runs == {"done": 2, "retried": 1}  # lost once, retried once
        errors = [r.error for r in rows if r.error]
        assert len(errors) == 1 and errors[0].startswith(f"worker {worker.name} lost")
        assert errors[0].endswith("; retrying")
    finally:
        db.dispose()


def test_idle_without_studies_waits_for_every_active_study(database_url: str) -> None:
    """Without ``studies``, a worker is idle only when no queued or running study has a
    trial left to claim, running, or lost and not yet settled: a run another worker holds
    may still be lost, and its retry needs a worker (what lets a pool of workers shrink)."""
    db = storage.Database(database_url)
    db.upgrade()
    spec = {"name": "any", "task": {"hidden": [4], "dataset": "synthetic"},
            "budget": {"n_trials": 1, "max_epochs": 1}}  # fmt: skip
    try:
        # a short grace: the reaper takes the unsettled run again once it has passed
        config = WorkerConfig(device="cpu", exit_when_idle=True, heartbeat_interval=0.1,
                              grace=0.5, poll_interval=0.01)  # fmt: skip
        worker = Worker(db, config)
        assert worker._claims.idle()  # no study at all
        submit_study(db, parse_spec(spec))
        assert not worker._claims.idle()  # a trial to claim
        with db.session() as session:
            claim = storage.claim_run(session, worker="elsewhere", device="cpu")
        assert claim is not None
        assert not worker._claims.idle()  # held by another worker: it may be lost
        with db.session() as session:  # ...and it is: reaped, not settled yet
            storage.reap_lost_runs(session, stale_before=datetime.now(UTC) + timedelta(1))
        assert not worker._claims.idle()
        assert worker.run() == 1  # settles it, runs the retry, then stops by itself
        with db.session() as session:
            record = storage.get_study_record(session, "any")
            runs = storage.count_runs_by_state(session, "any")
        assert record is not None and record.status == "completed"
        assert runs == {"done": 1, "retried": 1}
        assert worker._claims.idle()
    finally:
        db.dispose()
