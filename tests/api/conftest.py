"""Fixtures for the API tests: an app on a fresh database (helpers in api_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.api_helpers import make_client


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """An app without tokens on a fresh database (SQLite and PostgreSQL)."""
    with make_client(database_url) as c:
        yield c


@pytest.fixture
def sqlite_client(sqlite_url: str) -> Iterator[TestClient]:
    """An app without tokens on a fresh SQLite file (for tests where the backend is moot)."""
    with make_client(sqlite_url) as c:
        yield c
