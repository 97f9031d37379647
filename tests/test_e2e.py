"""End to end through real HTTP (uvicorn in a subprocess) and worker processes, on PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import optuna
import pytest
import sqlalchemy as sa

from tests.harness import free_port, server_env, serving, uvicorn_factory

pytestmark = pytest.mark.postgres
BIN = Path(sys.executable).parent
DEADLINE_S = 240.0  # generous bound for every wait: an event, never a fixed sleep


def _env(url: str) -> dict[str, str]:
    # one torch thread per process: several workers on 2 cores must not oversubscribe them
    return server_env({"TUNER_DATABASE_URL": url, "TUNER_API_TOKENS": ""})


def _wait_for(what: str, check: Any, timeout: float = DEADLINE_S) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.05)  # polling an external process's state; the bound is `timeout`
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def server(postgres_url: str) -> Iterator[tuple[str, str]]:
    port = free_port()
    with serving(uvicorn_factory("api:create_app", port), port, env=_env(postgres_url)) as api:
        yield api.base_url, postgres_url


def _worker(url: str, study: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "tuner"),
            "worker",
            "--study",
            study,
            "--exit-when-idle",
            "--heartbeat-interval",
            "0.2",
            "--grace",
            "3",
            *extra,
        ],
        env=_env(url),
    )


def _spec(name: str, n_trials: int, max_epochs: int, **search: Any) -> dict[str, Any]:
    return {
        "name": name,
        "task": {"model": "mlp", "hidden": [32], "dataset": "digits"},
        "search": {
            "initializer": ["xavier_normal", "kaiming_normal", "orthogonal"],
            "lr": {"low": 0.01, "high": 0.2, "log": True},
            "batch_size": [64, 128],
            **search,
        },
        "budget": {"n_trials": n_trials, "max_epochs": max_epochs},
        "pruner": "none",
    }


def _sql(url: str, query: str) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as con:
            return list(con.execute(sa.text(query)))
    finally:
        engine.dispose()


def test_three_workers_end_with_exactly_n_trials(server: tuple[str, str]) -> None:
    base, url = server
    created = httpx.post(f"{base}/v1/studies", json=_spec("race", 8, 3), timeout=60)
    assert created.status_code == 201, created.text
    workers = [_worker(url, "race") for _ in range(3)]
    assert [w.wait(timeout=DEADLINE_S) for w in workers] == [0, 0, 0]

    study = httpx.get(f"{base}/v1/studies/race").json()
    assert study["status"] == "completed"
    trials = httpx.get(f"{base}/v1/studies/race/trials", params={"limit": 100}).json()
    assert trials["total"] == 8
    numbers = sorted(t["trial_number"] for t in trials["items"])
    assert numbers == list(range(8))  # distinct, none skipped, none extra
    assert {t["state"] for t in trials["items"]} == {"complete"}
    assert len({t["worker"] for t in trials["items"]}) >= 2  # the work was really shared
    assert _sql(url, "select count(*) from tuner_trial_runs where state = 'done'") == [(8,)]
    optuna_trials = optuna.load_study(study_name="race", storage=url).trials
    assert len(optuna_trials) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in optuna_trials)


def test_a_sigkilled_worker_is_replaced_and_no_row_is_lost(server: tuple[str, str]) -> None:
    base, url = server
    spec = _spec("kill", 3, 40, lr=0.05, patience=40)  # long trials: the kill lands mid-trial
    assert httpx.post(f"{base}/v1/studies", json=spec, timeout=60).status_code == 201
    victim = _worker(url, "kill", "--population", "1")  # one trial running when killed

    (killed_number,) = _wait_for("a trial to report an epoch", _mid_trial(url))[0]
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    # Nobody told Optuna or wrote a row: the trial is still RUNNING, its run still held.
    assert _sql(url, f"select state from trials where number = {killed_number}") == [("RUNNING",)]

    rescuer = _worker(url, "kill")
    assert rescuer.wait(timeout=DEADLINE_S) == 0

    rows = {
        r["trial_number"]: r
        for r in httpx.get(f"{base}/v1/studies/kill/trials", params={"limit": 100}).json()["items"]
    }
    lost = rows[killed_number]
    assert (lost["state"], lost["stop_reason"]) == ("fail", "error")
    assert "lost" in lost["error"] and "retrying" in lost["error"]
    finished = [r for r in rows.values() if r["state"] == "complete"]
    assert len(finished) == 3  # exactly the budget
    retry = [r for r in finished if r["params_json"] == lost["params_json"]]
    assert len(retry) == 1  # the same configuration (and seeds), run again
    assert len(rows) == 4  # the failed attempt kept its row: nothing lost
    assert _sql(url, "select count(*) from tuner_trial_runs where state = 'done'") == [(3,)]
    assert httpx.get(f"{base}/v1/studies/kill").json()["status"] == "completed"


def _mid_trial(url: str) -> Any:
    def check() -> list[Any]:
        return _sql(
            url,
            """
            select t.number from trials t join trial_intermediate_values v using (trial_id)
            where t.state = 'RUNNING' group by t.number""",
        )

    return check


def test_sigterm_hands_the_running_trial_back(server: tuple[str, str]) -> None:
    base, url = server
    spec = _spec("term", 2, 400, lr=0.05, patience=400)  # trials far longer than the test
    assert httpx.post(f"{base}/v1/studies", json=spec, timeout=60).status_code == 201
    # flush reports every 0.2 s so the running trial's epochs show in the database
    first = _worker(url, "term", "--population", "1")  # one trial running
    (number,) = _wait_for("a trial to report an epoch", _mid_trial(url))[0]
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0  # a clean exit, at the next epoch
    (row,) = _sql(
        url,
        f"select state, stop_reason, error from tuner_trial_results where trial_number = {number}",
    )
    assert row[:2] == ("fail", "error") and "handed back" in row[2]
    pending = _sql(url, "select attempt, retry_of from tuner_trial_runs where state = 'pending'")
    assert pending == [(0, number)]  # the same configuration, queued again, no retry spent
    assert _sql(url, f"select state from trials where number = {number}") == [("FAIL",)]


def test_cancel_stops_new_trials_and_ends_running_ones(server: tuple[str, str]) -> None:
    base, url = server
    spec = _spec("stop", 5, 400, lr=0.05, patience=400)
    assert httpx.post(f"{base}/v1/studies", json=spec, timeout=60).status_code == 201
    worker = _worker(url, "stop", "--population", "1")  # one trial running
    (number,) = _wait_for("a trial to report an epoch", _mid_trial(url))[0]
    assert httpx.post(f"{base}/v1/studies/stop/cancel").status_code == 202
    assert worker.wait(timeout=60) == 0  # the running trial ended; nothing new was claimed
    study = httpx.get(f"{base}/v1/studies/stop").json()
    assert study["status"] == "cancelled"
    rows = httpx.get(f"{base}/v1/studies/stop/trials").json()["items"]
    assert [(r["trial_number"], r["stop_reason"]) for r in rows] == [(number, "cancelled")]
    assert rows[0]["epochs_run"] < 400
