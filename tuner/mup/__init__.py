"""muP (Tensor Programs V): base shapes, the readout layer, rescaling, per-group lrs.

What the ``mup`` package does, for the built-in models and for a task's own training code:
:func:`set_base_shapes` (or :func:`parametrize`, :func:`set_width_multiplier`) marks each
parameter's width dimensions against a base model, :class:`MuReadout` is the output layer,
:func:`rescale_parameters` corrects a fresh initialization, and :func:`param_groups` gives
an optimizer muP's per-group learning rates (``MuAdam``, ``MuSGD``).
"""

from tuner.mup._layers import (
    MuReadout,
    check_readouts,
    parametrize,
    rescale_factors,
    rescale_parameters,
    set_base_shapes,
    set_width_multiplier,
    width_multiplier,
)
from tuner.mup._optim import describe, param_groups, scaled_hyperparameters
from tuner.mup._shapes import (
    SHAPE_ATTR,
    WidthDim,
    WidthShape,
    has_base_shapes,
    scaled_shapes,
    shape_of,
    zip_shapes,
)

__all__ = [
    "SHAPE_ATTR",
    "MuReadout",
    "WidthDim",
    "WidthShape",
    "check_readouts",
    "describe",
    "has_base_shapes",
    "param_groups",
    "parametrize",
    "rescale_factors",
    "rescale_parameters",
    "scaled_hyperparameters",
    "scaled_shapes",
    "set_base_shapes",
    "set_width_multiplier",
    "shape_of",
    "width_multiplier",
    "zip_shapes",
]
