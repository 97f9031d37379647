"""A worker's connections: one per slot and one for its heartbeat, never two in one thread."""

from __future__ import annotations

import collections
import threading
from typing import Any

import pytest
import sqlalchemy as sa

import storage
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.worker import Worker, WorkerConfig, worker_connections, worker_database


class Checkouts:
    """Connections each thread holds from a pool, and the most any thread (and all) held."""

    def __init__(self, pool: sa.Pool) -> None:
        self._lock = threading.Lock()
        self._held: collections.Counter[int] = collections.Counter()
        self._by_record: dict[int, int] = {}
        self.most_in_a_thread = self.most_at_once = 0
        sa.event.listen(pool, "checkout", self._out)
        sa.event.listen(pool, "checkin", self._in)

    def _out(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        me = threading.get_ident()
        with self._lock:
            self._by_record[id(record)] = me
            self._held[me] += 1
            self.most_in_a_thread = max(self.most_in_a_thread, self._held[me])
            self.most_at_once = max(self.most_at_once, sum(self._held.values()))

    def _in(self, dbapi_connection: Any, record: Any) -> None:
        with self._lock:
            owner = self._by_record.pop(id(record), None)
            if owner is not None:
                self._held[owner] -= 1


def _spec(name: str, sampler: str) -> Any:
    return parse_spec(
        {
            "name": name,
            "task": {"model": "mlp", "hidden": [4], "dataset": "synthetic"},
            "search": {
                "initializer": ["xavier_uniform", "kaiming_normal"],
                "lr": [0.01, 0.1],
                "batch_size": 64,
            },
            "budget": {"n_trials": 6, "max_epochs": 2},
            "sampler": sampler,
            "pruner": "median",
        }
    )


@pytest.mark.postgres
def test_a_worker_holds_a_connection_per_slot_and_one_for_its_heartbeat(
    postgres_url: str,
) -> None:
    """Three slots on two studies, one asked in memory (TPE), one through Optuna's own ask
    with its state read back at the end (grid): never two connections in one thread, so
    never more than slots + 1 in the process, Optuna's storage included."""
    db = worker_database(postgres_url, 3)
    db.upgrade()
    try:
        for name, sampler in (("in-memory", "tpe"), ("optuna-ask", "grid")):
            submit_study(db, _spec(name, sampler))
        checkouts = Checkouts(db.engine.pool)
        config = WorkerConfig(
            device="cpu",
            slots=3,
            heartbeat_interval=0.02,  # beats while the slots work
            poll_interval=0.01,
            studies=("in-memory", "optuna-ask"),
            exit_when_idle=True,
            population=1,
        )
        assert Worker(db, config).run() == 12
        assert checkouts.most_in_a_thread == 1
        assert 2 <= checkouts.most_at_once <= worker_connections(3) == 4
        with db.session() as session:
            for name in ("in-memory", "optuna-ask"):
                assert storage.count_trial_results(session, name) == 6
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_worker_refuses_a_database_with_too_few_connections(postgres_url: str) -> None:
    db = storage.Database(postgres_url, connections=3)
    try:
        with pytest.raises(ValueError, match="3 slot\\(s\\) need 4 database connections"):
            Worker(db, WorkerConfig(device="cpu", slots=3))
        Worker(db, WorkerConfig(device="cpu", slots=2))
    finally:
        db.dispose()
