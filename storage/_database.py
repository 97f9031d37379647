"""Engine, sessions, migrations and the Optuna storage for one database URL."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import alembic.command
import alembic.util.exc
import optuna
import sqlalchemy as sa
import sqlalchemy.exc
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from storage._alembic import VERSION_TABLE, lock_for_migration, make_config
from storage._connect import (
    DEFAULT_CONNECTIONS,
    DEFAULT_ROLE,
    connect_args,
    pool_args,
    strip_pooler,
)
from storage._errors import StorageError, translate

#: Environment variable naming the database when no URL is given explicitly.
DATABASE_URL_ENV = "TUNER_DATABASE_URL"
#: The database used when neither an explicit URL nor the environment names one.
DEFAULT_DATABASE_URL = "sqlite:///./tuner.db"
#: How long a SQLite connection waits on a lock held by another process, in seconds.
SQLITE_BUSY_TIMEOUT_S = 30.0


def resolve_database_url(url: str | None = None) -> str:
    """The database URL to use: ``url`` if given (non-empty), else ``$TUNER_DATABASE_URL``,
    else ``sqlite:///./tuner.db``."""
    if url:
        return url
    from_env = os.environ.get(DATABASE_URL_ENV, "").strip()
    return from_env or DEFAULT_DATABASE_URL


def _normalize_url(url: str) -> str:
    """Point driver-less PostgreSQL URLs at psycopg 3, the driver this project ships."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


_PASSWORD = re.compile(r"(//[^/:@]*:)[^@/]*@")


def masked_url(url: str) -> str:
    """``url`` with its password shown as ``***``: the only form of a URL to print or log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)


def sqlite_path(url: str) -> pathlib.Path | None:
    """The file of a SQLite URL (None: another database, or an in-memory one)."""
    try:
        parsed = make_url(_normalize_url(url))
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or _is_sqlite_memory(parsed):
        return None
    return pathlib.Path(str(parsed.database))


def _is_sqlite_memory(url: sa.URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class Database:
    """One database: the ``tuner_`` tables through SQLAlchemy, Optuna's through RDBStorage.

    ``Database(url)`` only creates the engine; call :meth:`upgrade` once to create or migrate
    the ``tuner_`` tables. For SQLite files every connection gets WAL journaling, a busy
    timeout and ``foreign_keys=ON`` (so ``ON DELETE CASCADE`` holds). An in-memory SQLite URL
    shares one connection, and is not visible to :meth:`optuna_storage` (a second engine).

    On PostgreSQL the process holds at most ``connections`` connections to this database,
    Optuna's storage included (it runs on the same engine), each named ``role`` in
    ``pg_stat_activity``; ``?pgbouncer=true`` in the URL names a PgBouncer in transaction
    mode (see :mod:`storage._connect`). A worker needs one per slot and one for its
    heartbeat (``tuner.worker.worker_database``).
    """

    def __init__(
        self, url: str, *, connections: int = DEFAULT_CONNECTIONS, role: str = DEFAULT_ROLE
    ) -> None:
        self.url: str = _normalize_url(url)
        self.role = role
        #: The most connections this process holds here (None: SQLite, not bounded here).
        self.connections: int | None = None
        #: Whether the URL names a PgBouncer in transaction mode (``?pgbouncer=true``).
        self.pgbouncer = False
        try:
            parsed = make_url(self.url)
            self._dialect_name = parsed.get_backend_name()
            engine_kwargs: dict[str, Any] = {}
            if self._dialect_name == "sqlite" and _is_sqlite_memory(parsed):
                engine_kwargs = {
                    "poolclass": StaticPool,
                    "connect_args": {"check_same_thread": False},
                }
            elif self._dialect_name == "postgresql":
                parsed, self.pgbouncer = strip_pooler(parsed)
                self.connections = connections
                self._connect_args = connect_args(parsed, role=role, pgbouncer=self.pgbouncer)
                engine_kwargs = {**pool_args(connections), "connect_args": self._connect_args}
            self._driver_url = parsed
            self.engine: sa.Engine = sa.create_engine(parsed, **engine_kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"cannot use database URL {masked_url(url)!r}: {exc}") from exc
        if self._dialect_name == "sqlite":
            sa.event.listen(
                self.engine, "connect", _sqlite_pragmas(memory=_is_sqlite_memory(parsed))
            )
        self._sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._optuna_storage: optuna.storages.RDBStorage | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Database({self.shown_url!r})"

    @property
    def shown_url(self) -> str:
        """The URL with its password masked, for output, logs and errors."""
        return masked_url(self.url)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error.

        Database errors (also those raised at commit) leave as :class:`StorageError`.
        Loaded objects stay readable after the block (``expire_on_commit=False``).
        """
        session = self._sessionmaker()
        try:
            yield session
            session.commit()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            session.rollback()
            raise translate(exc) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the ``tuner_`` tables (Alembic ``upgrade``), in one transaction."""
        self._migrate(alembic.command.upgrade, revision)

    def downgrade(self, revision: str = "base") -> None:
        """Migrate the ``tuner_`` tables down (``base`` drops them); Optuna's are untouched."""
        self._migrate(alembic.command.downgrade, revision)

    def current_revision(self) -> str | None:
        """The applied migration revision of the ``tuner_`` tables, None if never upgraded."""
        try:
            with self.engine.connect() as connection:
                context = MigrationContext.configure(
                    connection, opts={"version_table": VERSION_TABLE}
                )
                return context.get_current_revision()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def _migrate(self, command: Callable[[Config, str], None], revision: str) -> None:
        try:
            with self.engine.begin() as connection:
                lock_for_migration(connection)
                command(make_config(connection=connection), revision)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
        except alembic.util.exc.CommandError as exc:
            raise StorageError(f"migration to {revision!r} failed: {exc}") from exc

    def optuna_storage(self) -> optuna.storages.RDBStorage:
        """Optuna's RDB storage on the same database (created once, then cached); on
        PostgreSQL it runs on this object's engine, so both share one bounded pool.

        Optuna creates and versions its own tables (``alembic_version``); ours are separate.
        """
        with self._lock:
            if self._optuna_storage is None:
                self._optuna_storage = self._create_optuna_storage()
            return self._optuna_storage

    def _create_optuna_storage(self) -> optuna.storages.RDBStorage:
        engine_kwargs: dict[str, Any] = {}
        if self._dialect_name == "sqlite":
            engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
            try:
                # Our connect hook switches the file to WAL (persistent) before Optuna opens it.
                with self.engine.connect():
                    pass
            except sqlalchemy.exc.SQLAlchemyError as exc:
                raise translate(exc) from exc
        elif self._dialect_name == "postgresql":
            # Optuna checks (and creates) its schema on a connection of its own, unpooled;
            # then it runs on our engine: one pool, one bound, per process.
            engine_kwargs = {"poolclass": NullPool, "connect_args": self._connect_args}
        url = self._driver_url.render_as_string(hide_password=False)
        try:
            backend = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
        except (RuntimeError, alembic.util.exc.CommandError) as exc:
            # Optuna raises RuntimeError when its schema version does not match the library.
            raise StorageError(f"cannot open Optuna storage: {exc}") from exc
        if self._dialect_name == "postgresql":
            backend.engine = self.engine
            backend.scoped_session = scoped_session(sessionmaker(bind=self.engine))
        return backend

    def dispose(self) -> None:
        """Close every pooled connection (ours and the Optuna storage's)."""
        with self._lock:
            storage, self._optuna_storage = self._optuna_storage, None
        if storage is not None:
            storage.remove_session()
            if storage.engine is not self.engine:
                storage.engine.dispose()
        self.engine.dispose()


def _sqlite_pragmas(*, memory: bool) -> Any:
    busy_ms = int(SQLITE_BUSY_TIMEOUT_S * 1000)

    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if not memory:
                _enable_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return on_connect


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode is stored in the file).

    The switch needs an exclusive lock and SQLite answers it with "database is locked"
    at once, without the busy handler, while another connection is writing (e.g. a
    migration of a brand-new file by a second process): retry within the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
