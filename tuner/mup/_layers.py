"""The readout layer and the parameter rescaling of muP, as the ``mup`` package does them.

:class:`MuReadout` is ``mup.MuReadout``: a Linear whose input is multiplied by
``output_mult / width_mult`` (1/m) in the forward pass. :func:`set_base_shapes` is
``mup.set_base_shapes(model, base, delta=delta, rescale_params=True)``: it stores the base
shapes, refuses a plain Linear that maps a width to a fixed size (it must be a readout), and
rescales what a fan_in-scaled initialization (PyTorch's default, He, LeCun) leaves wrong:
the readout's weight and bias by ``sqrt(m)``, and the bias of every Linear/conv layer whose
fan_in is a width by ``sqrt(fan_in multiplier)``. Hidden and input weights are left alone: a
fan_in-scaled draw already has muP's variance there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from tuner.errors import TaskError
from tuner.mup._shapes import (
    ShapeSource,
    attach_shapes,
    scaled_shapes,
    shape_of,
    zip_shapes,
)


class MuReadout(nn.Linear):
    """muP's output layer (``mup.MuReadout``): ``Linear(output_mult * x / width_mult)``.

    ``width_mult`` is its fan_in's multiplier once base shapes are set, 1 before (it is then
    a plain Linear). Use it for every layer that maps a width to a fixed size (the classes).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        output_mult: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.output_mult = output_mult

    @property
    def width_mult(self) -> float:
        shape = shape_of(self.weight)
        return shape.multiplier if shape is not None else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.output_mult * x / self.width_mult)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output_mult={self.output_mult}"


def check_readouts(model: nn.Module) -> None:
    """Refuse a plain Linear from a width to a fixed size (mup's ``assert_hidden_size_inf``):
    without the readout's 1/m its output would grow with the width."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not isinstance(module, MuReadout):
            shape = shape_of(module.weight)
            if shape is not None and shape.dims[1].is_width and not shape.dims[0].is_width:
                raise TaskError(
                    f"layer {name!r} maps a width ({module.in_features}) to a fixed size "
                    f"({module.out_features}): make it a tuner.mup.MuReadout, muP's output layer"
                )


def rescale_factors(model: nn.Module, *, skip: Collection[str] = ()) -> dict[str, float]:
    """What :func:`rescale_parameters` multiplies each parameter by, ``{name: factor}`` (the
    factors that are not 1): the readout's weight and bias ``sqrt(m)``, a Linear/conv
    layer's bias ``sqrt(fan_in multiplier)``. ``skip``: qualified module names left alone."""
    factors: dict[str, float] = {}
    for name, module in model.named_modules():
        if name in skip or not isinstance(module, nn.Linear | _ConvNd):
            continue
        shape = shape_of(module.weight)
        if shape is None:
            continue
        prefix = f"{name}." if name else ""
        names: tuple[str, ...]
        if isinstance(module, MuReadout):  # mup: the bias first, then the weight
            names, factor = ("bias", "weight"), module.width_mult**0.5
        else:
            names, factor = ("bias",), shape.fan_in_multiplier**0.5
        for pname in names:
            if getattr(module, pname) is not None and factor != 1.0:
                factors[prefix + pname] = factor
    return factors


def rescale_parameters(model: nn.Module, *, skip: Collection[str] = ()) -> dict[str, float]:
    """mup's rescaling of freshly initialized parameters, in place (:func:`rescale_factors`);
    not idempotent: call it once after each initialization. ``skip``: qualified module
    names to leave alone (weights loaded from a checkpoint). Returns what it scaled."""
    factors = rescale_factors(model, skip=skip)
    with torch.no_grad():
        for name, factor in factors.items():
            model.get_parameter(name).data *= factor
    return factors


def set_base_shapes(
    model: nn.Module,
    base: ShapeSource,
    *,
    delta: ShapeSource | None = None,
    rescale: bool = True,
) -> nn.Module:
    """Put ``model`` in muP relative to ``base`` (``mup.set_base_shapes``).

    ``base``: the same architecture at the base width (a model, best built under
    ``torch.device("meta")``, or ``{parameter name: shape}``). ``delta``: the same at another
    width, so the widths are known even when ``model`` is at its base width. ``rescale``:
    rescale the current weights (:func:`rescale_parameters`); leave it off for weights loaded
    from a muP checkpoint. Returns ``model``.
    """
    attach_shapes(model, zip_shapes(model, base, delta))
    check_readouts(model)
    if rescale:
        rescale_parameters(model)
    return model


def set_width_multiplier(
    model: nn.Module, delta: ShapeSource, multiplier: float, *, rescale: bool = True
) -> nn.Module:
    """Put ``model`` in muP with every width ``multiplier`` times its base: the widths are the
    dimensions that differ from ``delta`` (the same architecture at another width)."""
    attach_shapes(model, scaled_shapes(model, delta, multiplier))
    check_readouts(model)
    if rescale:
        rescale_parameters(model)
    return model


def parametrize(
    make: Callable[[int], nn.Module], width: int, base_width: int, *, rescale: bool = True
) -> nn.Module:
    """``make(width)`` in muP with base width ``base_width``: the base (``make(base_width)``)
    and a delta (``make(2 * base_width)``) are built on the meta device for their shapes
    only. ``make`` builds the same architecture at any width, its output layer a
    :class:`MuReadout`. The one call a task's own training code needs before ``ctx.init``."""
    if width < 1 or base_width < 1:
        raise ValueError(f"widths must be >= 1, got width={width}, base_width={base_width}")
    model = make(width)
    with torch.device("meta"):
        base, delta = make(base_width), make(2 * base_width)
    return set_base_shapes(model, base, delta=delta, rescale=rescale)


def width_multiplier(model: nn.Module) -> float:
    """The largest width multiplier among ``model``'s parameters (1 without base shapes)."""
    shapes = [s for s in (shape_of(p) for p in model.parameters()) if s is not None]
    return max((d.multiplier for s in shapes for d in s.dims), default=1.0)
