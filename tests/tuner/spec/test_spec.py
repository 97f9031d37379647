"""Study definitions: what parses, and every invalid one failing with its field path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuner.errors import SpecError
from tuner.spec import (
    FloatRange,
    IntRange,
    SamplerHistory,
    SeedDesign,
    StudySpec,
    grid_space,
    load_spec,
    parse_spec,
)

EXAMPLES = Path(__file__).parents[3] / "examples"


def _spec(**fields: Any) -> dict[str, Any]:
    return {"name": "s", **fields}


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (_spec(search={"lr": {"low": 1.0, "high": 0.1}}), "search.lr", "must be <= high"),
        (_spec(search={"lr": {"low": 0, "high": 1, "log": True}}), "search.lr", "cannot touch 0"),
        (_spec(search={"lr": -0.1}), "search.lr", "lr must be > 0"),
        (_spec(search={"lr": []}), "search.lr", "cannot be empty"),
        (_spec(search={"lr": [0.1, 0.1]}), "search.lr", "distinct"),
        (_spec(search={"weight_decay": [0.0, -1e-4]}), "search.weight_decay", ">= 0"),
        (
            _spec(search={"initializer": ["xavier_uniform", "foo"]}),
            "search.initializer[1].name",
            "unknown initializer 'foo'",
        ),
        (_spec(search={"initializer": []}), "search.initializer", "at least one"),
        (_spec(search={"batch_size": [32, 0]}), "search.batch_size", ">= 1, got 0"),
        (_spec(search={"batch_size": {"low": 0, "high": 64}}), "search.batch_size", ">= 1"),
        (_spec(search={"patience": 0}), "search.patience", ">= 1"),
        (_spec(budget={"n_trials": 0}), "budget.n_trials", "greater than or equal to 1"),
        (_spec(budget={"max_epochs": 0}), "budget.max_epochs", "greater than or equal to 1"),
        (
            _spec(search={"initializer": ["xavier_normal", "dirac"]}),
            "search.initializer[1]",
            "dirac needs a convolutional layer",
        ),
        (_spec(task={"dataset": {"path": "missing.csv"}}), "task.dataset.path", "not found"),
        (_spec(task={"dataset": {"path": "data.txt"}}), "task.dataset.path", ".npz or .csv"),
        (_spec(task={"dataset": "imagenet"}), "task.dataset", "unknown dataset 'imagenet'"),
        (_spec(task={"model": "transformer"}), "task.model", "'mlp' or 'cnn'"),
        (_spec(task={"model": "cnn", "dataset": "synthetic"}), "task", "needs an image dataset"),
        (_spec(task={"activation": "swish"}), "task.activation", "relu"),
        (_spec(task={"plugin": "not-installed"}), "task.plugin", "no task plugin named"),
        (
            _spec(search={"initializer": {"name": "normal", "std": -1.0}}),
            "search.initializer[0].std",
            "> 0",
        ),
        (
            _spec(search={"initializer": {"name": "normal", "sd": 1.0}}),
            "search.initializer[0].sd",
            "has no parameter 'sd'",
        ),
        (
            _spec(
                search={
                    "initializer": {"name": "normal", "std": {"low": 0, "high": 1, "log": True}}
                }
            ),
            "search.initializer[0].std",
            "cannot touch 0",
        ),
        (
            _spec(search={"initializer": {"name": "pretrained", "path": "nope.pt"}}),
            "search.initializer[0].path",
            "file not found",
        ),
        (
            _spec(search={"initializer": {"name": "variance_scaling", "mode": "fan_sideways"}}),
            "search.initializer[0].mode",
            "fan_in",
        ),
        (_spec(metric="f1"), "metric", "val_accuracy"),
        (_spec(sampler="annealing"), "sampler.name", "unknown sampler"),
        (_spec(sampler={"name": "tpe", "options": {"bogus": 1}}), "sampler.options", "bogus"),
        (
            _spec(sampler="grid", search={"lr": {"low": 0.01, "high": 0.1}, "batch_size": [8, 16]}),
            "sampler",
            "search.lr to be a list",
        ),
        (_spec(pruner="sometimes"), "pruner.name", "unknown pruner"),
        (_spec(unknown_field=1), "unknown_field", "Extra inputs"),
        (_spec(replicates=0), "replicates", "greater than or equal to 1"),
        (_spec(replicates=33), "replicates", "less than or equal to 32"),
        (_spec(replicates={"init": 0, "data": 3}), "replicates.init", "greater than or equal to 1"),
        (_spec(replicates={"init": 3, "data": 40}), "replicates.data", "less than or equal to 32"),
        (_spec(replicates={"init": 6, "data": 6}), "replicates", "6 x 6 = 36 replicates"),
        (_spec(replicates={"init": 2, "date": 2}), "replicates.date", "Extra inputs"),
        ({"name": "has space"}, "name", "letters, digits"),
        ({}, "name", "Field required"),
    ],
)
def test_invalid_specs_name_the_field(data: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    issues = {issue.path: issue.msg for issue in caught.value.issues}
    assert path in issues, issues
    assert fragment in issues[path]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_spec(search={"lr": -1.0, "patience": 0}, budget={"n_trials": 0}))
    assert {i.path for i in caught.value.issues} == {
        "search.lr",
        "search.patience",
        "budget.n_trials",
    }


def test_dimension_forms() -> None:
    spec = parse_spec(
        _spec(
            search={
                "lr": {"low": 1e-4, "high": 1.0, "log": True},
                "weight_decay": [0, 1e-4],
                "batch_size": 64,
                "patience": {"low": 2, "high": 10},
            }
        )
    )
    assert spec.search.lr == FloatRange(low=1e-4, high=1.0, log=True)
    assert spec.search.weight_decay == [0.0, 1e-4]
    assert spec.search.batch_size == 64
    assert spec.search.patience == IntRange(low=2, high=10)


def test_replicates_are_a_count_or_a_crossed_design() -> None:
    plain = parse_spec(_spec(replicates=3))
    assert (plain.replicates, plain.n_replicates, plain.seed_design) == (3, 3, None)
    assert plain.to_json()["replicates"] == 3  # stored as written
    crossed = parse_spec(_spec(replicates={"init": 3, "data": 2}))
    assert crossed.seed_design == SeedDesign(init=3, data=2) and crossed.n_replicates == 6
    assert crossed.to_json()["replicates"] == {"init": 3, "data": 2}
    assert parse_spec(crossed.to_json()) == crossed
    data_only = parse_spec(_spec(replicates={"data": 4}))  # one init seed, 4 data orders
    assert data_only.seed_design == SeedDesign(init=1, data=4) and data_only.n_replicates == 4
    assert parse_spec(_spec()).n_replicates == 1


def test_defaults_infer_direction_from_metric() -> None:
    assert parse_spec(_spec()).resolved_direction == "maximize"
    assert parse_spec(_spec(metric="val_loss")).resolved_direction == "minimize"
    assert (
        parse_spec(_spec(metric="val_loss", direction="maximize")).resolved_direction == "maximize"
    )


def test_keras_names_keep_their_own_semantics() -> None:
    names = ["Glorot_Uniform", "he_normal", "identity", "xavier_uniform"]
    spec = parse_spec(_spec(search={"initializer": names}))
    assert [e.name for e in spec.search.initializer] == [n.lower() for n in names]


def test_gain_auto_is_an_explicit_choice() -> None:
    entry = {"name": "xavier_normal", "gain": [1.0, "auto"]}
    spec = parse_spec(_spec(search={"initializer": [entry]}))
    assert spec.search.initializer[0].params == {"gain": [1.0, "auto"]}
    with pytest.raises(
        SpecError, match=r"search\.initializer\[0\]\.gain: must be a number or 'auto'"
    ):
        parse_spec(_spec(search={"initializer": [{"name": "xavier_normal", "gain": "big"}]}))
    with pytest.raises(SpecError, match=r"normal has no parameter 'gain'"):
        parse_spec(_spec(search={"initializer": [{"name": "normal", "gain": "auto"}]}))


def test_dirac_is_fine_on_a_cnn() -> None:
    spec = parse_spec(
        _spec(task={"model": "cnn", "dataset": "digits"}, search={"initializer": "dirac"})
    )
    assert spec.search.initializer[0].name == "dirac"


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / "quickstart.yaml")
    again = parse_spec(json.loads(json.dumps(spec.to_json())))
    assert again == spec
    file = tmp_path / "spec.json"
    file.write_text(json.dumps(spec.to_json()))
    assert load_spec(file) == spec


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(example: Path) -> None:
    assert isinstance(load_spec(example), StudySpec)


def test_relative_data_paths_resolve_against_the_spec_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 3)), label=np.arange(10) % 2)
    (tmp_path / "spec.yaml").write_text("name: f\ntask: {dataset: {path: d.npz, target: label}}\n")
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.task.dataset.path == str(tmp_path / "d.npz")  # type: ignore[union-attr]


def test_csv_without_the_target_column_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n")
    with pytest.raises(SpecError) as caught:
        parse_spec(_spec(task={"dataset": {"path": "d.csv", "target": "y"}}), base_dir=tmp_path)
    assert caught.value.issues[0].path == "task.dataset.target"
    assert "label" in caught.value.issues[0].msg


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    from tuner import TunerError

    with pytest.raises(TunerError, match="cannot read"):
        load_spec(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(tmp_path / "list.yaml")


def test_confined_specs_keep_file_paths_inside_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "d.npz", x=np.zeros((10, 3)), y=np.arange(10) % 2)
    inside = {"name": "c", "task": {"dataset": {"path": "d.npz"}}}
    spec = parse_spec(inside, base_dir=data, confine=True)
    assert spec.task.dataset.path == str(data / "d.npz")  # type: ignore[union-attr]
    for path in ("/etc/passwd.csv", "../outside.npz", str(tmp_path / "nope.npz")):
        with pytest.raises(SpecError) as caught:
            parse_spec(
                {"name": "c", "task": {"dataset": {"path": path}}}, base_dir=data, confine=True
            )
        (issue,) = caught.value.issues
        assert issue.path == "task.dataset.path" and "inside the server's data folder" in issue.msg
        assert "not found" not in issue.msg  # says nothing about what exists out there
    with pytest.raises(SpecError, match="takes no file paths"):
        parse_spec(inside, confine=True)
    pretrained = {
        "name": "c",
        "search": {"initializer": {"name": "pretrained", "path": "/etc/x.pt"}},
    }
    with pytest.raises(SpecError, match="inside the server's data folder"):
        parse_spec(pretrained, base_dir=data, confine=True)


def test_layer_groups_are_checked_and_named_in_errors() -> None:
    groups = {"output": "xavier_normal", "input": ["he_normal", {"name": "orthogonal"}]}
    spec = parse_spec(_spec(search={"initializer_groups": groups}))
    assert {g: [e.name for e in es] for g, es in spec.search.initializer_groups.items()} == {
        "output": ["xavier_normal"],
        "input": ["he_normal", "orthogonal"],
    }
    assert parse_spec(spec.to_json()) == spec  # round-trips
    cases = [
        (
            {"recurrent": ["orthogonal"]},
            "initializer_groups.recurrent: model 'mlp' has no recurrent",
        ),
        ({"tail": ["zeros"]}, "initializer_groups.tail: unknown layer group 'tail'"),
        ({"output": ["lsuv"]}, r"initializer_groups.output\[0\].name: lsuv applies to the whole"),
        ({"output": []}, "initializer_groups.output: list at least one initializer"),
        ({"output": ["dirac"]}, r"initializer_groups.output\[0\]: dirac needs a convolutional"),
        ({"output": [{"name": "normal", "std": 0}]}, r"output\[0\].std: must be > 0"),
    ]
    for bad, match in cases:
        with pytest.raises(SpecError, match=match):
            parse_spec(_spec(search={"initializer_groups": bad}))


def test_grid_enumerates_layer_groups() -> None:
    search = {
        "initializer": ["zeros", "eye"],
        "initializer_groups": {"output": ["he_normal", "orthogonal"]},
    }
    spec = parse_spec(_spec(search=search, sampler="grid"))
    assert grid_space(spec.search) == {
        "initializer": ["zeros", "eye"],
        "initializer.output": ["he_normal", "orthogonal"],
    }
    searched = {"output": [{"name": "normal", "std": {"low": 0.1, "high": 1.0}}]}
    with pytest.raises(SpecError, match="sampler grid needs initializer normal's std to be fixed"):
        parse_spec(_spec(search={"initializer_groups": searched, "lr": [0.1]}, sampler="grid"))


def test_the_sampler_history_window_round_trips_and_is_checked_against_the_startup() -> None:
    base = {"name": "w", "task": {"dataset": "synthetic"}}
    default = parse_spec(base).sampler.history
    assert default == SamplerHistory(best=100, recent=400)
    for history in (None, "all", {"best": 30, "recent": 70}):
        spec = parse_spec({**base, "sampler": {"name": "tpe", "history": history}})
        assert parse_spec(spec.to_json()) == spec  # null reads as all, and stays all
    assert parse_spec({**base, "sampler": {"name": "tpe", "history": None}}).sampler.history == (
        "all"
    )
    small = {
        "name": "tpe",
        "options": {"n_startup_trials": 20},
        "history": {"best": 5, "recent": 5},
    }
    with pytest.raises(SpecError, match=r"sampler\.history: history shows 10 trials"):
        parse_spec({**base, "sampler": small})
