"""A process's connections to PostgreSQL: one bounded pool (Optuna's storage on it too), a
role name per process kind, and the PgBouncer flag of a URL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy as sa
import sqlalchemy.exc

import storage
from storage import Database
from storage._errors import translate
from tests.harness import default_admin_dsn


def _by_role(url: str) -> dict[str, int]:
    """Connections to ``url``'s database now, by ``application_name``."""
    import psycopg

    name = sa.make_url(url).database
    with psycopg.connect(default_admin_dsn(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1",
            (name,),
        ).fetchall()
    return {role: n for role, n in rows}


@pytest.fixture
def bounded(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url, connections=3, role=f"tuner-test-{uuid.uuid4().hex[:8]}")
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()


@pytest.mark.postgres
def test_optuna_storage_runs_on_the_same_bounded_engine(bounded: Database) -> None:
    backend = bounded.optuna_storage()
    assert backend.engine is bounded.engine
    pool = bounded.engine.pool
    assert isinstance(pool, sa.QueuePool)
    assert (pool.size(), pool._max_overflow) == (3, 0)
    study = optuna.create_study(storage=backend, study_name="shared")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(optuna.load_study(study_name="shared", storage=backend).trials) == 3


@pytest.mark.postgres
def test_many_threads_never_hold_more_than_the_bound(bounded: Database) -> None:
    """Eight threads on our tables and Optuna's at once: they take turns on 3 connections."""
    backend = bounded.optuna_storage()
    study = optuna.create_study(storage=backend, study_name="busy")
    peak, errors = [0], []
    barrier = threading.Barrier(8)

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                with bounded.session() as session:
                    session.execute(sa.text("SELECT pg_sleep(0.01)"))
                study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
                peak[0] = max(peak[0], _by_role(bounded.url).get(bounded.role, 0))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 <= peak[0] <= 3
    assert _by_role(bounded.url).get(bounded.role, 0) <= 3  # kept open: the pool's size


@pytest.mark.postgres
def test_the_role_names_the_connections_unless_the_url_does(postgres_url: str) -> None:
    plain, named = (
        Database(postgres_url, role="tuner-x"),
        Database(postgres_url + "?application_name=mine", role="tuner-x"),
    )
    try:
        for db in (plain, named):
            with db.session() as session:
                session.execute(sa.text("SELECT 1"))
        roles = _by_role(postgres_url)
        assert roles.get("tuner-x") == 1 and roles.get("mine") == 1
    finally:
        plain.dispose()
        named.dispose()


@pytest.mark.postgres
def test_a_pgbouncer_url_turns_prepared_statements_off(postgres_url: str) -> None:
    pooled, direct = Database(postgres_url + "?pgbouncer=true"), Database(postgres_url)
    try:
        assert (pooled.pgbouncer, direct.pgbouncer) == (True, False)
        assert pooled.url.endswith("?pgbouncer=true")  # kept: what the process was given
        assert "pgbouncer" not in str(pooled.engine.url)  # never sent to the driver
        for db, threshold in ((pooled, None), (direct, 5)):
            with db.engine.connect() as connection:
                assert connection.connection.driver_connection.prepare_threshold == threshold
        backend = pooled.optuna_storage()  # Optuna's own first connection: the same rules
        optuna.create_study(storage=backend, study_name="through")
        assert backend.get_study_id_from_name("through") >= 0
    finally:
        pooled.dispose()
        direct.dispose()


def test_sqlite_is_not_bounded_here(sqlite_url: str) -> None:
    db = Database(sqlite_url, connections=1)
    try:
        assert db.connections is None and not db.pgbouncer
        assert db.optuna_storage().engine is not db.engine
    finally:
        db.dispose()


def test_a_full_pool_reads_as_the_database_unavailable() -> None:
    translated = translate(sqlalchemy.exc.TimeoutError("QueuePool limit"))
    assert isinstance(translated, storage.DatabaseUnavailable)
