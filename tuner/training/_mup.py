"""muP in a trial: the rescaling after the searched initializer, and what the manifest says.

A model in muP (base shapes on its parameters: :mod:`tuner.mup`) is initialized by the
trial's initializer like any other, at its real shapes; then :func:`mup_rescale` does what
``mup.set_base_shapes(rescale_params=True)`` does. The optimizer's per-group lrs come from
``make_optimizer`` (:mod:`_loop`), which reads the same base shapes.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from tuner.inits import LayerRecord
from tuner.mup import describe, has_base_shapes, rescale_parameters
from tuner.tasks import Task
from tuner.training._loop import TrainConfig


def loaded_layers(layers: list[LayerRecord]) -> set[str]:
    """The layers whose weights ``pretrained`` loaded from a file."""
    return {layer.layer for layer in layers if layer.initializer == "pretrained"}


def mup_rescale(model: nn.Module, layers: list[LayerRecord]) -> None:
    """After an initializer, muP's rescaling of what it drew (a model without base shapes:
    nothing). The initializer draws at the model's real shapes by its own rule; then, as
    ``mup.set_base_shapes`` does, the readout's weight and bias are multiplied by sqrt(m)
    and the biases of layers whose fan_in is a width by sqrt(fan_in multiplier) (zero biases
    stay zero). Weights ``pretrained`` loaded stay as loaded. The layer records' std is the
    rescaled one."""
    if not has_base_shapes(model):
        return
    scaled = rescale_parameters(model, skip=loaded_layers(layers))
    for layer in layers:
        key = f"{layer.layer}.{layer.param}" if layer.layer else layer.param
        if key in scaled:
            weight = model.get_parameter(key).detach()
            layer.std = float(weight.double().std(correction=0)) if weight.numel() else 0.0


def task_records(
    task: Task, model: nn.Module, config: TrainConfig, layers: list[LayerRecord]
) -> dict[str, Any]:
    """The task's manifest entries; under muP, ``parametrization.params`` says per parameter
    its role, base shape and the factors on its lr, L2 lambda and initial values."""
    records = copy.deepcopy(dict(task.records))
    if has_base_shapes(model):
        entry = records.setdefault("parametrization", {"name": "mup"})
        entry["params"] = describe(model, config.optimizer, skip=loaded_layers(layers))
    return records
