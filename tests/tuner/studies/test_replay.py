"""Replay: a recorded CPU trial re-runs to exactly its stored metric."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

import storage
from tuner.cli import app
from tuner.errors import TunerError
from tuner.spec import parse_spec
from tuner.studies import replay_trial, run_study


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'r.db'}"
    spec = parse_spec(
        {
            "name": "rp",
            "task": {"model": "mlp", "hidden": [24], "dataset": "digits"},
            "search": {
                "initializer": ["kaiming_uniform", "lsuv", {"name": "normal", "std": 0.05}],
                "lr": {"low": 0.01, "high": 0.3, "log": True},
                "weight_decay": [0.0, 1.0e-4],
                "batch_size": [32, 128],
                "patience": 1,
            },
            "budget": {"n_trials": 3, "max_epochs": 4},
            "replicates": 2,
            "seed": 3,
            "pruner": "none",
        }
    )
    run_study(spec, database_url=url, device="cpu")
    return url


def test_every_trial_reproduces_exactly(recorded: str) -> None:
    db = storage.Database(recorded)
    try:
        for number in range(3):
            result = replay_trial(db, "rp", number)
            assert result.stored_value is not None
            assert result.outcome.value == result.stored_value  # exact, not approximate
            assert result.matches, (number, result.outcome.value, result.stored_value)
            assert result.version_drift == {}
            assert result.exact and result.note is None
        # a trial recorded before 0.3.0, when names took their gain from the activation
        old = dataclasses.replace(result, version_drift={"init-tuner": ("0.2.0", "0.3.0")})
        assert old.names_changed and not old.exact
        assert old.note is not None and "init-tuner 0.2.0" in old.note
        newer = dataclasses.replace(result, version_drift={"init-tuner": ("0.3.0", "0.3.1")})
        assert not newer.names_changed and newer.exact
    finally:
        db.dispose()


def test_cli_says_reproduced_and_exits_1_on_a_difference(recorded: str) -> None:
    ok = CliRunner().invoke(app, ["replay", "rp", "0", "--database-url", recorded])
    assert ok.exit_code == 0, ok.output
    assert "reproduced exactly" in ok.output
    db = storage.Database(recorded)
    try:
        with db.session() as session:  # tamper with the record: the replay must notice
            session.execute(
                sa.update(storage.TrialResult)
                .where(storage.TrialResult.trial_number == 1)
                .values(value=storage.TrialResult.value + 1e-9)
            )
    finally:
        db.dispose()
    bad = CliRunner().invoke(app, ["replay", "rp", "1", "--database-url", recorded])
    assert bad.exit_code == 1
    assert "differs" in bad.output


def test_unknown_trial_is_a_clear_error(recorded: str) -> None:
    db = storage.Database(recorded)
    try:
        with pytest.raises(TunerError, match="has no recorded trial 99"):
            replay_trial(db, "rp", 99)
        with pytest.raises(TunerError, match="no study named 'nope'"):
            replay_trial(db, "nope", 0)
    finally:
        db.dispose()


def test_manifest_names_what_ran(recorded: str, tmp_path: Path) -> None:
    db = storage.Database(recorded)
    try:
        with db.session() as session:
            row = storage.get_trial_result(session, "rp", 0)
            assert row is not None and row.manifest_json is not None
            manifest = row.manifest_json
    finally:
        db.dispose()
    assert {"torch", "numpy", "optuna", "python"} <= set(manifest["versions"])
    assert manifest["device"] == "cpu" and "num_threads" in manifest["deterministic"]
    assert len(manifest["seeds"]) == 2
    layers = manifest["layers"]
    assert [layer["kind"] for layer in layers] == ["Linear", "Linear"]
    assert all("params" in layer and "std" in layer for layer in layers)


@pytest.fixture
def two_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("two_threads")
def test_trials_trained_as_a_population_reproduce_exactly(tmp_path: Path) -> None:
    # On two threads a batched matmul is split by the stack's size, so a stack of one
    # could differ in the last bits: a replay re-runs the recorded population.
    url = f"sqlite:///{tmp_path / 'pop.db'}"
    spec = parse_spec(
        {
            "name": "pop",
            "task": {"model": "mlp", "hidden": [32, 32], "dataset": "digits"},
            "metric": "val_loss",  # a continuous metric: exactness is not luck of rounding
            "search": {
                "initializer": ["xavier_normal", "kaiming_normal", "orthogonal"],
                "lr": {"low": 0.01, "high": 0.3, "log": True},
                "batch_size": [64],
                "patience": {"low": 1, "high": 3},
            },
            "budget": {"n_trials": 4, "max_epochs": 5},
            "sampler": "random",
            "pruner": "none",
        }
    )
    run_study(spec, database_url=url, device="cpu", population=4)
    db = storage.Database(url)
    try:
        for number in range(4):
            with db.session() as session:
                row = storage.get_trial_result(session, "pop", number)
                assert row is not None and row.manifest_json is not None
                assert row.manifest_json["population"]["size"] >= 2
            result = replay_trial(db, "pop", number)
            assert result.matches, (number, result.outcome.value, result.stored_value)
    finally:
        db.dispose()


@pytest.fixture
def gpu_recorded(recorded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A copy of the study whose trial 2 says it ran on cuda:0; this host has no GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    copy = tmp_path / "gpu.db"
    shutil.copyfile(recorded.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    db = storage.Database(url)
    try:
        with db.session() as session:
            row = storage.get_trial_result(session, "rp", 2)
            assert row is not None and row.manifest_json is not None
            manifest = {**row.manifest_json, "device": "cuda:0"}
            session.execute(
                sa.update(storage.TrialResult)
                .where(storage.TrialResult.trial_number == 2)
                .values(manifest_json=manifest)
            )
    finally:
        db.dispose()
    return url


def test_a_gpu_trial_is_not_replayed_on_the_cpu_by_default(gpu_recorded: str) -> None:
    db = storage.Database(gpu_recorded)
    try:
        with pytest.raises(TunerError) as caught:
            replay_trial(db, "rp", 2)
    finally:
        db.dispose()
    said = str(caught.value)
    assert said.startswith(
        "trial 2 of 'rp' ran on cuda:0 and cannot be replayed exactly on this host ("
    )
    assert said.endswith("); pass --device cpu to replay it anyway, not exactly")
    assert "\n" not in said
    cli = CliRunner().invoke(app, ["replay", "rp", "2", "--database-url", gpu_recorded])
    assert cli.exit_code == 1
    assert str(cli.exception) == said


def test_a_gpu_trial_replayed_on_the_cpu_says_it_is_not_exact(gpu_recorded: str) -> None:
    db = storage.Database(gpu_recorded)
    try:
        result = replay_trial(db, "rp", 2, device="cpu")
    finally:
        db.dispose()
    assert (result.recorded_device, result.replayed_device) == ("cuda:0", "cpu")
    assert not result.exact
    assert result.note == "not exact: recorded on cuda:0, replayed on cpu"
    assert result.outcome.device == "cpu" and result.outcome.value is not None
    args = ["replay", "rp", "2", "--database-url", gpu_recorded, "--device", "cpu"]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert "not exact: recorded on cuda:0, replayed on cpu" in cli.output
    assert "differs" not in cli.output and "reproduced exactly" not in cli.output


def test_a_cpu_trial_replays_on_the_cpu_by_default(gpu_recorded: str) -> None:
    db = storage.Database(gpu_recorded)  # trial 0 still says cpu
    try:
        result = replay_trial(db, "rp", 0)
    finally:
        db.dispose()
    assert result.exact and result.note is None
    assert result.replayed_device == "cpu" and result.matches
