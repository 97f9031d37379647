"""Activation gains: ``torch.nn.init.calculate_gain`` for the task activations."""

from __future__ import annotations

from typing import Literal

from torch import nn

from tuner.errors import InitializerError
from tuner.spec import ACTIVATIONS

LEAKY_RELU_SLOPE = 0.01

Nonlinearity = Literal["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
# activation -> (torch nonlinearity, its parameter). GELU has no entry in calculate_gain;
# it is close to ReLU for the magnitudes that matter, so it gets ReLU's sqrt(2).
TORCH_NONLINEARITY: dict[str, tuple[Nonlinearity, float | None]] = {
    "relu": ("relu", None),
    "leaky_relu": ("leaky_relu", LEAKY_RELU_SLOPE),
    "tanh": ("tanh", None),
    "sigmoid": ("sigmoid", None),
    "gelu": ("relu", None),
    "selu": ("selu", None),
    "linear": ("linear", None),
}


def activation_gain(activation: str) -> float:
    """``torch.nn.init.calculate_gain`` for a task activation (gelu ~ relu, leaky slope 0.01)."""
    try:
        nonlinearity, param = TORCH_NONLINEARITY[activation.strip().lower()]
    except KeyError:
        known = ", ".join((*ACTIVATIONS, "linear"))
        raise InitializerError(f"unknown activation {activation!r}; known: {known}") from None
    return float(nn.init.calculate_gain(nonlinearity, param))
