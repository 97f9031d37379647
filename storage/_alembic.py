"""Alembic wiring shared by :class:`storage.Database` and ``storage/migrations/env.py``.

The ``tuner_`` tables have their own version table, so our migrations and Optuna's (which use
``alembic_version``) never see each other, and autogenerate only ever looks at ``tuner_`` tables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from sqlalchemy.schema import SchemaItem

from storage._models import TABLE_PREFIX

#: Where the migration scripts live (shipped as package data).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Alembic's version table for the ``tuner_`` tables; Optuna keeps ``alembic_version``.
VERSION_TABLE = "tuner_alembic_version"
#: Key of ``pg_advisory_xact_lock`` held while migrating, so concurrent upgrades serialize.
PG_MIGRATION_LOCK_KEY = 0x7475_6E65_72  # "tuner"


def include_object(
    obj: SchemaItem,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: SchemaItem | None,
) -> bool:
    """Alembic filter: only ``tuner_`` tables (and what hangs off them) are ours."""
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX) and name != VERSION_TABLE
    table = getattr(obj, "table", None)
    if isinstance(table, sa.Table):
        return table.name.startswith(TABLE_PREFIX) and table.name != VERSION_TABLE
    return True


def include_object_for(dialect: str) -> Callable[..., bool]:
    """:func:`include_object`, also leaving out what ``ddl_if`` reserves for other dialects."""

    def include(
        obj: SchemaItem,
        name: str | None,
        type_: str,
        reflected: bool,
        compare_to: SchemaItem | None,
    ) -> bool:
        only = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        if only is not None and only != dialect:
            return False
        return include_object(obj, name, type_, reflected, compare_to)

    return include


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic filter applied before reflection: skip every table that is not ours."""
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX) and name != VERSION_TABLE
    return True


def lock_for_migration(connection: sa.Connection) -> None:
    """Serialize migrations: hold a lock until the caller's transaction ends.

    Two processes starting at once must not both create the tables. PostgreSQL: a transaction
    advisory lock. SQLite: ``BEGIN IMMEDIATE``, which also makes the DDL transactional (the
    sqlite3 driver's legacy mode would otherwise autocommit each CREATE TABLE).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK_KEY}
        )
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_config(connection: sa.Connection | None = None, url: str | None = None) -> Config:
    """A programmatic Alembic config (no ``alembic.ini`` needed) for our migrations.

    With ``connection``, ``env.py`` migrates on it inside the caller's transaction;
    otherwise it connects to ``url``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config
