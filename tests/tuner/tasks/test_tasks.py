"""Tasks: built-in models, and plugins from the ``tuner.tasks`` entry points."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tuner.errors import SpecError, TaskError
from tuner.spec import installed_plugins, parse_spec
from tuner.studies import check_task
from tuner.tasks import build_task


def test_builtin_mlp_shapes() -> None:
    task = build_task(
        parse_spec({"name": "t", "task": {"hidden": [32, 16], "dataset": "digits"}}).task
    )
    model = task.build_model()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 16), (16, 10)]
    assert model(task.data.x_val[:5]).shape == (5, 10)


def test_builtin_cnn_on_mnist() -> None:
    spec = parse_spec({"name": "t", "task": {"model": "cnn", "channels": [4, 8]}})
    task = build_task(spec.task)
    model = task.build_model()
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 2
    assert model(task.data.x_val[:3]).shape == (3, 10)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu"])
def test_activation_is_used(activation: str) -> None:
    spec = parse_spec({"name": "t", "task": {"dataset": "synthetic", "activation": activation}})
    task = build_task(spec.task)
    assert task.activation == activation
    kinds = {type(m).__name__.lower() for m in task.build_model().modules()}
    assert activation.replace("_", "") in kinds


def test_plugins_are_discovered_from_entry_points() -> None:
    assert {"tiny-tanh", "xor-blobs"} <= set(installed_plugins())


def test_plugin_model_on_builtin_data_gets_its_options_and_activation() -> None:
    spec = parse_spec(
        {"name": "t", "task": {"plugin": "tiny-tanh", "width": 7, "dataset": "digits"}}
    )
    task = build_task(spec.task)
    assert task.activation == "tanh"
    first = next(m for m in task.build_model().modules() if isinstance(m, nn.Linear))
    assert first.out_features == 7
    assert task.data.name == "digits"


def test_plugin_with_its_own_data() -> None:
    task = build_task(parse_spec({"name": "t", "task": {"plugin": "xor-blobs", "n": 400}}).task)
    assert task.data.input_shape == (2,) and task.data.n_classes == 2
    assert len(task.data.x_train) + len(task.data.x_val) == 400


def test_plugin_rejecting_its_options_is_a_task_error() -> None:
    spec = parse_spec({"name": "t", "task": {"plugin": "tiny-tanh", "depth": 3}})
    with pytest.raises(TaskError, match="tiny-tanh"):
        build_task(spec.task)


def test_initializer_that_cannot_apply_to_a_plugin_model_is_a_spec_error() -> None:
    spec = parse_spec(
        {
            "name": "t",
            "task": {"plugin": "xor-blobs"},
            "search": {"initializer": ["xavier_normal", "dirac"]},
        }
    )
    with pytest.raises(SpecError) as caught:
        check_task(spec, build_task(spec.task))
    assert [i.path for i in caught.value.issues] == ["search.initializer[1]"]
    assert "conv" in caught.value.issues[0].msg


def test_models_are_fresh_each_build() -> None:
    task = build_task(parse_spec({"name": "t", "task": {"dataset": "synthetic"}}).task)
    a, b = task.build_model(), task.build_model()
    assert all(pa is not pb for pa, pb in zip(a.parameters(), b.parameters(), strict=True))
    assert isinstance(next(a.parameters()), torch.nn.Parameter)
