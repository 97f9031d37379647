"""Shared fixtures: every storage-backed test runs on SQLite and on PostgreSQL.

``database_url`` yields a fresh, empty database per test: a SQLite file in ``tmp_path``, or a
new PostgreSQL database ``tuner_test_<hex>`` (dropped afterwards) on the server named by
``$TUNER_TEST_POSTGRES_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
When that server is unreachable the PostgreSQL cases are skipped, except under ``CI=true``,
where they fail: CI must not pass by skipping. Select or drop them with ``-m postgres`` /
``-m "not postgres"``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from storage import Database

POSTGRES_DSN_ENV = "TUNER_TEST_POSTGRES_DSN"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

_unreachable: dict[str, str] = {}


def _admin_connection(dsn: str) -> Any:
    import psycopg

    if dsn in _unreachable:
        reason = _unreachable[dsn]
    else:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            reason = f"PostgreSQL not reachable at {dsn}: {str(exc).strip().splitlines()[0]}"
            _unreachable[dsn] = reason
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL, psycopg 3), dropped afterwards."""
    from psycopg import conninfo, sql

    dsn = os.environ.get(POSTGRES_DSN_ENV, DEFAULT_POSTGRES_DSN)
    name = f"tuner_test_{uuid.uuid4().hex}"
    with _admin_connection(dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo.conninfo_to_dict(dsn)
    auth = str(params.get("user", "postgres"))
    if params.get("password"):
        auth += f":{params['password']}"
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    try:
        yield f"postgresql+psycopg://{auth}@{host}:{port}/{name}"
    finally:
        with _admin_connection(dsn) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'tuner.db'}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty database, once per backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A :class:`storage.Database` with the ``tuner_`` tables migrated to head."""
    from storage import Database

    db = Database(database_url)
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()
