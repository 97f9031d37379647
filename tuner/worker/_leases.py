"""A worker's leases: the heartbeat that keeps its runs alive, and the reaping of lost ones.

One background loop (the heartbeat thread) and its actions. Every ``heartbeat_interval``
the loop renews the lease of every run this worker holds and learns which of them it still
owns and which studies were cancelled. A slot asks :meth:`Leases.lost` at each epoch end
whether its run was taken over, and :meth:`Leases.reap` before each claim fails the runs
whose heartbeat went stale (their worker was killed or cut off), at most once an interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import storage
from tuner.worker._isolation import fail_study, study_cannot_run
from tuner.worker._rows import dead_here
from tuner.worker._settle import settle_lost_run

log = logging.getLogger("tuner.worker")


class Leases:
    """The heartbeat of worker ``worker`` and what it learns; thread-safe."""

    def __init__(self, db: storage.Database, worker: str, *, interval: float, grace: float):
        self.db, self.worker = db, worker
        self.interval = interval  # between heartbeats, and between reaps
        self.grace = grace  # a run with no heartbeat for this long is lost
        self._done = threading.Event()  # the heartbeat thread ends
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._cancelled: set[str] = set()
        self._beat_at = time.monotonic()
        self._last_reap = -1e9
        self._thread: threading.Thread | None = None

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat thread (the first beat comes one interval later)."""
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """End the heartbeat thread and wait for it."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        """One heartbeat: renew this worker's runs, learn what it owns and what was cancelled."""
        started = time.monotonic()  # a run claimed after this may be missing from `owned`
        try:
            with self.db.session() as session:
                owned, cancelled = storage.heartbeat(session, self.worker)
        except storage.StorageError as exc:  # keep training; the lease decides
            log.warning("heartbeat failed: %s", exc)
            return
        with self._lock:
            self._owned, self._cancelled, self._beat_at = owned, cancelled, started

    # -- its actions -------------------------------------------------------------------------

    def cancelled(self, study: str) -> bool:
        """Whether the last heartbeat heard that ``study`` was cancelled."""
        return study in self._cancelled

    def lost(self, run_id: int, claimed: float) -> bool:
        """True when a heartbeat begun after the claim no longer lists the run (and the
        database confirms it), or when neither the claim nor a heartbeat got through for a
        whole grace period (the claim renewed the lease: a run claimed just after an outage
        is not lost because the heartbeat has not caught up yet)."""
        with self._lock:
            if time.monotonic() - max(self._beat_at, claimed) > self.grace:
                return True
            suspect = self._beat_at > claimed and run_id not in self._owned
        if not suspect:
            return False
        try:
            with self.db.session() as session:
                return not storage.owns_run(session, run_id, self.worker)
        except storage.StorageError:
            return False  # cannot tell now; the grace rule above decides in time

    def release(self, run_ids: Sequence[int] | None = None, *, why: str | None = None) -> None:
        """Hand back the runs this worker still holds (``run_ids``, or all as it stops):
        recorded as failed (``why``), their configurations queued again, no retry spent."""
        with self.db.session() as session:
            held = storage.release_runs(session, self.worker, run_ids)
        for run in held:
            settle_lost_run(self.db, run, grace=self.grace, handed_back=True, why=why)

    def reap_own(self, run_id: int) -> None:
        """Settle a run of this worker's whose lease ran out here (no heartbeat got through
        for the grace) as a reaper would: recorded lost, retried while retries are left.
        Nothing if another worker's reaper took it first."""
        with self.db.session() as session:
            held = storage.release_runs(session, self.worker, [run_id])
        for run in held:
            settle_lost_run(self.db, run, grace=self.grace)

    def reap(self) -> None:
        """Fail, record and retry the runs whose lease ran out (at most once an interval)."""
        with self._lock:
            if time.monotonic() - self._last_reap < self.interval:
                return
            self._last_reap = time.monotonic()
        stale_before = datetime.now(UTC) - timedelta(seconds=self.grace)
        with self.db.session() as session:
            dead = {w for w in storage.running_workers(session) if dead_here(w)}
            lost = storage.reap_lost_runs(session, stale_before=stale_before, dead_workers=dead)
        for run in lost:
            try:
                settle_lost_run(self.db, run, grace=self.grace)
            except Exception as exc:
                if not study_cannot_run(exc):
                    raise
                fail_study(self.db, run.study_name, exc)
