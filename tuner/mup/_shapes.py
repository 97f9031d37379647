"""Base shapes: which dimension of each parameter is a width, and its width multiplier.

As the ``mup`` package's ``InfShape``: each dimension of a parameter is *finite* (it does not
grow with the model's width: input features, classes, kernel sizes) or a *width* (it does),
with a base size. A width dimension's multiplier is ``size / base``; a parameter with two
width dimensions (a hidden weight) is matrix-like, with one (an input weight, a hidden bias,
the readout's weight) vector-like, with none fixed. The shapes ride on the parameters
themselves (attribute :data:`SHAPE_ATTR`), so an optimizer built from ``model.parameters()``
finds them, as ``mup.MuAdam`` finds ``p.infshape``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tuner.errors import TaskError

#: The attribute each parameter's :class:`WidthShape` is stored under.
SHAPE_ATTR = "mup_shape"

ShapeSource = nn.Module | Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class WidthDim:
    """One dimension: its size and, for a width dimension, its base size (else None)."""

    size: int
    base: float | None = None

    @property
    def is_width(self) -> bool:
        return self.base is not None

    @property
    def multiplier(self) -> float:
        """``size / base`` for a width dimension, 1 for a finite one (mup's ``width_mult``)."""
        return self.size / self.base if self.base is not None else 1.0


@dataclass(frozen=True)
class WidthShape:
    """A parameter's dimensions, in the parameter's order (weights: fan_out, fan_in, ...)."""

    dims: tuple[WidthDim, ...]

    @property
    def n_width(self) -> int:
        """How many dimensions are widths (mup's ``ninf``)."""
        return sum(d.is_width for d in self.dims)

    @property
    def multiplier(self) -> float:
        """The multiplier of the last width dimension (fan_in for a hidden weight), 1 if none
        (mup's ``InfShape.width_mult``)."""
        widths = [d for d in self.dims if d.is_width]
        return widths[-1].multiplier if widths else 1.0

    @property
    def fan_in_multiplier(self) -> float:
        return self.dims[1].multiplier if len(self.dims) >= 2 else 1.0

    @property
    def fan_out_multiplier(self) -> float:
        return self.dims[0].multiplier if self.dims else 1.0

    @property
    def role(self) -> str:
        """``matrix`` (two width dimensions), ``vector`` (one) or ``fixed`` (none)."""
        return {0: "fixed", 1: "vector", 2: "matrix"}.get(self.n_width, "tensor")


def shape_of(param: torch.Tensor) -> WidthShape | None:
    """The parameter's base shape, or None when none was set."""
    shape = getattr(param, SHAPE_ATTR, None)
    return shape if isinstance(shape, WidthShape) else None


def has_base_shapes(model_or_params: nn.Module | Iterable[torch.Tensor]) -> bool:
    """Whether any parameter carries a base shape (the model is in muP)."""
    params = (
        model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    )
    return any(shape_of(p) is not None for p in params)


def _shapes(source: ShapeSource) -> dict[str, tuple[int, ...]]:
    if isinstance(source, nn.Module):
        return {name: tuple(p.shape) for name, p in source.named_parameters()}
    return {name: tuple(int(d) for d in dims) for name, dims in source.items()}


def _same_names(what: str, names: Mapping[str, object], model: Mapping[str, object]) -> None:
    extra, missing = sorted(set(names) - set(model)), sorted(set(model) - set(names))
    if extra or missing:
        detail = f"has no parameter {extra[0]!r}" if extra else f"lacks parameter {missing[0]!r}"
        raise TaskError(f"base shapes: the {what} model {detail} the model has; build it alike")


def _check_ranks(
    what: str, ref: Mapping[str, tuple[int, ...]], model: Mapping[str, tuple[int, ...]]
) -> None:
    for name, dims in ref.items():
        if len(dims) != len(model[name]):
            raise TaskError(
                f"base shapes: parameter {name!r} has shape {model[name]} but "
                f"{dims} in the {what} model"
            )


def attach_shapes(model: nn.Module, shapes: Mapping[str, WidthShape]) -> None:
    """Store each parameter's :class:`WidthShape` on it (every parameter must have one)."""
    params = dict(model.named_parameters())
    _same_names("base", shapes, params)
    for name, param in params.items():
        sizes = tuple(d.size for d in shapes[name].dims)
        if sizes != tuple(param.shape):
            raise TaskError(f"base shapes: {name!r} has shape {tuple(param.shape)}, not {sizes}")
        setattr(param, SHAPE_ATTR, shapes[name])


def zip_shapes(
    model: ShapeSource, base: ShapeSource, delta: ShapeSource | None = None
) -> dict[str, WidthShape]:
    """Each parameter's shape against ``base`` (mup's ``set_base_shapes`` with ``delta``).

    A dimension is a width when it differs between ``base`` and ``delta`` (a model of the
    same architecture at another width); without ``delta``, when it differs between ``base``
    and ``model`` (so a model at its base width has no widths: pass a delta then).
    """
    sizes, base_sizes = _shapes(model), _shapes(base)
    ref = _shapes(delta) if delta is not None else sizes
    _same_names("base", base_sizes, sizes)
    _same_names("delta", ref, sizes)
    _check_ranks("base", base_sizes, sizes)
    _check_ranks("delta", ref, sizes)
    return {
        name: WidthShape(
            tuple(
                WidthDim(size, float(b) if b != r else None)
                for size, b, r in zip(dims, base_sizes[name], ref[name], strict=True)
            )
        )
        for name, dims in sizes.items()
    }


def scaled_shapes(
    model: ShapeSource, delta: ShapeSource, multiplier: float
) -> dict[str, WidthShape]:
    """Each parameter's shape when every width grew ``multiplier`` times from its base: the
    widths are the dimensions that differ between ``model`` and ``delta`` (the same
    architecture at another width), each with base ``size / multiplier``."""
    if not multiplier > 0:
        raise ValueError(f"a width multiplier must be > 0, got {multiplier}")
    sizes, ref = _shapes(model), _shapes(delta)
    _same_names("delta", ref, sizes)
    _check_ranks("delta", ref, sizes)
    return {
        name: WidthShape(
            tuple(
                WidthDim(size, size / multiplier if size != r else None)
                for size, r in zip(dims, ref[name], strict=True)
            )
        )
        for name, dims in sizes.items()
    }
