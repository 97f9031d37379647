"""Fixtures for the storage tests: a study row and a factory for trial results."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest

from storage import Database, TrialResultData, create_study_record

T0 = datetime.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)

MakeResult = Callable[..., TrialResultData]


@pytest.fixture
def make_result() -> MakeResult:
    """Build a valid ``TrialResultData``; keyword arguments override any field."""

    def make(trial_number: int = 0, **overrides: Any) -> TrialResultData:
        fields: dict[str, Any] = {
            "study_name": "study",
            "trial_number": trial_number,
            "state": "complete",
            "stop_reason": "patience",
            "initializer": "xavier_uniform",
            "lr": 0.01,
            "weight_decay": 1e-4,
            "batch_size": 64,
            "patience": 3,
            "value": 0.5,
            "best_epoch": 4,
            "epochs_run": 7,
            "duration_s": 12.5,
            "worker": "host-1:123",
            "device": "cpu",
            "started_at": T0 + datetime.timedelta(minutes=trial_number),
            "finished_at": T0 + datetime.timedelta(minutes=trial_number, seconds=12.5),
            "params_json": {"lr": 0.01, "initializer": {"name": "xavier_uniform", "gain": 1.0}},
        }
        fields.update(overrides)
        return TrialResultData(**fields)

    return make


@pytest.fixture
def add_study(database: Database) -> Callable[..., str]:
    """Create a study row in ``database``: ``add_study(name, direction)``; returns the name."""

    def add(name: str = "study", direction: str = "maximize") -> str:
        with database.session() as session:
            create_study_record(
                session,
                name=name,
                spec_json={"name": name, "metric": "val_accuracy"},
                metric="val_accuracy" if direction == "maximize" else "val_loss",
                direction=direction,
                n_trials=10,
            )
        return name

    return add


@pytest.fixture
def study(add_study: Callable[..., str]) -> str:
    """A maximizing study called ``study`` in ``database``; its name."""
    return add_study("study", "maximize")
