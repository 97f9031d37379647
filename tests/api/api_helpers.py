"""Helpers of the API tests: small specs, apps on a database, seeding rows."""

from __future__ import annotations

import datetime
from typing import Any

from fastapi.testclient import TestClient

import storage
from api import Settings, create_app

T0 = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
ADMIN = "admin-secret"
READ = "read-secret"
TOKENS = f"admin:{ADMIN},read:{READ}"


def small_spec(name: str = "s1", **overrides: Any) -> dict[str, Any]:
    """A valid study definition that is quick to check (an MLP on scikit-learn's digits)."""
    spec: dict[str, Any] = {
        "name": name,
        "task": {"model": "mlp", "hidden": [8], "dataset": "digits"},
        "budget": {"n_trials": 3, "max_epochs": 1},
    }
    spec.update(overrides)
    return spec


def make_client(url: str, tokens: str = "", **settings: Any) -> TestClient:
    """A client of a fresh app on ``url``; use it as a context manager (runs the lifespan)."""
    return TestClient(create_app(Settings(database_url=url, api_tokens=tokens, **settings)))


def db_of(client: TestClient) -> storage.Database:
    db: storage.Database = client.app.state.db  # type: ignore[attr-defined]
    return db


def add_study(
    client: TestClient, name: str, direction: str = "maximize", n_trials: int = 10
) -> str:
    """A study row written straight to storage (no Optuna study, no task check): fast."""
    with db_of(client).session() as session:
        storage.create_study_record(
            session,
            name=name,
            spec_json=small_spec(name),
            metric="val_accuracy" if direction == "maximize" else "val_loss",
            direction=direction,
            n_trials=n_trials,
        )
    return name


def result(study: str, number: int, **overrides: Any) -> storage.TrialResultData:
    fields: dict[str, Any] = {
        "study_name": study,
        "trial_number": number,
        "state": "complete",
        "stop_reason": "patience",
        "initializer": "xavier_uniform",
        "lr": 0.01,
        "weight_decay": 0.0,
        "batch_size": 64,
        "patience": 3,
        "value": 0.5,
        "best_epoch": 2,
        "epochs_run": 5,
        "duration_s": 2.0,
        "worker": "host:1",
        "device": "cpu",
        "started_at": T0 + datetime.timedelta(minutes=number),
        "finished_at": T0 + datetime.timedelta(minutes=number, seconds=2),
        "params_json": {"lr": 0.01},
    }
    fields.update(overrides)
    return storage.TrialResultData(**fields)


def add_results(client: TestClient, rows: list[storage.TrialResultData]) -> None:
    with db_of(client).session() as session:
        for row in rows:
            storage.upsert_trial_result(session, row)
