"""The ``tuner_`` tables and Optuna's share one database; Optuna's tools still read it."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import optuna_dashboard
import pytest
import sqlalchemy as sa

from storage import Database, TrialResultData, list_trial_results, upsert_trial_result
from tests.storage.test_migrations import HEAD

OPTUNA_TABLES = {"studies", "trials", "trial_values", "version_info", "alembic_version"}
TUNER_TABLES = {"tuner_studies", "tuner_trial_results", "tuner_alembic_version"}


def _optuna_study(database: Database, name: str = "study") -> optuna.Study:
    study = optuna.create_study(
        storage=database.optuna_storage(), study_name=name, direction="maximize"
    )
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1.0, log=True), n_trials=2)
    return study


def _version(database: Database, table: str) -> str:
    with database.engine.connect() as conn:
        return str(conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalar_one())


@pytest.mark.parametrize("optuna_first", [True, False], ids=["optuna-first", "tuner-first"])
def test_tuner_and_optuna_tables_coexist(
    database_url: str,
    optuna_first: bool,
    make_result: Callable[..., TrialResultData],
    add_study: Callable[..., str],
) -> None:
    database = Database(database_url)
    try:
        if optuna_first:
            _optuna_study(database)
            database.upgrade()
        else:
            database.upgrade()
            _optuna_study(database)
        database.upgrade()  # and again: each side leaves the other alone

        tables = set(sa.inspect(database.engine).get_table_names())
        assert tables >= OPTUNA_TABLES | TUNER_TABLES
        assert _version(database, "tuner_alembic_version") == HEAD
        optuna_revision = _version(database, "alembic_version")
        assert optuna_revision != HEAD
        assert optuna_revision.startswith("v")

        add_study("study")
        with database.session() as session:
            upsert_trial_result(session, make_result(0))
            assert len(list_trial_results(session, "study")) == 1
        loaded = optuna.load_study(study_name="study", storage=database.optuna_storage())
        assert len(loaded.trials) == 2
    finally:
        database.dispose()


@pytest.fixture
def shared(database: Database) -> Iterable[Database]:
    """A database holding an Optuna study ``shared-study`` and our tables."""
    _optuna_study(database, "shared-study")
    database.dispose()  # let the external readers below have the database to themselves
    yield database


def _optuna_cli() -> list[str]:
    if importlib.util.find_spec("optuna.__main__") is not None:
        return [sys.executable, "-m", "optuna"]
    script = Path(sys.executable).with_name("optuna")
    assert script.exists(), f"no `python -m optuna` and no {script}"
    return [str(script)]


def test_optuna_cli_reads_the_database(shared: Database) -> None:
    done = subprocess.run(
        [*_optuna_cli(), "studies", "--storage", shared.url, "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    studies = json.loads(done.stdout)
    assert [(s["name"], s["n_trials"]) for s in studies] == [("shared-study", 2)]


def test_optuna_dashboard_lists_the_study(shared: Database) -> None:
    app = optuna_dashboard.wsgi(shared.url)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/studies",
        "wsgi.input": io.BytesIO(b""),
    }
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(code)
        return lambda _: None

    body = b"".join(app(environ, start_response))
    assert status == ["200 OK"]
    studies = json.loads(body)["study_summaries"]  # sic: dashboard 0.21's key
    assert [(s["study_name"], s["directions"]) for s in studies] == [("shared-study", ["maximize"])]
