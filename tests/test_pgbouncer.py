"""Everything through PgBouncer in transaction mode: migrations, a study's creation and real
worker processes, ending exact.

PgBouncer lends each transaction whichever of its few server connections is free, so
anything kept on a connection between transactions (a session-level lock or ``SET``, a
server-side prepared statement) breaks here: the worker processes' clients outnumber the
server connections several times over.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

import storage
from tests.harness import PostgresUnavailable, pgbouncer, pgbouncer_url, server_env
from tuner.spec import parse_spec
from tuner.studies import submit_study

pytestmark = pytest.mark.postgres
BIN = Path(sys.executable).parent
N_TRIALS = 12
SERVER_CONNECTIONS = 2  # PgBouncer's pool: 2 workers x (2 slots + heartbeat) share them


@pytest.fixture
def through_pgbouncer(postgres_url: str) -> Iterator[str]:
    """The scratch database's URL through a PgBouncer in transaction mode."""
    scratch = contextlib.ExitStack()
    try:
        port = scratch.enter_context(pgbouncer(pool_size=SERVER_CONNECTIONS))
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc} (CI=true: .ci/run installs pgbouncer)", pytrace=False)
        pytest.skip(str(exc))
    with scratch:
        yield pgbouncer_url(postgres_url, port)


def _spec() -> dict[str, object]:
    return {
        "name": "bounced",
        "task": {"model": "mlp", "hidden": [8], "dataset": "synthetic"},
        "search": {
            "initializer": ["xavier_uniform", "kaiming_normal", "orthogonal"],
            "lr": {"low": 0.01, "high": 0.3, "log": True},
            "batch_size": [64, 128],
        },
        "budget": {"n_trials": N_TRIALS, "max_epochs": 3},
        "sampler": {"name": "tpe", "options": {"n_startup_trials": 4}},
        "pruner": "median",
    }


def test_workers_through_pgbouncer_in_transaction_mode_end_exact(
    through_pgbouncer: str, postgres_url: str
) -> None:
    db = storage.Database(through_pgbouncer)
    try:
        assert db.pgbouncer
        db.upgrade()  # the migration lock is a transaction's (pg_advisory_xact_lock)
        submit_study(db, parse_spec(_spec()))
    finally:
        db.dispose()
    env = server_env({"TUNER_DATABASE_URL": through_pgbouncer})
    command = [str(BIN / "tuner"), "worker", "--study", "bounced", "--exit-when-idle",
               "--slots", "2", "--population", "1", "--heartbeat-interval", "0.2"]  # fmt: skip
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=240)[0].decode(errors="replace") for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(outputs)
    assert "prepared statement" not in "".join(outputs)

    engine = sa.create_engine(postgres_url)  # read back directly, past PgBouncer
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT trial_number FROM tuner_trial_results"))
            numbers = sorted(n for (n,) in rows)
            by_state = "SELECT state, count(*), count(DISTINCT trial_number) FROM tuner_trial_runs"
            runs = connection.execute(sa.text(by_state + " GROUP BY state")).all()
            claimed = connection.execute(sa.text("SELECT n_claimed FROM tuner_studies")).all()
    finally:
        engine.dispose()
    assert numbers == list(range(N_TRIALS))  # one row per trial, none twice, none skipped
    assert [tuple(r) for r in runs] == [("done", N_TRIALS, N_TRIALS)]  # no run claimed twice
    assert claimed == [(N_TRIALS,)]
    trials = optuna.load_study(study_name="bounced", storage=postgres_url).trials
    assert len(trials) == N_TRIALS
    assert all(t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL for t in trials)
