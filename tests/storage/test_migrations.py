"""Alembic migrations of the ``tuner_`` tables: one head, up/down/up, models == migrations."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import alembic.command
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage import Base, Database, StorageError
from storage._alembic import (
    MIGRATIONS_DIR,
    VERSION_TABLE,
    include_name,
    include_object_for,
    make_config,
)

TUNER_TABLES = {
    "tuner_studies",
    "tuner_trial_results",
    "tuner_layer_diagnostics",
    "tuner_trial_replicates",
    "tuner_trial_signal",
    "tuner_alembic_version",
}
ALEMBIC_INI = MIGRATIONS_DIR.parent / "alembic.ini"

#: The newest migration; every upgrade test expects the tables at it.
HEAD = "0007"


def _tables(database: Database) -> set[str]:
    return set(sa.inspect(database.engine).get_table_names())


def test_single_head() -> None:
    script = ScriptDirectory.from_config(make_config())
    assert len(script.get_heads()) == 1
    assert script.get_current_head() == HEAD


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert database.current_revision() is None
        assert not _tables(database) & TUNER_TABLES

        database.upgrade()
        assert _tables(database) >= TUNER_TABLES
        assert database.current_revision() == HEAD
        database.upgrade()  # already at head: a no-op
        assert database.current_revision() == HEAD

        database.downgrade("base")
        assert _tables(database) & TUNER_TABLES <= {VERSION_TABLE}
        assert database.current_revision() is None

        database.upgrade()
        assert _tables(database) >= TUNER_TABLES
        assert database.current_revision() == HEAD
    finally:
        database.dispose()


def test_failed_upgrade_leaves_nothing_behind(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.begin() as conn:  # squatter: the 2nd CREATE TABLE will fail
            conn.execute(sa.text("CREATE TABLE tuner_trial_results (id INTEGER PRIMARY KEY)"))
        with pytest.raises(StorageError, match="tuner_trial_results"):
            database.upgrade()
        assert _tables(database) & TUNER_TABLES == {"tuner_trial_results"}
        assert database.current_revision() is None
    finally:
        database.dispose()


def test_concurrent_upgrades_both_succeed(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(3)]
    barrier = threading.Barrier(len(databases))

    def upgrade(database: Database) -> None:
        barrier.wait()
        database.upgrade()

    try:
        with ThreadPoolExecutor(len(databases)) as pool:
            for future in [pool.submit(upgrade, db) for db in databases]:
                future.result()
        assert databases[0].current_revision() == HEAD
    finally:
        for database in databases:
            database.dispose()


def test_schema_has_the_named_constraints_and_indexes(database: Database) -> None:
    inspector = sa.inspect(database.engine)
    indexes = {ix["name"] for ix in inspector.get_indexes("tuner_trial_results")}
    assert {
        "ix_tuner_trial_results_study_name_value",
        "ix_tuner_trial_results_study_name_initializer",
    } <= indexes
    uniques = inspector.get_unique_constraints("tuner_trial_results")
    assert [u["column_names"] for u in uniques] == [["study_name", "trial_number"]]
    fks = inspector.get_foreign_keys("tuner_trial_results")
    assert [(fk["referred_table"], fk["options"].get("ondelete")) for fk in fks] == [
        ("tuner_studies", "CASCADE")
    ]
    checks = {ck["name"] for ck in inspector.get_check_constraints("tuner_trial_results")}
    assert {"ck_tuner_trial_results_state", "ck_tuner_trial_results_stop_reason"} <= checks


def test_models_match_migrations(database: Database) -> None:
    """Autogenerate finds nothing to do: the hand-written migration equals the models."""
    with database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "include_object": include_object_for(conn.dialect.name),
                "include_name": include_name,
                "compare_type": True,
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


@pytest.mark.parametrize("url", ["sqlite:///offline.db", "postgresql+psycopg://u@h/db"])
def test_offline_sql_generation(url: str) -> None:
    buffer = io.StringIO()
    config = make_config(url=url)
    config.output_buffer = buffer
    alembic.command.upgrade(config, "head", sql=True)
    ddl = buffer.getvalue()
    assert "CREATE TABLE tuner_trial_results" in ddl
    assert "CREATE TABLE tuner_alembic_version" in ddl
    assert "CREATE TABLE alembic_version" not in ddl


def test_alembic_ini_for_humans(database_url: str) -> None:
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "-x", f"url={database_url}"]
    done = subprocess.run([*command, "upgrade", "head"], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr
    current = subprocess.run([*command, "current"], capture_output=True, text=True, cwd=root)
    assert current.returncode == 0, current.stderr
    assert f"{HEAD} (head)" in current.stdout
    database = Database(database_url)
    try:
        assert database.current_revision() == HEAD
    finally:
        database.dispose()
