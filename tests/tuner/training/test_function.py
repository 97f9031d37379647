"""Tasks that train with their own function: the context they get, and every trial's record."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import sqlalchemy as sa
import torch
from torch import nn
from typer.testing import CliRunner

import storage
from tuner.cli import app
from tuner.errors import SpecError, TaskError
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.studies import replay_trial, run_study
from tuner.tasks import Task
from tuner.training import EpochStats, FunctionTrial, StopReason, TrainConfig, execute_trial


def _own_loop(name: str, **overrides: Any) -> Any:
    spec: dict[str, Any] = {
        "name": name,
        "task": {"plugin": "own-loop"},
        "metric": "val_error",
        "direction": "minimize",
        "search": {
            "initializer": ["xavier_uniform", "kaiming_normal"],
            "lr": {"low": 0.03, "high": 0.3, "log": True},
            "batch_size": 128,
            "patience": 2,
            "width": [16, 32],
            "dropout": {"low": 0.0, "high": 0.3},
        },
        "budget": {"n_trials": 3, "max_epochs": 2},
        "pruner": "none",
        "seed": 5,
    }
    spec.update(overrides)
    return parse_spec(spec)


def _scripted(name: str, values: list[Any], **overrides: Any) -> Any:
    spec: dict[str, Any] = {
        "name": name,
        "task": {"plugin": "scripted", "values": values},
        "metric": "score",
        "direction": "maximize",
        "search": {"initializer": "orthogonal", "lr": 0.1, "batch_size": 32, "patience": 2},
        "budget": {"n_trials": 1, "max_epochs": 10, "max_retries": 0},
        "pruner": "none",
    }
    spec.update(overrides)
    return parse_spec(spec)


def _rows(url: str, name: str) -> list[storage.TrialResult]:
    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, name)
            session.expunge_all()
        return rows
    finally:
        db.dispose()


def test_a_training_function_runs_end_to_end_and_lands_like_any_trial(database_url: str) -> None:
    spec = _own_loop("own-e2e")
    summary = run_study(spec, database_url=database_url, device="cpu")
    assert summary.finished == 3 and summary.complete
    rows = _rows(database_url, "own-e2e")
    assert sorted(r.trial_number for r in rows) == [0, 1, 2]
    for row in rows:
        assert row.state == "complete" and row.value is not None and 0.0 <= row.value <= 1.0
        assert row.stop_reason in ("max_epochs", "patience") and row.epochs_run <= 2
        extra = row.params_json["extra"]
        assert extra["width"] in (16, 32) and 0.0 <= extra["dropout"] <= 0.3
        layers = row.manifest_json["layers"]
        assert [layer["layer"] for layer in layers] == ["0", "3"]  # the two Linear layers
        assert row.manifest_json["task_function"]["initialized"] is True
    db = storage.Database(database_url)
    try:
        with db.session() as session:
            diagnostics = storage.get_layer_diagnostics(session, "own-e2e", rows[0].trial_number)
            signal = storage.get_trial_signal(session, "own-e2e", rows[0].trial_number)
        study = optuna.load_study(study_name="own-e2e", storage=db.optuna_storage())
        trial = study.trials[0]
        assert set(trial.params) >= {"initializer", "lr", "width", "dropout"}
        assert len(trial.intermediate_values) == rows[0].epochs_run  # one report per epoch
    finally:
        db.dispose()
    assert [d.name for d in diagnostics] == ["0", "3"]
    assert all(d.grad_std > 0 for d in diagnostics)
    # The signal at t=0 of the model given to ctx.init: its Jacobian on 32 calibration rows;
    # no mean field for a ReLU net, and the reason is kept.
    assert signal is not None and signal.jacobian_samples == 32
    assert signal.jacobian_mean_sq is not None and signal.jacobian_mean_sq > 0
    assert signal.chi_1 is None and "ReLU" in (signal.mean_field_skipped or "")


def test_extra_dimensions_are_queryable_in_plain_sql(database_url: str) -> None:
    run_study(_own_loop("own-sql"), database_url=database_url, device="cpu")
    engine = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"))
    width = (
        "json_extract(params_json, '$.extra.width')"
        if engine.dialect.name == "sqlite"
        else "(params_json->'extra'->>'width')::int"
    )
    query = f"select {width} as width, count(*) from tuner_trial_results "
    query += "where study_name = 'own-sql' group by 1 order by 1"
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text(query)).all())
    engine.dispose()
    assert set(counts) <= {16, 32} and sum(counts.values()) == 3


@pytest.mark.parametrize(
    ("values", "stop", "state", "epochs", "value"),
    [
        ([0.5, 0.6, 0.6, 0.6, 0.6], "patience", "complete", 4, 0.6),
        ([0.5, 0.7, "nan", 0.9], "diverged", "complete", 3, 0.7),
        ([0.5, 0.6], "max_epochs", "complete", 2, 0.6),  # the function's own loop ended
        ([0.5, "raise"], "error", "fail", 1, None),
    ],
)
def test_each_stop_rule_ends_a_function_trial_with_its_reason(
    sqlite_url: str, values: list[Any], stop: str, state: str, epochs: int, value: float | None
) -> None:
    run_study(_scripted("scripted", values), database_url=sqlite_url, device="cpu")
    (row,) = _rows(sqlite_url, "scripted")
    assert (row.stop_reason, row.state, row.epochs_run, row.value) == (stop, state, epochs, value)
    if state == "fail":
        assert row.error == "RuntimeError: scripted failure at epoch 2"


def test_the_epoch_limit_is_the_studys(sqlite_url: str) -> None:
    spec = _scripted("limit", [0.1, 0.2, 0.3, 0.4, 0.5], budget={"n_trials": 1, "max_epochs": 3})
    run_study(spec, database_url=sqlite_url, device="cpu")
    (row,) = _rows(sqlite_url, "limit")
    assert (row.stop_reason, row.epochs_run, row.value) == ("max_epochs", 3, 0.3)


def _context(hook: Any = None, **config: Any) -> FunctionTrial:
    params = TrialParams("orthogonal", "orthogonal", 0.1, 0.0, 32, 2, extra={"width": 8})
    task = Task("t", "tanh", None, None, "sgd", 0.9)
    settings = {"metric": "score", "direction": "maximize", "max_epochs": 10, **config}
    cfg = TrainConfig(lr=0.1, weight_decay=0.0, batch_size=32, patience=2, **settings)
    return FunctionTrial(
        number=0,
        params=params,
        task=task,
        config=cfg,
        device=torch.device("cpu"),
        seeds={"init": 1, "data": 2},
        on_epoch=hook,
    )


@pytest.mark.parametrize("reason", ["pruned", "cancelled", "timeout"])
def test_the_hooks_verdict_stops_the_function(reason: StopReason) -> None:
    seen: list[EpochStats] = []

    def hook(stats: EpochStats) -> StopReason | None:
        seen.append(stats)
        return reason if stats.epoch == 2 else None

    ctx = _context(hook)
    assert ctx.report(1, score=0.5, extra_metric=3.0) is False
    assert ctx.report(2, score=0.6) is True
    assert ctx.report(3, score=0.9) is True  # told to stop: not recorded
    assert [s.metric("score") for s in seen] == [0.5, 0.6]
    assert seen[0].metrics["extra_metric"] == 3.0
    result = ctx.result()
    assert (result.stop_reason, result.epochs_run, result.value) == (reason, 2, 0.6)


def test_the_context_gives_params_seeds_and_the_searched_optimizer() -> None:
    ctx = _context()
    assert dict(ctx.params) == {
        "initializer": "orthogonal",
        "lr": 0.1,
        "weight_decay": 0.0,
        "batch_size": 32,
        "patience": 2,
        "width": 8,
    }
    first = torch.randperm(10, generator=ctx.generator())
    again = torch.randperm(10, generator=torch.Generator().manual_seed(ctx.data_seed))
    assert torch.equal(first, again)
    model = nn.Linear(4, 4)
    opt = ctx.optimizer(model.parameters())
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["lr"] == 0.1
    assert opt.defaults["momentum"] == 0.9
    ctx.init(model)
    q = model.weight.detach()
    assert torch.allclose(q @ q.T, torch.eye(4), atol=1e-5)  # orthogonal, gain 1 (tanh: 5/3)
    assert ctx.layers[0].layer == "" and ctx.initialized


def test_reports_out_of_order_or_without_the_metric_are_task_errors() -> None:
    ctx = _context()
    with pytest.raises(TaskError, match="has no 'score'"):
        ctx.report(1, loss=1.0)
    with pytest.raises(TaskError, match=r"1, 2, 3, \.\.\. in order"):
        ctx.report(2, score=1.0)


def test_a_function_trial_replays_exactly_on_cpu(sqlite_url: str) -> None:
    run_study(_own_loop("own-replay", seed=11), database_url=sqlite_url, device="cpu")
    db = storage.Database(sqlite_url)
    try:
        for number in range(3):
            replay = replay_trial(db, "own-replay", number)
            assert replay.stored_value is not None and replay.matches, number
    finally:
        db.dispose()


def test_a_function_trial_without_any_report_is_an_error() -> None:
    task = Task("silent", "relu", None, None, "sgd", 0.9, train=lambda ctx: None)
    params = TrialParams("xavier_uniform", "xavier_uniform", 0.1, 0.0, 32, 2)
    config = TrainConfig(lr=0.1, weight_decay=0.0, batch_size=32, patience=2, max_epochs=3)
    outcome = execute_trial(
        number=0,
        params=params,
        task=task,
        data=None,
        config=config,
        study_seed=0,
        device=torch.device("cpu"),
    )
    assert (outcome.state, outcome.stop_reason) == ("fail", "error")
    assert outcome.error is not None and "returned without a report()" in outcome.error
    assert outcome.value is None


def test_spec_rules_for_metrics_and_extra_dimensions() -> None:
    with pytest.raises(SpecError, match="say which way 'val_error' is better"):
        parse_spec({"name": "m", "task": {"plugin": "own-loop"}, "metric": "val_error"})
    with pytest.raises(SpecError, match="built-in models report"):
        parse_spec({"name": "m", "metric": "val_error", "direction": "minimize"})
    with pytest.raises(SpecError) as builtin:
        parse_spec({"name": "m", "search": {"width": [16, 32]}})
    assert builtin.value.issues[0].path == "search.width"
    with pytest.raises(SpecError) as bad_name:
        parse_spec({"name": "m", "task": {"plugin": "own-loop"}, "search": {"a-b": 1}})
    assert bad_name.value.issues[0].path == "search.a-b"
    spec = parse_spec(
        {"name": "m", "task": {"plugin": "own-loop"}, "search": {"depth": {"low": 2, "high": 6}}}
    )
    assert type(spec.search.extras["depth"]).__name__ == "IntRange"
    assert parse_spec(spec.to_json()) == spec


@pytest.mark.parametrize("replicates", [2, {"init": 2, "data": 2}, {"data": 2}])
def test_replicates_need_the_built_in_loop(sqlite_url: str, replicates: Any) -> None:
    with pytest.raises(SpecError, match="one seed pair per trial") as refused:
        spec = _own_loop("own-rep", replicates=replicates)
        run_study(spec, database_url=sqlite_url, device="cpu")
    assert refused.value.issues[0].path == "replicates"


def test_check_says_what_it_skipped_for_a_function_only_task(tmp_path: Any) -> None:
    path = tmp_path / "own.json"
    path.write_text(
        '{"name": "c", "task": {"plugin": "own-loop"}, "metric": "val_error", '
        '"direction": "minimize"}'
    )
    result = CliRunner().invoke(app, ["check", str(path), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "trains with its own function" in result.output


def test_leaderboards_reports_and_optuna_show_the_tasks_own_names(
    sqlite_url: str, tmp_path: Any
) -> None:
    run_study(_own_loop("own-show"), database_url=sqlite_url, device="cpu")
    board = CliRunner().invoke(app, ["results", "own-show", "--database-url", sqlite_url])
    assert board.exit_code == 0, board.output
    header = next(line for line in board.output.splitlines() if "initializer" in line)
    assert "width" in header and "dropout" in header and "val_error" in header
    page = tmp_path / "r.html"
    args = ["report", "own-show", "-o", str(page), "--database-url", sqlite_url, "--no-dashboard"]
    report = CliRunner().invoke(app, args)
    assert report.exit_code == 0, report.output
    html = page.read_text()
    assert "<th>width</th>" in html and "<th>dropout</th>" in html and "val_error" in html
    study = optuna.load_study(study_name="own-show", storage=sqlite_url)
    assert study.metric_names == ["val_error"]


def test_tuner_run_trains_a_function_task_and_shows_its_metric(tmp_path: Any) -> None:
    spec = tmp_path / "own.yaml"
    spec.write_text(
        "name: own-cli\n"
        "task: {plugin: own-loop}\n"
        "metric: val_error\n"
        "direction: minimize\n"
        "search: {initializer: [orthogonal, xavier_uniform], lr: 0.1, batch_size: 128,\n"
        "         width: [16, 32]}\n"
        "budget: {n_trials: 2, max_epochs: 2}\n"
        "pruner: none\n"
    )
    url = f"sqlite:///{tmp_path / 'own.db'}"
    result = CliRunner().invoke(app, ["run", str(spec), "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "top 2 of 2 trials (val_error, minimize)" in result.output
    assert "width" in result.output
