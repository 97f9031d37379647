"""The initializer registry: names and parameter validation.

Everything here is pure data and checking, with no weights touched (and no torch): the task
activations, the description of every initializer and its parameters
(:class:`InitializerInfo`, :class:`ParamInfo`, :data:`INITIALIZERS`), name lookup
(:func:`canonical_name`) and :func:`resolve_params`, which validates user parameters and
fills in defaults. :mod:`tuner.inits._fillers` writes the weights and :mod:`tuner.inits._apply`
applies them to a model.

A name means what its library means, with that library's defaults, on every layer: torch
spellings (``xavier_normal``, ``kaiming_uniform``, ``trunc_normal``, ...) are the functions
of ``torch.nn.init``; Keras spellings (``glorot_normal``, ``he_uniform``, ``lecun_normal``,
``variance_scaling``, ``identity``, ...) are Keras 3's initializers. A gain derived from the
task's activation is asked for explicitly (``gain: auto``), never applied silently.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from tuner.errors import InitializerError

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu")
#: A gain parameter's value for "derived from the task's activation".
AUTO = "auto"
#: The layer groups a study may give their own initializer (see ``tuner.inits``).
LAYER_GROUPS: tuple[str, ...] = (
    "input",  # the first layer the input reaches (an RNN's input-to-hidden weights of layer 0)
    "hidden",  # every other layer
    "output",  # the last layer
    "recurrent",  # hidden-to-hidden (and projection) weights of RNN/LSTM/GRU
    "embedding",  # nn.Embedding tables
    "residual_last",  # the last layer of each residual branch, as the model marks it
)
#: Initializers that act on the whole model, never on one layer group.
WHOLE_MODEL = frozenset({"default", "lsuv", "pretrained"})
# ---------------------------------------------------------------------------------------------
# Registry


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return repr(value)
    return repr(int(value)) if isinstance(value, numbers.Integral) else repr(float(value))


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of an initializer: its kind, default and valid range."""

    kind: Literal["float", "int", "str", "bool", "path"]
    default: Any  # None: required (a path) or derived (gain, a: from the activation)
    choices: tuple[str, ...] | None = None
    min: float | None = None
    min_exclusive: bool = False
    max: float | None = None
    auto: bool = False  # also accepts the string "auto" (a gain derived from the activation)

    @property
    def required(self) -> bool:
        """True when the user must give a value (no default, nothing to derive it from)."""
        return self.default is None and self.kind == "path"

    def check(self, value: Any) -> str | None:
        """None if ``value`` is valid, else a sentence such as ``must be > 0, got -1.0``."""
        if value is None:
            if self.default is None:
                return "is required" if self.required else None
            return f"must be given a {self.kind} value, got None"
        if self.auto and value == AUTO:
            return None
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind == "path":
            if not isinstance(value, str | os.PathLike) or not os.fspath(value):
                return f"must be a file path, got {value!r}"
            return None
        if self.kind == "str":
            if not isinstance(value, str):
                return f"must be a string, got {value!r}"
            if self.choices is not None and value not in self.choices:
                return f"must be one of {', '.join(self.choices)}, got {value!r}"
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            either = f" or {AUTO!r}" if self.auto else ""
            return f"must be a number{either}, got {value!r}"
        number = float(value)
        if not math.isfinite(number):
            return f"must be a finite number, got {_fmt(value)}"
        if self.kind == "int" and not number.is_integer():
            return f"must be an integer, got {_fmt(value)}"
        if self.min is not None:
            if self.min_exclusive and number <= self.min:
                return f"must be > {self.min:g}, got {_fmt(value)}"
            if not self.min_exclusive and number < self.min:
                return f"must be >= {self.min:g}, got {_fmt(value)}"
        if self.max is not None and number > self.max:
            return f"must be <= {self.max:g}, got {_fmt(value)}"
        return None


@dataclass(frozen=True)
class InitializerInfo:
    """An initializer as users see it: canonical name, parameters, what the model needs."""

    name: str
    params: Mapping[str, ParamInfo]
    needs: Literal["any", "linear", "conv"]
    summary: str


_GAIN = ParamInfo("float", 1.0, min=0.0, min_exclusive=True, auto=True)
_MEAN = ParamInfo("float", 0.0)
_STD = ParamInfo("float", 1.0, min=0.0, min_exclusive=True)
_SLOPE = ParamInfo("float", None, min=0.0)  # kaiming's a: derived from the activation
_FAN_MODE = ParamInfo("str", "fan_in", ("fan_in", "fan_out"))
_KERAS_STD = ParamInfo("float", 0.05, min=0.0, min_exclusive=True)
_AUTO_NOTE = "; gain: auto takes it from the activation (1 on the output layer)"


def _info(
    name: str, summary: str, *, needs: Literal["any", "linear", "conv"] = "any", **params: ParamInfo
) -> InitializerInfo:
    return InitializerInfo(name, MappingProxyType(params), needs, summary)


_TORCH = (
    _info("default", "PyTorch's own reset_parameters() of each layer, reproducible from the seed"),
    _info("zeros", "every weight 0 (a baseline: units never become different from each other)"),
    _info("constant", "torch constant_: every weight = val", val=ParamInfo("float", 0.0)),
    _info(
        "uniform", "torch uniform_: U(a, b)", a=ParamInfo("float", 0.0), b=ParamInfo("float", 1.0)
    ),
    _info("normal", "torch normal_: N(mean, std^2)", mean=_MEAN, std=_STD),
    _info(
        "trunc_normal",
        "torch trunc_normal_: N(mean, std^2) redrawn outside the absolute bounds [a, b]",
        mean=_MEAN,
        std=_STD,
        a=ParamInfo("float", -2.0),
        b=ParamInfo("float", 2.0),
    ),
    _info(
        "xavier_uniform",
        "torch: U(+-gain*sqrt(6/(fan_in+fan_out))), gain 1" + _AUTO_NOTE,
        gain=_GAIN,
    ),
    _info(
        "xavier_normal", "torch: N(0, gain^2*2/(fan_in+fan_out)), gain 1" + _AUTO_NOTE, gain=_GAIN
    ),
    _info(
        "kaiming_uniform",
        "torch: U(+-gain*sqrt(3/fan)), gain = calculate_gain(the task's activation, a)",
        a=_SLOPE,
        mode=_FAN_MODE,
    ),
    _info(
        "kaiming_normal",
        "torch: N(0, gain^2/fan), gain = calculate_gain(the task's activation, a)",
        a=_SLOPE,
        mode=_FAN_MODE,
    ),
    _info(
        "orthogonal",
        "torch orthogonal_: (semi-)orthogonal times gain, gain 1" + _AUTO_NOTE,
        gain=_GAIN,
    ),
    _info(
        "sparse",
        "ceil(sparsity*rows) zeros per column, the rest N(0, std^2) (Martens 2010)",
        sparsity=ParamInfo("float", 0.1, min=0.0, max=1.0),
        std=ParamInfo("float", 0.01, min=0.0, min_exclusive=True),
    ),
    _info(
        "eye", "torch eye_: identity matrix for 2-D weights; conv weights get dirac", needs="linear"
    ),
    _info("dirac", "torch dirac_: identity convolution; 2-D weights get eye", needs="conv"),
)
_KERAS = (
    _info("glorot_uniform", "Keras: U(+-sqrt(6/(fan_in+fan_out)))"),
    _info("glorot_normal", "Keras: truncated normal, variance 1/fan_avg, cut at 2 std"),
    _info("he_uniform", "Keras: U(+-sqrt(6/fan_in))"),
    _info("he_normal", "Keras: truncated normal, variance 2/fan_in, cut at 2 std"),
    _info("lecun_uniform", "Keras (for SELU): U(+-sqrt(3/fan_in))"),
    _info("lecun_normal", "Keras (for SELU): truncated normal, variance 1/fan_in, cut at 2 std"),
    _info(
        "variance_scaling",
        "Keras VarianceScaling: variance scale/fan, normal (cut at 2 std or not) or uniform",
        scale=ParamInfo("float", 1.0, min=0.0, min_exclusive=True),
        mode=ParamInfo("str", "fan_in", ("fan_in", "fan_out", "fan_avg")),
        distribution=ParamInfo(
            "str", "truncated_normal", ("truncated_normal", "untruncated_normal", "uniform")
        ),
    ),
    _info(
        "random_uniform",
        "Keras RandomUniform: U(minval, maxval)",
        minval=ParamInfo("float", -0.05),
        maxval=ParamInfo("float", 0.05),
    ),
    _info("random_normal", "Keras RandomNormal: N(mean, stddev^2)", mean=_MEAN, stddev=_KERAS_STD),
    _info(
        "truncated_normal",
        "Keras TruncatedNormal: N(mean, stddev^2) redrawn beyond 2 stddev",
        mean=_MEAN,
        stddev=_KERAS_STD,
    ),
    _info(
        "identity",
        "Keras Identity: gain times the identity matrix for 2-D weights (conv weights: dirac)"
        + _AUTO_NOTE,
        needs="linear",
        gain=_GAIN,
    ),
)
_OURS = (
    _info(
        "lsuv",
        "orthogonal, then rescale each layer to unit output variance on a batch "
        "(Mishkin & Matas 2016)",
        tol=ParamInfo("float", 0.1, min=0.0, min_exclusive=True),
        max_iter=ParamInfo("int", 10, min=1.0, max=1000.0),
    ),
    _info(
        "pretrained",
        "load a state dict saved with torch.save(model.state_dict(), path)",
        path=ParamInfo("path", None),
        strict=ParamInfo("bool", True),
    ),
)

INITIALIZERS: Mapping[str, InitializerInfo] = MappingProxyType(
    {info.name: info for info in (*_TORCH, *_KERAS, *_OURS)}
)
#: Which library's semantics each name follows ("torch", "keras" or "tuner").
LIBRARY: Mapping[str, str] = MappingProxyType(
    {
        **{i.name: "torch" for i in _TORCH},
        **{i.name: "keras" for i in _KERAS},
        **{i.name: "tuner" for i in _OURS},
    }
)


def canonical_name(name: str) -> str:
    """An initializer name as the registry spells it (lower case), or an error listing them."""
    key = name.strip().lower() if isinstance(name, str) else ""
    if key in INITIALIZERS:
        return key
    raise InitializerError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")


# Pairs of bounds that must be strictly ordered.
_ORDERED = {
    "uniform": [("a", "b")],
    "trunc_normal": [("a", "b")],
    "random_uniform": [("minval", "maxval")],
}


def resolve_params(info: InitializerInfo, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against ``info`` and fill in defaults (None stays: derived)."""
    unknown = sorted(set(params) - set(info.params))
    if unknown:
        known = ", ".join(info.params) or "none"
        raise InitializerError(
            f"initializer {info.name!r} has no parameter {unknown[0]!r}; its parameters: {known}"
        )
    resolved: dict[str, Any] = {}
    for pname, pinfo in info.params.items():
        value = params.get(pname, pinfo.default)
        problem = pinfo.check(value)
        if problem is not None:
            raise InitializerError(f"parameter {pname!r} of initializer {info.name!r} {problem}")
        if value is not None and value != AUTO and pinfo.kind == "float":
            value = float(value)
        elif value is not None and pinfo.kind == "int":
            value = int(value)
        elif value is not None and pinfo.kind == "path":
            value = os.fspath(value)
        resolved[pname] = value
    for low, high in _ORDERED.get(info.name, ()):
        if not resolved[low] < resolved[high]:
            raise InitializerError(
                f"parameter {high!r} of initializer {info.name!r} must be greater than {low}, "
                f"got {low}={resolved[low]!r}, {high}={resolved[high]!r}"
            )
    if info.name == "trunc_normal":  # where torch warns that its draws would be wrong
        mean, std, a, b = (resolved[k] for k in ("mean", "std", "a", "b"))
        if mean < a - 2 * std or mean > b + 2 * std:
            raise InitializerError(
                "parameter 'mean' of initializer 'trunc_normal' must be within 2 std of [a, b], "
                f"got mean={mean!r}, std={std!r}, a={a!r}, b={b!r}"
            )
    return resolved
