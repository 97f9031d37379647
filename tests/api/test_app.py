"""The app factory, settings, ops endpoints (health, readiness, metrics), workers, OpenAPI."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import ValidationError

import storage
from api import Settings, create_app, get_settings
from tests.api.api_helpers import add_results, add_study, db_of, make_client, result


def test_healthz_needs_no_database(sqlite_client: TestClient) -> None:
    health = sqlite_client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["initializers"] >= 19


def test_openapi_lists_every_route(sqlite_client: TestClient) -> None:
    schema = sqlite_client.get("/openapi.json").json()
    expected = {
        "/v1/studies": {"get", "post"},
        "/v1/studies/{name}": {"get"},
        "/v1/studies/{name}/cancel": {"post"},
        "/v1/studies/{name}/trials": {"get"},
        "/v1/studies/{name}/trials/{number}": {"get"},
        "/v1/studies/{name}/best": {"get"},
        "/v1/studies/{name}/summary": {"get"},
        "/v1/studies/{name}/report": {"get"},
        "/v1/workers": {"get"},
        "/v1/preflight": {"post"},
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/metrics": {"get"},
    }
    assert {path: set(ops) for path, ops in schema["paths"].items()} == expected
    trials = schema["paths"]["/v1/studies/{name}/trials"]["get"]
    ok = trials["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/TrialPage"}
    body = schema["paths"]["/v1/studies"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/StudySpec"}
    assert "search" in schema["components"]["schemas"]["StudySpec"]["properties"]
    assert sqlite_client.get("/docs").status_code == 200


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNER_DATABASE_URL", "sqlite:///./x.db")
    monkeypatch.setenv("TUNER_API_TOKENS", " admin:a1 , read:r1,read:r2 ")
    monkeypatch.setenv("TUNER_STALE_AFTER_S", "15")
    settings = Settings()
    assert settings.database_url == "sqlite:///./x.db" and settings.stale_after_s == 15
    assert settings.tokens == (("admin", "a1"), ("read", "r1"), ("read", "r2"))
    assert "a1" not in repr(settings)
    assert Settings(api_tokens="").auth_enabled is False
    for bad in ("boss:x", "admin", "read:"):
        with pytest.raises(ValidationError):
            Settings(api_tokens=bad)
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
        assert get_settings().database_url == "sqlite:///./x.db"
    finally:
        get_settings.cache_clear()


@pytest.mark.postgres
def test_an_api_process_bounds_its_connections_and_names_them(postgres_url: str) -> None:
    with make_client(postgres_url, db_connections=3, trials_threads=2) as client:
        db = db_of(client)
        assert (db.connections, db.role) == (3, "tuner-api")
        assert client.get("/v1/studies").status_code == 200
        assert db.optuna_storage().engine is db.engine  # the dashboard's reads count too
    assert Settings(database_url=postgres_url).connections == 10
    assert Settings(database_url=postgres_url, trials_threads=16).connections == 20
    with pytest.raises(ValidationError, match="must exceed TUNER_TRIALS_THREADS"):
        Settings(database_url=postgres_url, db_connections=2, trials_threads=2)


def test_readyz(client: TestClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["revision"]


def test_unreachable_database_is_not_ready_but_alive() -> None:
    app = create_app(
        Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/db?connect_timeout=2")
    )
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        studies = client.get("/v1/studies")
        assert studies.status_code == 503 and "unavailable" in studies.json()["detail"]
        assert "127.0.0.1" not in studies.text  # driver details stay in the log
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "tuner_database_up 0.0" in metrics.text


def test_readyz_migrates_once_the_database_is_reachable(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    with make_client(f"sqlite:///{folder / 'tuner.db'}") as client:  # startup cannot open it
        assert client.get("/readyz").status_code == 503
        assert client.get("/v1/studies").status_code == 503
        folder.mkdir()
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["revision"]
        assert client.get("/v1/studies").json()["total"] == 0


def test_metrics(client: TestClient) -> None:
    add_study(client, "s", n_trials=10)
    add_results(
        client,
        [
            result("s", 0, duration_s=0.5),
            result("s", 1, duration_s=10.0),
            result("s", 2, state="pruned", stop_reason="pruned", duration_s=100.0),
        ],
    )
    text = client.get("/metrics").text
    assert "tuner_database_up 1.0" in text
    assert 'tuner_trials{state="complete",study="s"} 2.0' in text
    assert 'tuner_trials{state="pruned",study="s"} 1.0' in text
    assert 'tuner_trials{state="running",study="s"} 0.0' in text
    assert "tuner_queue_depth 10.0" in text
    assert 'tuner_trial_duration_seconds_bucket{le="1.0"} 1.0' in text
    assert 'tuner_trial_duration_seconds_bucket{le="15.0"} 2.0' in text
    assert 'tuner_trial_duration_seconds_bucket{le="+Inf"} 3.0' in text
    assert "tuner_trial_duration_seconds_count 3.0" in text
    assert "tuner_trial_duration_seconds_sum 110.5" in text
    assert "tuner_workers_alive 0.0" in text


def test_workers_lists_live_ones_with_their_trials(client: TestClient) -> None:
    add_study(client, "s", n_trials=5)
    db = db_of(client)
    with db.session() as session:
        for name in ("w-live", "w-stale"):
            storage.register_worker(session, name=name, host="h", pid=7, device="cuda:0", slots=2)
        claim = storage.claim_run(session, worker="w-live", device="cuda:0")
        assert claim is not None
        storage.set_run_trial(session, claim.run_id, 0)
        storage.claim_run(session, worker="w-live", device="cuda:0")
        old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        session.execute(
            sa.update(storage.WorkerRecord)
            .where(storage.WorkerRecord.name == "w-stale")
            .values(heartbeat_at=old)
        )
    body = client.get("/v1/workers").json()
    assert body["stale_after_s"] == 60
    assert [w["name"] for w in body["items"]] == ["w-live"]
    live = body["items"][0]
    assert (live["device"], live["slots"], live["pid"], live["host"]) == ("cuda:0", 2, 7, "h")
    assert live["current"] == [
        {"study": "s", "trial_number": 0},
        {"study": "s", "trial_number": None},
    ]
    counts = client.get("/v1/studies/s").json()["counts"]
    assert counts == {"complete": 0, "pruned": 0, "fail": 0, "running": 2, "pending": 0}
    assert "tuner_workers_alive 1.0" in client.get("/metrics").text
    assert 'tuner_trials{state="running",study="s"} 2.0' in client.get("/metrics").text
