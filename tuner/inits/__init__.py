"""Initializers on tensors: each name's filler, applied layer by layer to a model."""

from tuner.inits._apply import applicability_error, apply_initializer
from tuner.inits._fillers import fans
from tuner.inits._gains import LEAKY_RELU_SLOPE, TORCH_NONLINEARITY, activation_gain
from tuner.inits._layers import GROUP_ATTRIBUTE, layer_groups, mark_group
from tuner.inits._lsuv import lsuv_rescale
from tuner.inits._records import LayerRecord

__all__ = [
    "GROUP_ATTRIBUTE",
    "LEAKY_RELU_SLOPE",
    "TORCH_NONLINEARITY",
    "LayerRecord",
    "activation_gain",
    "applicability_error",
    "apply_initializer",
    "fans",
    "layer_groups",
    "lsuv_rescale",
    "mark_group",
]
