"""Initializers on tensors: each name's filler, applied layer by layer to a model."""

from tuner.inits._apply import LayerRecord, applicability_error, apply_initializer
from tuner.inits._fillers import fans
from tuner.inits._gains import LEAKY_RELU_SLOPE, TORCH_NONLINEARITY, activation_gain
from tuner.inits._lsuv import lsuv_rescale

__all__ = [
    "LEAKY_RELU_SLOPE",
    "TORCH_NONLINEARITY",
    "LayerRecord",
    "activation_gain",
    "applicability_error",
    "apply_initializer",
    "fans",
    "lsuv_rescale",
]
