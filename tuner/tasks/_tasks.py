"""Tasks: a model builder plus its data, or a training function. Built-ins and plugins.

A plugin is any installed package that registers, under the entry-point group
``tuner.tasks``, a factory called with the spec's task options. The factory returns an
object with ``build_model(input_shape, n_classes) -> nn.Module`` (trained by the built-in
loop; optionally ``load_data() -> DataSplit | (x, y)``), or with ``train(ctx)``: its own
training, given a :class:`TrialContext` (or both: ``train`` then trains, and the model and
data serve the preflight). An ``activation`` name is optional.
Only installed entry points are ever loaded: never a module path from a client.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from tuner.errors import SpecError, SpecIssue, TaskError
from tuner.inits import LEAKY_RELU_SLOPE
from tuner.spec import BuiltinTask, PluginTask, installed_plugins
from tuner.tasks._context import TrainFunction, TrialContext
from tuner.tasks._data import DataSplit, load_dataset, split_and_normalize
from tuner.tasks._mup import mup_builder, width_records
from tuner.tasks._width import check_output_width


@runtime_checkable
class TaskPlugin(Protocol):
    """What a ``tuner.tasks`` factory returns for the built-in loop to train."""

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module: ...


@runtime_checkable
class TrainingPlugin(Protocol):
    """What a ``tuner.tasks`` factory returns when it trains with its own code."""

    def train(self, ctx: TrialContext) -> None: ...


@dataclass(frozen=True)
class Task:
    """A ready task: CPU data and a builder for fresh, un-initialized models, and/or the
    task's own training function (``train``: it then trains every trial)."""

    name: str
    activation: str
    data: DataSplit | None  # None: the training function loads its own
    #: Fresh models; the built-in ones take the model knobs (``dropout``, ``activation``).
    build_model: Callable[..., nn.Module] | None  # None: only the training function builds
    optimizer: str
    momentum: float
    train: TrainFunction | None = None
    #: What the task adds to each trial's manifest (a built-in model's muP parametrization,
    #: a transferred study's source): entries by name.
    records: Mapping[str, Any] = field(default_factory=dict)

    def model_and_data(self) -> tuple[Callable[..., nn.Module], DataSplit]:
        """The model builder and data the built-in loop, populations and the preflight need."""
        if self.build_model is None or self.data is None:
            raise TaskError(f"task {self.name!r} trains with its own function: no model and data")
        return self.build_model, self.data


def activation_module(name: str) -> nn.Module:
    modules: dict[str, Callable[[], nn.Module]] = {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(LEAKY_RELU_SLOPE),
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "gelu": nn.GELU,
        "selu": nn.SELU,
    }
    return modules[name]()


def mlp(
    input_shape: tuple[int, ...],
    n_classes: int,
    hidden: list[int],
    activation: str,
    dropout: float = 0.0,
    readout: type[nn.Linear] = nn.Linear,
) -> nn.Sequential:
    """Flatten, then Linear + activation (+ dropout) per hidden width, then a Linear head
    (``readout``: its class, muP's :class:`~tuner.mup.MuReadout` under ``mup``)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = int(np.prod(input_shape))
    for size in hidden:
        layers += [nn.Linear(width, size), activation_module(activation)]
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
        width = size
    layers.append(readout(width, n_classes))
    return nn.Sequential(*layers)


def cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    channels: list[int],
    kernel_size: int,
    activation: str,
    dropout: float = 0.0,
    readout: type[nn.Linear] = nn.Linear,
) -> nn.Sequential:
    """Conv + activation (+ 2x2 max-pool while the image is large enough) per stage, then
    (dropout and) a Linear head (``readout``: its class)."""
    if len(input_shape) != 3:
        raise TaskError(
            f"model 'cnn' needs image data (C, H, W); got samples of shape {input_shape}"
        )
    in_ch, height, width = input_shape
    layers: list[nn.Module] = []
    for out_ch in channels:
        layers += [
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
            activation_module(activation),
        ]
        if min(height, width) >= 4:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        in_ch = out_ch
    layers += [nn.Flatten(), *([nn.Dropout(dropout)] if dropout > 0 else [])]
    layers.append(readout(in_ch * height * width, n_classes))
    return nn.Sequential(*layers)


def _plugin_data(plugin: object, spec: PluginTask) -> DataSplit:
    loader = getattr(plugin, "load_data", None)
    if loader is None:
        return load_dataset(spec.dataset, val_fraction=spec.val_fraction, seed=spec.split_seed)
    data = loader()
    if isinstance(data, DataSplit):
        return data
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TaskError(
            f"task plugin {spec.plugin!r}: load_data() must return a DataSplit or (x, y)"
        ) from None
    return split_and_normalize(
        np.asarray(x),
        np.asarray(y),
        name=spec.plugin,
        val_fraction=spec.val_fraction,
        seed=spec.split_seed,
    )


#: The most parameters a built-in model may have (``TUNER_MAX_MODEL_PARAMETERS``).
DEFAULT_MAX_MODEL_PARAMETERS = 50_000_000


def max_model_parameters() -> int:
    """The setting, read when a task is built (so a service's environment decides)."""
    raw = os.environ.get("TUNER_MAX_MODEL_PARAMETERS", "")
    return int(raw) if raw.strip().isdigit() else DEFAULT_MAX_MODEL_PARAMETERS


def _check_size(build: Callable[..., nn.Module], spec: BuiltinTask) -> None:
    """Build the model on the meta device (shapes, no memory) and count its parameters: a
    spec asking for a model too large to train is refused before anything is allocated."""
    with torch.device("meta"):
        model = build()
    count = sum(p.numel() for p in model.parameters())
    limit = max_model_parameters()
    if count > limit:
        field = "hidden" if spec.model == "mlp" else "channels"
        message = (
            f"the model would have {count:,} parameters; the limit is {limit:,} "
            "(setting TUNER_MAX_MODEL_PARAMETERS)"
        )
        raise SpecError([SpecIssue(("task", field), message)])


def _builder(
    spec: BuiltinTask, data: DataSplit, widths: list[int], readout: type[nn.Linear]
) -> Callable[..., nn.Module]:
    """Fresh built-in models at ``widths``; they take the model knobs (dropout, activation)."""
    if spec.model == "mlp":

        def build(dropout: float = 0.0, activation: str | None = None) -> nn.Module:
            act = activation or spec.activation
            return mlp(data.input_shape, data.n_classes, widths, act, dropout, readout)

        return build

    def build_cnn(dropout: float = 0.0, activation: str | None = None) -> nn.Module:
        act = activation or spec.activation
        shape, classes = data.input_shape, data.n_classes
        return cnn(shape, classes, widths, spec.kernel_size, act, dropout, readout)

    return build_cnn


def build_task(spec: BuiltinTask | PluginTask) -> Task:
    """Load the task's data and return a model builder; raises TaskError on any failure."""
    if isinstance(spec, BuiltinTask):
        data = load_dataset(
            spec.dataset,
            val_fraction=spec.val_fraction,
            seed=spec.split_seed,
            regression=spec.objective == "regression",
        )
        widths = spec.hidden if spec.model == "mlp" else spec.channels
        if spec.parametrization == "mup":
            build = mup_builder(partial(_builder, spec, data), widths, spec.width_multiplier)
        else:
            build = _builder(spec, data, widths, nn.Linear)
        _check_size(build, spec)  # fail now, not in the first trial, if the shapes do not fit
        check_output_width(spec.model, build, data)
        return Task(
            spec.model,
            spec.activation,
            data,
            build,
            spec.optimizer,
            spec.momentum,
            records=width_records(spec),
        )

    entry = installed_plugins().get(spec.plugin)
    if entry is None:
        raise TaskError(f"no task plugin named {spec.plugin!r} is installed")
    try:
        plugin: Any = entry.load()(**spec.options)
    except Exception as exc:
        raise TaskError(f"task plugin {spec.plugin!r} failed to start: {exc!r}") from exc
    train = getattr(plugin, "train", None) if isinstance(plugin, TrainingPlugin) else None
    activation = spec.activation or getattr(plugin, "activation", None) or "relu"
    if not isinstance(plugin, TaskPlugin):
        if train is None:
            raise TaskError(
                f"task plugin {spec.plugin!r} returned neither build_model() nor train()"
            )
        own = _plugin_data(plugin, spec) if hasattr(plugin, "load_data") else None
        return Task(spec.plugin, activation, own, None, spec.optimizer, spec.momentum, train)
    model_data = _plugin_data(plugin, spec)

    def build_plugin() -> nn.Module:
        model = plugin.build_model(model_data.input_shape, model_data.n_classes)
        if not isinstance(model, nn.Module):
            raise TaskError(f"task plugin {spec.plugin!r}: build_model() returned {type(model)}")
        return model

    build_plugin()
    # a head narrower than the classes is a device-side assert on CUDA: refuse it now
    check_output_width(spec.plugin, build_plugin, model_data)
    return Task(
        spec.plugin, activation, model_data, build_plugin, spec.optimizer, spec.momentum, train
    )
