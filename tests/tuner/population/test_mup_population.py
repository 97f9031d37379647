"""A study in muP trains its trials one by one: the stack has no readout multiplier nor
per-group learning rates, so a muP model is never stacked."""

from __future__ import annotations

import torch

from tuner.population import (
    Member,
    PopulationConfig,
    execute_population,
    population_size,
    stackable,
)
from tuner.search import TrialParams
from tuner.spec import BuiltinTask
from tuner.tasks import build_task
from tuner.training import TrainConfig


def test_a_mup_task_never_stacks_and_its_trials_train_one_by_one() -> None:
    standard = build_task(BuiltinTask(model="mlp", hidden=[16], dataset="digits"))
    task = build_task(
        BuiltinTask(model="mlp", hidden=[16], dataset="digits", parametrization="mup", base_width=8)
    )
    cpu = torch.device("cpu")
    assert stackable(standard) and not stackable(task)
    assert population_size(task, 32, cpu, PopulationConfig(size=4)) == 1
    config = TrainConfig(lr=0.05, weight_decay=0.0, batch_size=32, patience=2, max_epochs=1)
    members = [
        Member(n, TrialParams("kaiming_normal", "kaiming_normal", lr, 0.0, 32, 2), config)
        for n, lr in enumerate((0.05, 0.1))
    ]
    assert task.data is not None
    outcomes = execute_population(
        members,
        task=task,
        data=task.data,
        study_seed=0,
        device=cpu,
        config=PopulationConfig(size=4),
    )
    assert [o.state for o in outcomes] == ["complete", "complete"]
    for outcome in outcomes:
        assert "population" not in outcome.manifest  # a single trial's manifest
        assert outcome.manifest["parametrization"]["multiplier"] == 2.0


def test_a_stacked_transferred_trial_records_its_source() -> None:
    source = {"study": "small", "trial": 4, "width": 8}
    task = build_task(
        BuiltinTask(model="mlp", hidden=[16], dataset="digits", transferred_from=source)
    )
    config = TrainConfig(lr=0.05, weight_decay=0.0, batch_size=32, patience=2, max_epochs=1)
    params = TrialParams("kaiming_normal", "kaiming_normal", 0.05, 0.0, 32, 2)
    members = [Member(n, params, config) for n in range(2)]
    assert task.data is not None
    outcomes = execute_population(
        members,
        task=task,
        data=task.data,
        study_seed=0,
        device=torch.device("cpu"),
        config=PopulationConfig(size=2),
    )
    for outcome in outcomes:
        assert outcome.manifest["population"]["size"] == 2
        assert outcome.manifest["transfer"] == {
            "source_study": "small",
            "source_trial": 4,
            "source_width": 8,
            "parametrization": "standard",
            "base_width": 8,
            "width": 16,
            "multiplier": 2.0,
        }
