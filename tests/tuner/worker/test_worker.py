"""Worker internals that are hard to reach through a whole run: the lease check."""

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
        assert leases.lost(claim.run_id, claimed)  # no heartbeat for a grace period
    finally:
        db.dispose()
