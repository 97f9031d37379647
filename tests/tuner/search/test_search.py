"""The search space as Optuna sees it: names, conditional parameters, grids."""

from __future__ import annotations

import optuna
import pytest

from tuner.search import suggest
from tuner.spec import grid_space, label_entries, parse_spec


def _search(**search: object) -> object:
    return parse_spec({"name": "s", "search": search}).search


def test_suggestions_use_the_contract_names() -> None:
    search = _search(
        initializer=[
            "xavier_uniform",
            {"name": "normal", "std": {"low": 1e-3, "high": 1.0, "log": True}},
        ],
        lr={"low": 1e-4, "high": 1.0, "log": True},
        weight_decay=[0.0, 1e-4],
        batch_size=[32, 64],
        patience={"low": 2, "high": 10},
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, search)  # type: ignore[arg-type]
        assert set(trial.params) >= {"initializer", "lr", "weight_decay", "batch_size", "patience"}
        # the std of `normal` is conditional: only suggested when normal is chosen
        assert ("normal.std" in trial.params) == (params.initializer == "normal")
        if params.initializer == "normal":
            assert 1e-3 <= params.init_params["std"] <= 1.0
        assert 1e-4 <= params.lr <= 1.0 and params.weight_decay in (0.0, 1e-4)
        seen.add(params.initializer)
        study.tell(trial, 0.0)
    assert seen == {"xavier_uniform", "normal"}


def test_fixed_dimensions_are_not_searched() -> None:
    search = _search(initializer="orthogonal", lr=0.1, weight_decay=0.0, batch_size=32, patience=3)
    trial = optuna.create_study().ask()
    params = suggest(trial, search)  # type: ignore[arg-type]
    assert trial.params == {}
    assert (params.initializer, params.lr, params.batch_size, params.patience) == (
        "orthogonal",
        0.1,
        32,
        3,
    )


def test_repeated_names_get_distinct_labels() -> None:
    search = _search(
        initializer=[
            {"name": "orthogonal", "gain": 1.0},
            {"name": "orthogonal", "gain": 2.0},
            "xavier_normal",
        ]
    )
    labels = [label for label, _ in label_entries(search.initializer)]  # type: ignore[attr-defined]
    assert labels == ["orthogonal(gain=1.0)", "orthogonal(gain=2.0)", "xavier_normal"]


def test_grid_space_lists_searched_dimensions_only() -> None:
    spec = parse_spec(
        {
            "name": "g",
            "sampler": "grid",
            "search": {
                "initializer": ["xavier_normal", "kaiming_normal"],
                "lr": [0.01, 0.1],
                "batch_size": 64,
            },
        }
    )
    assert grid_space(spec.search) == {
        "initializer": ["xavier_normal", "kaiming_normal"],
        "lr": [0.01, 0.1],
    }


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "gp", "qmc"])
def test_every_sampler_runs_the_space(sampler: str) -> None:
    from tuner.search import make_sampler

    spec = parse_spec(
        {
            "name": "s",
            "sampler": sampler,
            "search": {
                "initializer": ["xavier_normal", "kaiming_normal"],
                "lr": {"low": 1e-3, "high": 1.0, "log": True},
                "patience": {"low": 1, "high": 4},
            },
        }
    )
    study = optuna.create_study(sampler=make_sampler(spec.sampler, seed=0, grid={}))
    for i in range(4):
        trial = study.ask()
        params = suggest(trial, spec.search)
        study.tell(trial, params.lr + i)
    assert len(study.trials) == 4


def test_each_layer_group_is_searched_on_its_own() -> None:
    search = _search(
        initializer="zeros",
        initializer_groups={
            "output": ["xavier_normal", {"name": "orthogonal", "gain": [1.0, "auto"]}],
            "input": "he_normal",
        },
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        params = suggest(trial, search)  # type: ignore[arg-type]
        output = params.groups["output"]
        assert trial.params["initializer.output"] == output["label"]
        assert ("output.orthogonal.gain" in trial.params) == (output["name"] == "orthogonal")
        assert "initializer.input" not in trial.params  # one choice: fixed, not searched
        assert params.groups["input"] == {"label": "he_normal", "name": "he_normal", "params": {}}
        assert params.summary == f"zeros; output={output['label']}; input=he_normal"
        assert params.group_choices()["output"] == (output["name"], output["params"])
        again = type(params).from_json(params.to_json())
        assert again == params
        seen.add((output["name"], output["params"].get("gain")))
        study.tell(trial, 0.0)
    assert seen == {("xavier_normal", None), ("orthogonal", 1.0), ("orthogonal", "auto")}
