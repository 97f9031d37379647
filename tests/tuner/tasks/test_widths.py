"""A model whose output width does not fit the task's targets is refused before training
(on CUDA it would be a device-side assert), checked on the meta device."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tuner.spec._task
import tuner.tasks._tasks
from storage import Database
from tuner.errors import TaskError
from tuner.spec import parse_spec
from tuner.tasks import DataSplit, build_task, output_width_error, split_and_normalize
from tuner.worker import Worker, WorkerConfig


class NarrowHead:
    """A plugin whose head has ``outputs`` units whatever the classes (a user's mistake)."""

    def __init__(self, outputs: int, regression: bool = False) -> None:
        self.outputs, self.regression = outputs, regression

    def load_data(self) -> DataSplit:
        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 5)).astype(np.float32)
        y = x.sum(axis=1) if self.regression else rng.integers(0, 4, size=60)
        return split_and_normalize(
            x, y, name="narrow", val_fraction=0.2, seed=0, regression=self.regression
        )

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, self.outputs))


class _Entry:
    name = "narrow-head"

    def load(self) -> type[NarrowHead]:
        return NarrowHead


@pytest.fixture
def narrow_head(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"narrow-head": _Entry()}
    monkeypatch.setattr(tuner.spec._task, "installed_plugins", lambda: installed)
    monkeypatch.setattr(tuner.tasks._tasks, "installed_plugins", lambda: installed)


def _build(**options: Any) -> Any:
    spec = parse_spec({"name": "w", "task": {"plugin": "narrow-head", **options}})
    return build_task(spec.task)


@pytest.mark.usefixtures("narrow_head")
@pytest.mark.parametrize("outputs", [3, 5])
def test_a_head_that_does_not_match_the_classes_is_refused(outputs: int) -> None:
    with pytest.raises(TaskError) as caught:
        _build(outputs=outputs)
    said = str(caught.value)
    assert said == (
        f"task 'narrow-head': the model's output has {outputs} units, but the data has "
        "4 classes (the last layer needs 4 outputs)"
    )


@pytest.mark.usefixtures("narrow_head")
def test_a_head_that_matches_builds() -> None:
    task = build_task(
        parse_spec({"name": "w", "task": {"plugin": "narrow-head", "outputs": 4}}).task
    )
    build, data = task.model_and_data()
    assert data.n_classes == 4
    assert build()(data.x_train[:3]).shape == (3, 4)


@pytest.mark.usefixtures("narrow_head")
def test_regression_takes_one_output_per_sample() -> None:
    with pytest.raises(TaskError, match="outputs 2 values per sample, but a regression"):
        _build(outputs=2, regression=True)
    assert _build(outputs=1, regression=True).data.regression


@pytest.mark.usefixtures("narrow_head")
def test_a_worker_refuses_a_hand_made_task_whose_head_does_not_fit(sqlite_url: str) -> None:
    plugin, task = NarrowHead(outputs=3), _build(outputs=4)
    narrow = dataclasses.replace(task, build_model=lambda: plugin.build_model((5,), 4))
    db = Database(sqlite_url)
    try:
        with pytest.raises(TaskError, match="output has 3 units, but the data has 4 classes"):
            Worker(db, WorkerConfig(device="cpu"), tasks={"w": narrow})
        Worker(db, WorkerConfig(device="cpu"), tasks={"w": task})  # the fitting one is taken
    finally:
        db.dispose()


def test_the_check_allocates_nothing() -> None:
    devices: list[torch.device] = []

    def build() -> nn.Module:
        model = nn.Linear(3, 2)
        devices.append(model.weight.device)
        return model

    data = split_and_normalize(
        np.zeros((10, 3), np.float32), np.arange(10) % 3, name="d", val_fraction=0.2, seed=0
    )
    assert output_width_error("t", build, data) == (
        "task 't': the model's output has 2 units, but the data has 3 classes "
        "(the last layer needs 3 outputs)"
    )
    assert devices == [torch.device("meta")]


def test_a_model_the_meta_device_cannot_run_is_left_to_its_trial() -> None:
    class Host(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + torch.from_numpy(np.zeros(x.shape[1:], np.float32))  # a CPU tensor

    data = split_and_normalize(  # 2 classes: on the CPU, the output (3 wide) would not fit
        np.zeros((10, 3), np.float32), np.arange(10) % 2, name="d", val_fraction=0.2, seed=0
    )
    assert output_width_error("t", Host, data) is None


def test_builtin_models_pass() -> None:
    spec = parse_spec({"name": "b", "task": {"model": "mlp", "hidden": [8], "dataset": "digits"}})
    build, data = build_task(spec.task).model_and_data()
    assert output_width_error("mlp", build, data) is None
