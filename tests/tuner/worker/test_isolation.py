"""A study that cannot run ends failed with its reason; the worker survives and other studies
finish. The poison cases a deployment met: a definition stored before today's validation
(an unrunnable seed, an out-of-range batch size), a data file missing on the worker's host,
a study deleted from Optuna's tables behind the service's back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

import storage
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.worker import Worker, WorkerConfig


def _healthy(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "task": {"model": "mlp", "hidden": [8], "dataset": "digits"},
        "search": {"initializer": "xavier_uniform", "lr": 0.1, "batch_size": 64},
        "budget": {"n_trials": 2, "max_epochs": 1},
        "pruner": "none",
    }


def _stored_raw(db: storage.Database, spec_json: dict[str, Any]) -> None:
    """A study as an older version (or a hand) stored it: no validation of today's."""
    optuna.create_study(study_name=spec_json["name"], storage=db.optuna_storage())
    with db.session() as session:
        storage.create_study_record(
            session,
            name=spec_json["name"],
            spec_json=spec_json,
            metric="val_accuracy",
            direction="maximize",
            n_trials=2,
        )


def _seed_too_big(db: storage.Database, tmp: Path) -> str:
    _stored_raw(db, {**_healthy("poison"), "seed": 2**70})
    return "seed"


def _batch_out_of_range(db: storage.Database, tmp: Path) -> str:
    spec = _healthy("poison")
    spec["search"] = {**spec["search"], "batch_size": 10**12}
    _stored_raw(db, spec)
    return "batch_size"


def _data_file_gone(db: storage.Database, tmp: Path) -> str:
    path = tmp / "blobs.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(100, 4)).astype(np.float32), y=rng.integers(0, 2, 100))
    spec = {**_healthy("poison"), "task": {"model": "mlp", "hidden": [8]}}
    spec["task"]["dataset"] = {"path": str(path), "target": "y"}
    submit_study(db, parse_spec(spec))
    path.unlink()  # valid when submitted; not on this worker's host
    return "blobs.npz"


def _deleted_from_optuna(db: storage.Database, tmp: Path) -> str:
    submit_study(db, parse_spec(_healthy("poison")))
    optuna.delete_study(study_name="poison", storage=db.optuna_storage())  # the dashboard's
    return "poison"


@pytest.mark.parametrize(
    "poison", [_seed_too_big, _batch_out_of_range, _data_file_gone, _deleted_from_optuna]
)
def test_a_study_that_cannot_run_fails_alone(
    database: storage.Database,
    tmp_path: Path,
    poison: Callable[[storage.Database, Path], str],
) -> None:
    said = poison(database, tmp_path)
    submit_study(database, parse_spec(_healthy("healthy")))
    config = WorkerConfig(
        device="cpu",
        population=1,
        poll_interval=0.01,
        exit_when_idle=True,
        studies=["poison", "healthy"],
    )
    worker = Worker(database, config)
    assert worker.run() == 2  # returns (never raises), having run the healthy study
    with database.session() as session:
        bad = storage.get_study_record(session, "poison")
        good = storage.get_study_record(session, "healthy")
        runs = storage.count_runs_by_state(session, "poison")
    assert bad is not None and bad.status == "failed"
    assert bad.error is not None and said in bad.error
    assert runs.get("running", 0) == 0 and runs.get("pending", 0) == 0
    assert good is not None and good.status == "completed"
    if poison is not _deleted_from_optuna:
        study = optuna.load_study(study_name="poison", storage=database.optuna_storage())
        assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_the_api_and_the_cli_say_why_a_study_failed(
    database: storage.Database, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tuner.cli import app

    _seed_too_big(database, tmp_path)
    Worker(database, WorkerConfig(device="cpu", exit_when_idle=True, studies=["poison"])).run()
    result = CliRunner().invoke(app, ["status", "poison", "--database-url", database.url])
    assert result.exit_code == 0, result.output
    assert "failed" in result.output and "seed" in result.output
