"""Database: URL resolution, engine setup, sessions and error translation."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.exc

import storage
from storage import (
    Database,
    StorageError,
    StudyRecord,
    TrialResult,
    get_study_record,
    resolve_database_url,
    upsert_trial_result,
)


def test_resolve_database_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNER_DATABASE_URL", raising=False)
    assert resolve_database_url() == "sqlite:///./tuner.db"
    assert resolve_database_url(None) == "sqlite:///./tuner.db"

    monkeypatch.setenv("TUNER_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert resolve_database_url() == "postgresql+psycopg://u@h/db"
    assert resolve_database_url("sqlite:///x.db") == "sqlite:///x.db"

    monkeypatch.setenv("TUNER_DATABASE_URL", "  ")
    assert resolve_database_url() == "sqlite:///./tuner.db"


def test_driverless_postgres_url_uses_psycopg3() -> None:
    db = Database("postgresql://user@localhost:5432/db")
    try:
        assert db.url == "postgresql+psycopg://user@localhost:5432/db"
        assert db.engine.dialect.driver == "psycopg"
    finally:
        db.dispose()


def test_bad_url_is_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot use database URL"):
        Database("nosuchdialect://x")


def test_unreachable_server_is_storage_error() -> None:
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nope?connect_timeout=2")
    try:
        with pytest.raises(StorageError) as info:
            db.upgrade()
        assert isinstance(info.value.__cause__, sqlalchemy.exc.OperationalError)
        with pytest.raises(StorageError), db.session() as session:
            session.execute(sa.text("SELECT 1"))
        with pytest.raises(StorageError):
            db.optuna_storage()
        with pytest.raises(StorageError):
            db.current_revision()
    finally:
        db.dispose()


def test_sqlite_file_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        db.dispose()


def test_sqlite_memory_database_is_shared_across_sessions() -> None:
    db = Database("sqlite://")
    try:
        db.upgrade()
        with db.session() as session:
            storage.create_study_record(
                session, name="m", spec_json={}, metric="val_loss", direction="minimize", n_trials=1
            )
        with db.session() as session:
            assert get_study_record(session, "m") is not None
    finally:
        db.dispose()


def test_session_commits_on_success(database: Database, study: str) -> None:
    with database.session() as session:
        record = get_study_record(session, study)
        assert record is not None
        assert record.status == "queued"
    # expire_on_commit=False: loaded objects stay readable after the block.
    assert record.name == study


def test_session_rolls_back_and_reraises_non_db_errors(database: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.session() as session:
        storage.create_study_record(
            session, name="gone", spec_json={}, metric="m", direction="maximize", n_trials=1
        )
        session.flush()
        raise Boom
    with database.session() as session:
        assert get_study_record(session, "gone") is None


def test_session_translates_db_errors(database: Database) -> None:
    with pytest.raises(StorageError) as info, database.session() as session:
        session.execute(sa.text("SELECT * FROM no_such_table"))
    assert isinstance(info.value.__cause__, sqlalchemy.exc.SQLAlchemyError)
    assert not isinstance(info.value, sqlalchemy.exc.SQLAlchemyError)


def test_timestamps_are_aware_utc(
    database: Database, study: str, make_result: Callable[..., storage.TrialResultData]
) -> None:
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    started = datetime.datetime(2025, 6, 1, 14, 0, tzinfo=plus2)
    with database.session() as session:
        upsert_trial_result(session, make_result(0, started_at=started))
    with database.session() as session:
        record = get_study_record(session, study)
        row = session.scalars(sa.select(TrialResult)).one()
    assert record is not None
    for moment in (record.created_at, record.updated_at, row.started_at, row.finished_at):
        assert moment.tzinfo is not None
        assert moment.utcoffset() == datetime.timedelta(0)
    assert row.started_at == datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)


def test_naive_timestamps_are_refused(make_result: Callable[..., storage.TrialResultData]) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_result(0, started_at=datetime.datetime(2025, 1, 1))


def test_deleting_a_study_cascades_to_its_results(
    database: Database, study: str, make_result: Callable[..., storage.TrialResultData]
) -> None:
    with database.session() as session:
        upsert_trial_result(session, make_result(0))
        upsert_trial_result(session, make_result(1))
    with database.session() as session:
        session.execute(sa.delete(StudyRecord).where(StudyRecord.name == study))
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(TrialResult)) == 0


def test_relationships_never_lazy_load(database: Database, study: str) -> None:
    with database.session() as session:
        record = get_study_record(session, study)
        assert record is not None
        with pytest.raises(sqlalchemy.exc.InvalidRequestError):
            _ = record.trial_results


def test_optuna_storage_is_cached_and_disposed(database: Database) -> None:
    first = database.optuna_storage()
    assert database.optuna_storage() is first
    database.dispose()
    second = database.optuna_storage()
    assert second is not first
    # The engine is usable again after dispose().
    with database.session() as session:
        assert session.execute(sa.text("SELECT 1")).scalar() == 1


def test_storage_imports_neither_torch_nor_the_other_packages() -> None:
    code = (
        "import sys, storage; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tuner', 'api')); "
        "sys.exit(str(bad) if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr


def test_public_api_is_curated() -> None:
    assert set(storage.__all__) == {name for name in dir(storage) if not name.startswith("_")} - {
        "annotations"
    }
    for name in storage.__all__:
        assert getattr(storage, name) is not None
