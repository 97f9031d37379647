"""Per-parameter-group learning rates and L2 lambdas of muP (``mup.MuAdam``, ``mup.MuSGD``).

The rules, as ``mup/optim.py`` writes them (m: a parameter's width multiplier):

* Adam, AdamW (``MuAdam``, ``MuAdamW``): a matrix-like parameter (two width dimensions: a
  hidden weight) trains at ``lr / m`` (m of its fan_in) with L2 lambda ``wd * m``; every
  other parameter (input weights, biases, the readout) at ``lr`` and ``wd``. AdamW's decay is
  ``lr * wd`` per step, so mup's ``decoupled_wd=False`` keeps it width-independent.
* SGD (``MuSGD``): a vector-like parameter (one width dimension: an input weight, a hidden
  bias, the readout's weight) trains at ``lr * m`` with ``wd / m``; a matrix-like one at
  ``lr / r`` with ``wd * r``, r = (fan_in multiplier) / (fan_out multiplier), 1 when every
  width grows alike; a fixed one (the readout's bias) at ``lr`` and ``wd``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import torch
from torch import nn

from tuner.errors import TaskError
from tuner.mup._layers import MuReadout, rescale_factors
from tuner.mup._shapes import WidthShape, shape_of

ADAM_LIKE = ("adam", "adamw")
SGD_LIKE = ("sgd",)


def scaled_hyperparameters(
    shape: WidthShape, optimizer: str, lr: float, weight_decay: float
) -> tuple[str, float, float, float]:
    """``(kind, key, lr, weight_decay)`` of a parameter of ``shape`` under ``optimizer``:
    ``kind`` orders the groups as mup does, ``key`` is what parameters of one group share."""
    n_width = shape.n_width
    if n_width > 2:
        raise TaskError(f"muP takes at most two width dimensions per parameter, got {n_width}")
    if optimizer in ADAM_LIKE:
        if n_width == 2:
            m = shape.multiplier
            return "matrix", m, lr / m, weight_decay * m
        return "vector", 1.0, lr, weight_decay
    if optimizer in SGD_LIKE:
        if n_width == 1:
            m = shape.multiplier
            return "vector", m, lr * m, weight_decay / m
        if n_width == 2:
            ratio = shape.fan_in_multiplier / shape.fan_out_multiplier
            return "matrix", ratio, lr / ratio, weight_decay * ratio
        return "fixed", 1.0, lr, weight_decay
    raise TaskError(f"muP knows optimizers {', '.join(ADAM_LIKE + SGD_LIKE)}, not {optimizer!r}")


#: The order of the groups, per optimizer family, as mup builds them.
_ORDER = {"adam": ("matrix", "vector"), "sgd": ("matrix", "vector", "fixed")}


def param_groups(
    params: Iterable[torch.Tensor], optimizer: str, lr: float, weight_decay: float
) -> list[dict[str, Any]] | None:
    """The optimizer's parameter groups under muP; None when no parameter has a base shape
    (standard parametrization: one group, as before). A parameter without one beside
    parameters with one is refused (mup asserts the same)."""
    listed = list(params)
    shapes = [shape_of(p) for p in listed]
    if all(s is None for s in shapes):
        return None
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    for index, (param, shape) in enumerate(zip(listed, shapes, strict=True)):
        if shape is None:
            raise TaskError(
                f"parameter {index} (shape {tuple(param.shape)}) has no base shape while "
                "others have: set base shapes on the whole model (tuner.mup.set_base_shapes)"
            )
        kind, key, p_lr, p_wd = scaled_hyperparameters(shape, optimizer, lr, weight_decay)
        group = groups.setdefault((kind, key), {"params": [], "lr": p_lr, "weight_decay": p_wd})
        group["params"].append(param)
    family = "adam" if optimizer in ADAM_LIKE else "sgd"
    return [
        group
        for kind in _ORDER[family]
        for (k, _), group in groups.items()
        if k == kind  # within a kind, first-seen order, as mup's defaultdicts
    ]


def describe(
    model: nn.Module, optimizer: str, *, skip: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Per parameter with a base shape, what muP does to it, for a trial's manifest: its role
    (``readout``, ``matrix``, ``vector``, ``fixed``), shape and base shape, the factors on the
    lr and L2 lambda under ``optimizer``, and the factor on its initial values (after the
    initializer; ``skip``: modules whose weights were loaded, not rescaled)."""
    readouts = {id(m.weight) for m in model.modules() if isinstance(m, MuReadout)}
    scales = rescale_factors(model, skip=skip)
    out: list[dict[str, Any]] = []
    for name, param in model.named_parameters():
        shape = shape_of(param)
        if shape is None:
            continue
        _, _, lr_factor, wd_factor = scaled_hyperparameters(shape, optimizer, 1.0, 1.0)
        out.append(
            {
                "param": name,
                "role": "readout" if id(param) in readouts else shape.role,
                "shape": [d.size for d in shape.dims],
                "base_shape": [d.base for d in shape.dims],
                "lr_factor": lr_factor,
                "weight_decay_factor": wd_factor,
                "init_factor": scales.get(name, 1.0),
            }
        )
    return out
