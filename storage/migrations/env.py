"""Alembic environment for the ``tuner_`` tables.

``Database.upgrade()`` passes its own connection in ``config.attributes["connection"]`` and
owns the transaction; from the command line (``alembic -c storage/alembic.ini ...``) the URL
comes from ``-x url=...``, else ``sqlalchemy.url``, else ``$TUNER_DATABASE_URL``, else the
default SQLite file. Only ``tuner_`` tables are compared or migrated, with their own version
table, so Optuna's tables and its ``alembic_version`` are never touched.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import make_url

from storage._alembic import VERSION_TABLE, include_name, include_object_for, lock_for_migration
from storage._database import Database, resolve_database_url
from storage._models import Base

config = context.config
if config.config_file_name is not None and not logging.getLogger().handlers:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def _url() -> str:
    explicit = context.get_x_argument(as_dictionary=True).get("url")
    return resolve_database_url(explicit or config.get_main_option("sqlalchemy.url"))


def _configure(**kwargs: Any) -> None:
    if "connection" in kwargs:
        dialect = kwargs["connection"].dialect.name
    else:
        dialect = make_url(kwargs["url"]).get_backend_name()
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object_for(dialect),
        include_name=include_name,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    url = _url()
    _configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: sa.Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    database = Database(_url())
    try:
        with database.engine.begin() as conn:
            lock_for_migration(conn)
            _run_on(conn)
    finally:
        database.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
