"""Regression in the built-in loop: a data file's continuous target, MSE, and the metrics
val_mse, val_mae and val_r2 against scikit-learn's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from torch import nn

import storage
from tuner.errors import SpecError
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.training import evaluate_regression


def _data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = x @ np.array([1.5, -2.0, 0.5, 0.0, 3.0]) + 0.1 * rng.normal(size=600) + 10.0
    path = tmp_path / "linear.npz"
    np.savez(path, x=x, y=y.astype(np.float32))
    return path


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_metrics_are_sklearns(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(3, 1)
    x = torch.randn(5000, 3, generator=gen)  # more rows than one evaluation chunk
    y = torch.randn(5000, generator=gen) * 2 + 1
    got = evaluate_regression(model, x, y)
    with torch.no_grad():
        pred = model(x).reshape(-1).double().numpy()
    truth = y.double().numpy()
    assert got["val_mse"] == pytest.approx(mean_squared_error(truth, pred), rel=1e-9)
    assert got["val_mae"] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-9)
    assert got["val_r2"] == pytest.approx(r2_score(truth, pred), rel=1e-9, abs=1e-12)
    assert got["val_loss"] == got["val_mse"]


def test_a_constant_target_follows_sklearns_r2_convention() -> None:
    model = nn.Linear(2, 1)
    nn.init.zeros_(model.weight)
    nn.init.constant_(model.bias, 3.0)
    x = torch.randn(10, 2)
    assert evaluate_regression(model, x, torch.full((10,), 3.0))["val_r2"] == 1.0
    assert evaluate_regression(model, x, torch.full((10,), 4.0))["val_r2"] == r2_score(
        np.full(10, 4.0), np.full(10, 3.0)
    )


def test_a_regression_study_trains_and_records_its_metric(tmp_path: Path, sqlite_url: str) -> None:
    spec = parse_spec(
        {
            "name": "reg",
            "task": {
                "model": "mlp",
                "hidden": [32],
                "dataset": {"path": str(_data(tmp_path)), "target": "y"},
                "objective": "regression",
                "optimizer": "adam",
            },
            "metric": "val_r2",
            "search": {
                "initializer": ["kaiming_normal", "xavier_uniform"],
                "lr": 0.03,
                "batch_size": 32,
            },
            "budget": {"n_trials": 2, "max_epochs": 30},
            "pruner": "none",
        }
    )
    assert spec.resolved_direction == "maximize"
    run_study(spec, database_url=sqlite_url, device="cpu", population=4)
    db = storage.Database(sqlite_url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, "reg")
            diagnostics = storage.get_layer_diagnostics(session, "reg", rows[0].trial_number)
    finally:
        db.dispose()
    assert len(rows) == 2
    assert all(r.state == "complete" and r.value is not None and r.value > 0.9 for r in rows)
    assert not any(r.manifest_json.get("population") for r in rows)  # regression trains alone
    assert diagnostics and all(d.grad_std > 0 for d in diagnostics)  # of the MSE


def test_regression_spec_rules(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as builtin:
        parse_spec({"name": "r", "task": {"objective": "regression"}, "metric": "val_mse"})
    assert builtin.value.issues[0].path == "task.objective"
    with pytest.raises(SpecError, match="val_loss, val_mse, val_mae, val_r2"):
        parse_spec(
            {
                "name": "r",
                "task": {"objective": "regression", "dataset": {"path": str(_data(tmp_path))}},
                "metric": "val_accuracy",
            }
        )
    spec = parse_spec({"name": "r", "metric": "val_loss"})
    assert spec.resolved_direction == "minimize"
