"""The transferred study's definition: widths scaled, search fixed, the source named."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.errors import TunerError
from tuner.search import TrialParams
from tuner.spec import BuiltinTask, parse_spec
from tuner.studies import scaled_widths, transferred_definition

BEST = TrialParams(
    "normal(std=0.05)",
    "normal",
    0.003,
    1e-4,
    128,
    4,
    init_params={"std": 0.05},
    extra={"optimizer": "adamw"},
)


def _source(**task: Any) -> Any:
    return parse_spec(
        {
            "name": "src",
            "task": {"model": "mlp", "hidden": [64, 32], "dataset": "digits", **task},
            "search": {"initializer": ["kaiming_normal", "normal"], "optimizer": ["sgd", "adamw"]},
            "sampler": "tpe",
            "replicates": 2,
        }
    )


def test_widths_scale_alike_and_the_widest_is_the_new_width() -> None:
    assert scaled_widths([64, 32, 48], 64, 1000) == [1000, 500, 750]
    assert scaled_widths([64, 1], 64, 16) == [16, 1]  # never below one unit


def test_the_definition_fixes_the_search_to_the_best_trial() -> None:
    spec = parse_spec(transferred_definition(_source(), BEST, 7, width=256))
    task = spec.task
    assert isinstance(task, BuiltinTask)
    assert (spec.name, task.hidden, task.base_width, task.width_multiplier) == (
        "src-w256-mup",
        [256, 128],
        64,
        4.0,
    )
    assert task.transferred_from is not None and task.transferred_from.trial == 7
    search = spec.search
    assert [(e.name, e.params) for e in search.initializer] == [("normal", {"std": 0.05})]
    assert (search.lr, search.weight_decay, search.batch_size, search.patience) == (
        0.003,
        1e-4,
        128,
        4,
    )
    assert search.extras == {"optimizer": "adamw"}
    assert (spec.replicates, spec.sampler.name, spec.budget.n_trials) == (2, "random", 1)


def test_a_source_already_in_mup_keeps_its_base_width() -> None:
    source = _source(parametrization="mup", base_width=16)
    spec = parse_spec(transferred_definition(source, BEST, 0, width=512))
    assert isinstance(spec.task, BuiltinTask)
    assert (spec.task.base_width, spec.task.width_multiplier) == (16, 32.0)
    standard = parse_spec(
        transferred_definition(source, BEST, 0, width=512, parametrization="standard")
    )
    assert isinstance(standard.task, BuiltinTask)
    assert (standard.task.parametrization, standard.task.base_width) == ("standard", None)


def test_a_cnn_scales_its_channels() -> None:
    source = parse_spec({"name": "c", "task": {"model": "cnn", "channels": [8, 16]}})
    spec = parse_spec(transferred_definition(source, BEST, 0, width=64, name="c-big"))
    assert isinstance(spec.task, BuiltinTask)
    assert (spec.name, spec.task.channels, spec.task.base_width) == ("c-big", [32, 64], 16)


def test_a_plugin_study_cannot_transfer() -> None:
    source = parse_spec({"name": "p", "task": {"plugin": "own-loop"}, "metric": "val_loss"})
    with pytest.raises(TunerError, match="transfer scales a built-in model's widths"):
        transferred_definition(source, BEST, 0, width=64)
