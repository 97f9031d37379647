"""Shared fixtures: every storage-backed test runs on SQLite and on PostgreSQL.

``database_url`` yields a fresh, empty database per test: a SQLite file in ``tmp_path``, or a
new PostgreSQL database ``tuner_test_<hex>`` (dropped afterwards) on the server named by
``$TUNER_TEST_POSTGRES_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
When that server is unreachable the PostgreSQL cases are skipped, except under ``CI=true``,
where they fail: CI must not pass by skipping. Select or drop them with ``-m postgres`` /
``-m "not postgres"``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.harness import PostgresUnavailable, scratch_postgres, scratch_sqlite

if TYPE_CHECKING:
    from storage import Database


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL, psycopg 3), dropped afterwards."""
    scratch = contextlib.ExitStack()
    try:
        url = scratch.enter_context(scratch_postgres(prefix="tuner_test_"))
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(str(exc))
    with scratch:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return scratch_sqlite(tmp_path)


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
