"""Per-tensor fillers: one function per initializer that writes a single weight block.

Each filler receives a fresh tensor on the generator's device and a :class:`Ctx` (resolved
parameters, task activation, whether the layer is the output layer, the generator, conv
groups), fills the tensor in place and returns the initializer really applied with its
effective parameters (a derived gain or nonlinearity included).

Torch spellings call (or write out) the ``torch.nn.init`` function of that name with its
defaults; Keras spellings follow Keras 3's formulas. The same rule applies to every layer,
the output layer included, except under ``gain: auto``, where the gain is
``calculate_gain`` of the task's activation on the layers it follows and 1 on the output
layer, which no activation follows. :data:`FILLERS` maps canonical names to them;
``default``, ``pretrained`` and ``lsuv`` have no filler and are handled by
:mod:`tuner.inits._apply`, which also iterates the layers and gate blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.inits._gains import LEAKY_RELU_SLOPE, TORCH_NONLINEARITY, Nonlinearity, activation_gain
from tuner.spec import AUTO

# Std of a standard normal truncated to [-2, 2]. Keras divides by it so that truncated draws
# end up with the intended std (lecun_normal, variance_scaling with truncated_normal).
_TRUNC_STD = 0.87962566103423978


def fans(tensor: torch.Tensor) -> tuple[int, int]:
    """``torch.nn.init._calculate_fan_in_and_fan_out``: conv fans include the receptive field."""
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


# ---------------------------------------------------------------------------------------------
# Fillers: write one weight block (a fresh tensor on the generator's device) in place and return
# (the initializer really applied, its effective parameters).


@dataclass(frozen=True)
class Ctx:
    params: Mapping[str, Any]
    activation: str
    is_last: bool
    generator: torch.Generator
    groups: int  # conv groups, for dirac

    @property
    def gain(self) -> float:
        gain = self.params["gain"]
        if gain != AUTO:
            return float(gain)
        return 1.0 if self.is_last else activation_gain(self.activation)

    def gain_params(self) -> dict[str, Any]:
        """The gain as recorded: its value, and ``gain_rule: auto`` when it was derived."""
        rule = {"gain_rule": AUTO} if self.params["gain"] == AUTO else {}
        return {"gain": self.gain, **rule}


Filler = Callable[[torch.Tensor, Ctx], tuple[str, dict[str, Any]]]
_Result = tuple[str, dict[str, Any]]


def _zeros(buf: torch.Tensor, ctx: Ctx) -> _Result:
    buf.zero_()
    return "zeros", {}


def _constant(buf: torch.Tensor, ctx: Ctx) -> _Result:
    buf.fill_(ctx.params["val"])
    return "constant", {"val": ctx.params["val"]}


def _uniform(buf: torch.Tensor, ctx: Ctx) -> _Result:
    a, b = ctx.params["a"], ctx.params["b"]
    nn.init.uniform_(buf, a, b, generator=ctx.generator)
    return "uniform", {"a": a, "b": b}


def _normal(buf: torch.Tensor, ctx: Ctx) -> _Result:
    mean, std = ctx.params["mean"], ctx.params["std"]
    nn.init.normal_(buf, mean, std, generator=ctx.generator)
    return "normal", {"mean": mean, "std": std}


def _trunc(buf: torch.Tensor, mean: float, std: float, generator: torch.Generator) -> None:
    """Keras's truncation: redrawn beyond mean +- 2 std (torch's a/b are absolute bounds)."""
    nn.init.trunc_normal_(buf, mean, std, mean - 2 * std, mean + 2 * std, generator=generator)


def _trunc_normal(buf: torch.Tensor, ctx: Ctx) -> _Result:
    mean, std, a, b = (ctx.params[k] for k in ("mean", "std", "a", "b"))
    nn.init.trunc_normal_(buf, mean, std, a, b, generator=ctx.generator)
    return "trunc_normal", {"mean": mean, "std": std, "a": a, "b": b}


def _xavier_uniform(buf: torch.Tensor, ctx: Ctx) -> _Result:
    nn.init.xavier_uniform_(buf, ctx.gain, generator=ctx.generator)
    return "xavier_uniform", ctx.gain_params()


def _xavier_normal(buf: torch.Tensor, ctx: Ctx) -> _Result:
    nn.init.xavier_normal_(buf, ctx.gain, generator=ctx.generator)
    return "xavier_normal", ctx.gain_params()


def _kaiming(buf: torch.Tensor, ctx: Ctx, uniform: bool) -> _Result:
    a: float | None = ctx.params["a"]
    mode: str = ctx.params["mode"]
    nonlinearity: Nonlinearity
    # The task's activation is torch's `nonlinearity` on every layer. An explicit `a` on a
    # rectifier means leaky_relu with that slope (torch's own kaiming default; a=0 is relu).
    # For tanh/sigmoid/selu torch ignores `a`, and so do we.
    if ctx.activation in ("relu", "gelu"):
        nonlinearity = "relu" if a is None else "leaky_relu"
    elif ctx.activation == "leaky_relu":
        nonlinearity, a = "leaky_relu", LEAKY_RELU_SLOPE if a is None else a
    else:
        nonlinearity, a = TORCH_NONLINEARITY[ctx.activation][0], None
    gain = float(nn.init.calculate_gain(nonlinearity, a))
    fan_in, fan_out = fans(buf)
    std = gain / math.sqrt(max(1, fan_in if mode == "fan_in" else fan_out))
    if uniform:
        bound = math.sqrt(3.0) * std
        nn.init.uniform_(buf, -bound, bound, generator=ctx.generator)
    else:
        nn.init.normal_(buf, 0.0, std, generator=ctx.generator)
    name = "kaiming_uniform" if uniform else "kaiming_normal"
    return name, {"a": a, "mode": mode, "nonlinearity": nonlinearity, "gain": gain}


def _scaled(buf: torch.Tensor, ctx: Ctx, scale: float, mode: str, dist: str) -> None:
    """keras.initializers.VarianceScaling(scale, mode, distribution), exactly."""
    fan_in, fan_out = fans(buf)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    variance = scale / max(1.0, fan)
    if dist == "truncated_normal":
        _trunc(buf, 0.0, math.sqrt(variance) / _TRUNC_STD, ctx.generator)
    elif dist == "untruncated_normal":
        nn.init.normal_(buf, 0.0, math.sqrt(variance), generator=ctx.generator)
    else:
        limit = math.sqrt(3.0 * variance)
        nn.init.uniform_(buf, -limit, limit, generator=ctx.generator)


def _variance_scaling(buf: torch.Tensor, ctx: Ctx) -> _Result:
    scale, mode, dist = ctx.params["scale"], ctx.params["mode"], ctx.params["distribution"]
    _scaled(buf, ctx, scale, mode, dist)
    return "variance_scaling", {"scale": scale, "mode": mode, "distribution": dist}


# Keras 3's named variance-scaling initializers: (scale, mode, distribution).
_KERAS_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}


def _keras_scaling(name: str) -> Filler:
    scale, mode, dist = _KERAS_SCALING[name]

    def fill(buf: torch.Tensor, ctx: Ctx) -> _Result:
        _scaled(buf, ctx, scale, mode, dist)
        return name, {"scale": scale, "mode": mode, "distribution": dist}

    return fill


def _random_uniform(buf: torch.Tensor, ctx: Ctx) -> _Result:
    low, high = ctx.params["minval"], ctx.params["maxval"]
    nn.init.uniform_(buf, low, high, generator=ctx.generator)
    return "random_uniform", {"minval": low, "maxval": high}


def _random_normal(buf: torch.Tensor, ctx: Ctx) -> _Result:
    mean, std = ctx.params["mean"], ctx.params["stddev"]
    nn.init.normal_(buf, mean, std, generator=ctx.generator)
    return "random_normal", {"mean": mean, "stddev": std}


def _truncated_normal(buf: torch.Tensor, ctx: Ctx) -> _Result:
    mean, std = ctx.params["mean"], ctx.params["stddev"]
    _trunc(buf, mean, std, ctx.generator)
    return "truncated_normal", {"mean": mean, "stddev": std}


def _orthogonal(buf: torch.Tensor, ctx: Ctx) -> _Result:
    nn.init.orthogonal_(buf, ctx.gain, generator=ctx.generator)
    return "orthogonal", ctx.gain_params()


def _sparse(buf: torch.Tensor, ctx: Ctx) -> _Result:
    # Same semantics as torch.nn.init.sparse_ (which draws its row permutations from the global
    # RNG, not the generator, so it is not reproducible); conv weights are flattened to 2-D.
    sparsity, std = ctx.params["sparsity"], ctx.params["std"]
    matrix = buf.view(buf.shape[0], -1)
    rows, cols = matrix.shape
    n_zeros = math.ceil(sparsity * rows)
    nn.init.normal_(matrix, 0.0, std, generator=ctx.generator)
    if n_zeros:
        # argsort of uniform noise = an independent random permutation of the rows per column
        noise = torch.rand(rows, cols, generator=ctx.generator, device=buf.device)
        matrix.scatter_(0, noise.argsort(dim=0)[:n_zeros], 0.0)
    return "sparse", {"sparsity": sparsity, "std": std}


def _eye(buf: torch.Tensor, ctx: Ctx) -> _Result:
    """eye for 2-D weights, dirac for conv weights (both names share this)."""
    if buf.dim() == 2:
        nn.init.eye_(buf)
        return "eye", {}
    nn.init.dirac_(buf, groups=ctx.groups)
    return "dirac", {"groups": ctx.groups}


def _identity(buf: torch.Tensor, ctx: Ctx) -> _Result:
    """Keras Identity(gain): gain * eye for 2-D weights; conv weights get gain * dirac."""
    applied, params = _eye(buf, ctx)
    buf.mul_(ctx.gain)
    return ("identity" if applied == "eye" else "dirac"), {**params, **ctx.gain_params()}


FILLERS: dict[str, Filler] = {
    "zeros": _zeros,
    "constant": _constant,
    "uniform": _uniform,
    "normal": _normal,
    "trunc_normal": _trunc_normal,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "kaiming_uniform": lambda buf, ctx: _kaiming(buf, ctx, uniform=True),
    "kaiming_normal": lambda buf, ctx: _kaiming(buf, ctx, uniform=False),
    "orthogonal": _orthogonal,
    "sparse": _sparse,
    "eye": _eye,
    "dirac": _eye,
    "variance_scaling": _variance_scaling,
    **{name: _keras_scaling(name) for name in _KERAS_SCALING},
    "random_uniform": _random_uniform,
    "random_normal": _random_normal,
    "truncated_normal": _truncated_normal,
    "identity": _identity,
}
