"""The storage package's exceptions, and the one place DB errors are translated into them.

Callers of :mod:`storage` never see SQLAlchemy, Alembic or DBAPI exceptions: everything that
goes wrong while talking to the database surfaces as a :class:`StorageError` (or a subclass),
with the original exception chained as ``__cause__`` for debugging.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import sqlalchemy.exc

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: SQLSTATE class 23 code for "unique_violation" (PostgreSQL).
_PG_UNIQUE_VIOLATION = "23505"


class StorageError(Exception):
    """Root of every error the storage package raises."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached right now (down, restarting, a dropped connection, a
    busy SQLite file): worth retrying. Any other :class:`StorageError` is not an outage."""


class StudyExistsError(StorageError):
    """A study with this name already exists."""


class StudyNotFoundError(StorageError):
    """No study with this name exists."""


class ConstraintViolationError(StorageError):
    """A row was rejected by a database constraint (CHECK, UNIQUE, NOT NULL, FOREIGN KEY)."""


def is_unique_violation(exc: sqlalchemy.exc.IntegrityError) -> bool:
    """Whether ``exc`` comes from a UNIQUE/PRIMARY KEY constraint (SQLite or PostgreSQL)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:  # psycopg 3
        return True
    if getattr(orig, "pgcode", None) == _PG_UNIQUE_VIOLATION:  # psycopg2
        return True
    errorname = getattr(orig, "sqlite_errorname", "")  # sqlite3, Python >= 3.11
    if errorname in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return True
    return "unique" in str(orig).lower()


def translate(exc: BaseException) -> StorageError:
    """Map a SQLAlchemy/Alembic/DBAPI exception to the matching :class:`StorageError`.

    The caller raises the result ``from exc``. A :class:`StorageError` is returned unchanged.
    """
    if isinstance(exc, StorageError):
        return exc
    orig = getattr(exc, "orig", None)
    detail = str(orig) if orig is not None else str(exc)
    detail = detail.strip().splitlines()[0] if detail.strip() else type(exc).__name__
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return ConstraintViolationError(f"constraint violated: {detail}")
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # every connection of the pool busy
        return DatabaseUnavailable(f"no free connection in this process's pool: {detail}")
    if getattr(exc, "connection_invalidated", False) or isinstance(
        exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
    ):
        return DatabaseUnavailable(f"database unavailable ({type(exc).__name__}): {detail}")
    return StorageError(f"database error ({type(exc).__name__}): {detail}")


def translate_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a storage function so DB errors leave it as :class:`StorageError`."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    return wrapper
