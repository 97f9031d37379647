"""The tuning knobs against their definitions: schedules, clipping, dropout, activation,
the optimizer as a dimension, and which of them populations stack."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import storage
from tuner.errors import SpecError
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.tasks import build_task
from tuner.training import TrainConfig, clip_gradients, make_scheduler, train, train_config


def _lrs(epochs: int, **knobs: Any) -> list[float]:
    """The lr each epoch runs at, stepping the scheduler after each epoch as the loop does."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = TrainConfig(
        lr=1.0, weight_decay=0.0, batch_size=1, patience=1, max_epochs=epochs, **knobs
    )
    schedule = make_scheduler(opt, cfg)
    seen = []
    for _ in range(epochs):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return seen


def _formula(e: int, epochs: int, *, schedule: str, w: int, size: int, factor: float) -> float:
    """The lr factor of epoch e (1-based), written out from the definitions."""
    if e <= w:
        return e / (w + 1)  # linear warm-up
    t = e - 1 - w
    if schedule == "step":
        return factor ** (t // size)  # step decay: x factor every `size` epochs
    if schedule == "cosine":
        return (1 + math.cos(math.pi * t / (epochs - w))) / 2  # cosine annealing to 0
    return 1.0


@pytest.mark.parametrize(
    ("schedule", "warmup", "size", "factor"),
    [
        ("constant", 0, 10, 0.1),
        ("step", 0, 3, 0.5),
        ("step", 0, 1, 0.1),
        ("cosine", 0, 10, 0.1),
        ("constant", 3, 10, 0.1),
        ("cosine", 2, 10, 0.1),
        ("step", 2, 2, 0.5),
    ],
)
def test_schedule_values_per_epoch_follow_the_formula(
    schedule: str, warmup: int, size: int, factor: float
) -> None:
    epochs = 10
    knobs = {
        "schedule": schedule,
        "warmup_epochs": warmup,
        "step_size": size,
        "step_factor": factor,
    }
    got = _lrs(epochs, **knobs)
    want = [
        _formula(e, epochs, schedule=schedule, w=warmup, size=size, factor=factor)
        for e in range(1, epochs + 1)
    ]
    assert got == pytest.approx(want, abs=1e-12)


def test_clipping_bounds_the_global_gradient_norm() -> None:
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 1))
    (model(torch.randn(32, 10)).sum() * 1000).backward()
    before = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in before]))
    assert norm > 1.0
    cfg = TrainConfig(
        lr=1.0, weight_decay=0.0, batch_size=1, patience=1, max_epochs=1, clip_norm=0.5
    )
    clip_gradients(model.parameters(), cfg)
    after = [p.grad for p in model.parameters() if p.grad is not None]
    clipped = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in after]))
    assert clipped == pytest.approx(0.5, rel=1e-4)
    for old, new in zip(before, after, strict=True):  # one common scale: the direction stays
        assert torch.allclose(new, old * (0.5 / norm), rtol=1e-4, atol=1e-9)


def test_the_loop_clips_every_step(sqlite_url: str) -> None:
    """With SGD without momentum each step moves the weights by lr x the clipped gradient,
    so a whole epoch moves them at most steps x lr x clip_norm."""
    spec = parse_spec({"name": "clip", "task": {"hidden": [32], "dataset": "digits"}})
    task = build_task(spec.task)
    _, data = task.model_and_data()
    model = task.build_model() if task.build_model else None
    assert model is not None
    start = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    clip, lr, batch = 1e-3, 0.5, 64
    cfg = TrainConfig(
        lr=lr,
        weight_decay=0.0,
        batch_size=batch,
        patience=5,
        max_epochs=1,
        momentum=0.0,
        clip_norm=clip,
    )
    train(model, data, cfg, generator=torch.Generator().manual_seed(0))
    end = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    steps = math.ceil(len(data.x_train) / batch)
    moved = float(torch.linalg.vector_norm(end - start))
    assert 0 < moved <= steps * lr * clip * (1 + 1e-5)


def test_dropout_is_active_in_training_and_off_in_evaluation() -> None:
    spec = parse_spec({"name": "d", "task": {"hidden": [64, 64], "dataset": "digits"}})
    task = build_task(spec.task)
    assert task.build_model is not None
    model = task.build_model(dropout=0.5)
    drops = [m for m in model if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.5 for d in drops)
    x = torch.randn(16, 64)
    model.train()
    assert not torch.equal(model(x), model(x))  # a fresh mask each pass
    model.eval()
    assert torch.equal(model(x), model(x))
    assert not any(isinstance(m, nn.Dropout) for m in task.build_model())  # default: none


def test_activation_as_a_dimension_builds_and_initializes_for_it(sqlite_url: str) -> None:
    spec = parse_spec(
        {
            "name": "act",
            "task": {"hidden": [16], "dataset": "digits"},
            "search": {"initializer": "kaiming_normal", "activation": ["tanh"], "lr": 0.05},
            "budget": {"n_trials": 1, "max_epochs": 1},
        }
    )
    run_study(spec, database_url=sqlite_url, device="cpu")
    db = storage.Database(sqlite_url)
    try:
        with db.session() as session:
            (row,) = storage.list_trial_results(session, "act")
    finally:
        db.dispose()
    assert row.params_json["extra"] == {"activation": "tanh"}
    first = row.manifest_json["layers"][0]
    assert first["params"]["nonlinearity"] == "tanh"  # kaiming's gain follows the searched one


def test_the_optimizer_is_a_dimension_and_knobs_override_the_task() -> None:
    spec = parse_spec(
        {
            "name": "o",
            "task": {"hidden": [8], "dataset": "digits", "optimizer": "sgd", "momentum": 0.9},
            "search": {"optimizer": ["adam", "adamw"], "momentum": 0.5, "clip_norm": 2.0},
        }
    )
    task = build_task(spec.task)
    params = TrialParams("k", "kaiming_normal", 0.1, 0.0, 32, 2, extra={"optimizer": "adamw"})
    cfg = train_config(params, task, spec)
    assert (cfg.optimizer, cfg.momentum, cfg.clip_norm) == ("adamw", 0.9, None)
    params = TrialParams("k", "kaiming_normal", 0.1, 0.0, 32, 2, extra={"momentum": 0.5})
    assert train_config(params, task, spec).optimizer == "sgd"
    assert train_config(params, task, spec).momentum == 0.5


@pytest.mark.parametrize(
    ("search", "stacked"),
    [
        ({"optimizer": ["sgd", "adam"]}, True),  # members grouped by optimizer, each exact
        ({"schedule": "cosine"}, False),
        ({"clip_norm": 1.0}, False),
        ({"dropout": [0.0, 0.2]}, False),
    ],
)
def test_populations_stack_what_they_can_and_train_the_rest_alone(
    sqlite_url: str, search: dict[str, Any], stacked: bool
) -> None:
    spec = parse_spec(
        {
            "name": "pop",
            "task": {"hidden": [16], "dataset": "digits"},
            "search": {"initializer": "kaiming_normal", "lr": [0.05, 0.1], **search},
            "budget": {"n_trials": 4, "max_epochs": 2},
            "pruner": "none",
        }
    )
    run_study(spec, database_url=sqlite_url, device="cpu", population=4)
    db = storage.Database(sqlite_url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, "pop")
    finally:
        db.dispose()
    assert len(rows) == 4 and all(r.state == "complete" for r in rows)
    in_stacks = [r for r in rows if r.manifest_json.get("population")]
    assert bool(in_stacks) is stacked
    for row in in_stacks:  # a stack holds one optimizer
        members = set(row.manifest_json["population"]["members"])
        optimizers = {
            r.manifest_json["train"]["optimizer"] for r in rows if r.trial_number in members
        }
        assert len(optimizers) == 1


def test_model_knobs_are_refused_for_a_plugins_own_model(sqlite_url: str) -> None:
    spec = parse_spec(
        {
            "name": "pl",
            "task": {"plugin": "tiny-tanh", "dataset": "digits"},
            "search": {"dropout": 0.2},
        }
    )
    with pytest.raises(SpecError, match="cannot take a searched dropout"):
        run_study(spec, database_url=sqlite_url, device="cpu")
