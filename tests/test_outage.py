"""The database goes away mid-study: two worker processes and the API on a private
PostgreSQL cluster, restarted (a short outage) or stopped for longer than the lease grace.
Both workers live through it and the study ends with exactly its budget, nothing left
RUNNING."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import optuna
import pytest

import storage
from tests.harness import (
    PostgresUnavailable,
    PrivatePostgres,
    free_port,
    private_postgres,
    server_env,
    serving,
    tuner_serve,
)
from tuner.spec import parse_spec
from tuner.studies import submit_study

N_TRIALS = 8
GRACE_S = 3.0
DEADLINE_S = 180.0

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    try:
        with private_postgres() as pg:
            yield pg
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


def _finished(url: str) -> tuple[str, int]:
    """The study's status and results rows; ("away", -1) while the database is down."""
    db = storage.Database(url)
    try:
        with db.session() as session:
            record = storage.get_study_record(session, "outage")
            rows = storage.count_trial_results(session, "outage")
        return (record.status if record else "missing"), rows
    except storage.StorageError:
        return "away", -1
    finally:
        db.dispose()


def _runs(url: str) -> str:
    """The study's runs, one line each: what a failure message shows."""
    db = storage.Database(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, state, trial_number, attempt, retry_of, worker, finished_at IS NULL"
                " FROM tuner_trial_runs ORDER BY id"
            ).all()
            study = conn.exec_driver_sql("SELECT status, n_claimed, error FROM tuner_studies").all()
        return "\n".join([str(study), *map(str, rows)])
    except Exception as exc:
        return f"(runs unreadable: {exc})"
    finally:
        db.dispose()


def _await(condition: object, what: str, url: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}; runs:\n{_runs(url)}"
        time.sleep(0.1)


@contextlib.contextmanager
def _workers(url: str, n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    command = [
        str(Path(sys.executable).with_name("tuner")), "worker", "--database-url", url,
        "--study", "outage",
        "--population", "1", "--heartbeat-interval", "0.5", "--grace", str(GRACE_S),
    ]  # fmt: skip
    procs = [subprocess.Popen(command, env=server_env()) for _ in range(n)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)


@pytest.mark.parametrize("outage", ["restart", "longer-than-grace"])
def test_workers_and_the_api_ride_out_the_database_going_away(
    cluster: PrivatePostgres, outage: str, tmp_path: Path
) -> None:
    url, gate = cluster.url, tmp_path / "gate"
    db = storage.Database(url)
    db.upgrade()
    spec = {
        "name": "outage",
        # trials 0 and 1 train at once; the rest wait for the gate, which opens only once
        # the database is going away: the outage is mid-study by construction, not by timing
        "task": {"plugin": "gated", "gate": str(gate), "open_trials": 2},
        "metric": "val_loss",
        "direction": "minimize",
        "search": {"initializer": ["xavier_uniform", "kaiming_normal"], "lr": 0.05,
                   "batch_size": 32, "patience": 50},
        "budget": {"n_trials": N_TRIALS, "max_epochs": 12, "max_retries": 3},
        "pruner": "none",
    }  # fmt: skip
    submit_study(db, parse_spec(spec))
    db.dispose()
    port = free_port()
    api = serving(tuner_serve(port, "--workers", "0", "--database-url", url), port)
    with api as server, _workers(url, 2) as workers:
        _await(lambda: _finished(url)[1] >= 2, "two finished trials", url)
        assert _finished(url)[1] == 2  # the others are held at the gate
        if outage == "restart":
            gate.touch()
            cluster.restart()
        else:
            cluster.stop()
            gate.touch()
            ready = httpx.get(f"{server.base_url}/readyz", timeout=10)
            assert ready.status_code == 503  # the API says so, and stays up
            time.sleep(GRACE_S + 1.0)  # the outage outlasts every lease (its precondition)
            cluster.start()
        _await(lambda: _finished(url) == ("completed", N_TRIALS) or
               _finished(url)[1] > N_TRIALS, "the study to end", url)  # fmt: skip
        assert [w.poll() for w in workers] == [None, None]  # both alive
        assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200
    db = storage.Database(url)
    try:
        with db.session() as session:
            record = storage.get_study_record(session, "outage")
            runs = storage.count_runs_by_state(session, "outage")
            unsettled = storage.unsettled_runs(session, ["outage"])
            rows = storage.list_trial_results(session, "outage", limit=100)
        study = optuna.load_study(study_name="outage", storage=db.optuna_storage())
    finally:
        db.dispose()
    assert record is not None and record.status == "completed"
    assert runs.get("done", 0) == N_TRIALS  # exactly the budget, no lost row
    assert len(rows) >= N_TRIALS  # lost or handed-back attempts are recorded beside them
    assert runs.get("running", 0) == 0 and runs.get("pending", 0) == 0 and unsettled == 0
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
