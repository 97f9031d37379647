"""The initializer registry: names, aliases and parameter validation.

Everything here is pure data and checking, with no weights touched (and no torch): the task
activations, the description of every initializer and its parameters
(:class:`InitializerInfo`, :class:`ParamInfo`, :data:`INITIALIZERS`), the accepted aliases
(:data:`ALIASES`, :func:`canonical_name`) and :func:`resolve_params`, which validates user
parameters and fills in defaults. :mod:`tuner.inits._fillers` writes the
weights and :mod:`tuner.inits._apply` applies them to a model.
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
            return f"must be a number, got {value!r}"
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


_GAIN = ParamInfo("float", None, min=0.0, min_exclusive=True)
_MEAN = ParamInfo("float", 0.0)
_STD = ParamInfo("float", 0.01, min=0.0, min_exclusive=True)
_SLOPE = ParamInfo("float", None, min=0.0)  # kaiming's a: derived from the activation
_FAN_MODE = ParamInfo("str", "fan_in", ("fan_in", "fan_out"))


def _info(
    name: str, summary: str, *, needs: Literal["any", "linear", "conv"] = "any", **params: ParamInfo
) -> InitializerInfo:
    return InitializerInfo(name, MappingProxyType(params), needs, summary)


INITIALIZERS: Mapping[str, InitializerInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            _info(
                "default",
                "PyTorch's own reset_parameters() of each layer, reproducible from the seed",
            ),
            _info(
                "zeros", "every weight 0 (a baseline: units never become different from each other)"
            ),
            _info("constant", "every weight = val", val=ParamInfo("float", 0.0)),
            _info("uniform", "U(a, b)", a=ParamInfo("float", -0.05), b=ParamInfo("float", 0.05)),
            _info("normal", "N(mean, std^2)", mean=_MEAN, std=_STD),
            _info(
                "trunc_normal", "N(mean, std^2) cut at mean +- 2 std (Keras)", mean=_MEAN, std=_STD
            ),
            _info("xavier_uniform", "Glorot: U(+-gain*sqrt(6/(fan_in+fan_out)))", gain=_GAIN),
            _info("xavier_normal", "Glorot: N(0, gain^2*2/(fan_in+fan_out))", gain=_GAIN),
            _info(
                "kaiming_uniform",
                "He: U(+-gain*sqrt(3/fan)), gain from the activation",
                a=_SLOPE,
                mode=_FAN_MODE,
            ),
            _info(
                "kaiming_normal",
                "He: N(0, gain^2/fan), gain from the activation",
                a=_SLOPE,
                mode=_FAN_MODE,
            ),
            _info("lecun_uniform", "LeCun (for SELU): U(+-sqrt(3/fan_in))"),
            _info(
                "lecun_normal", "LeCun (for SELU): truncated normal with std sqrt(1/fan_in) (Keras)"
            ),
            _info(
                "variance_scaling",
                "Keras VarianceScaling: variance scale/fan, normal (cut or not) or uniform",
                scale=ParamInfo("float", 1.0, min=0.0, min_exclusive=True),
                mode=ParamInfo("str", "fan_in", ("fan_in", "fan_out", "fan_avg")),
                distribution=ParamInfo(
                    "str", "truncated_normal", ("truncated_normal", "untruncated_normal", "uniform")
                ),
            ),
            _info(
                "orthogonal", "(semi-)orthogonal matrix times gain (Saxe), per RNN gate", gain=_GAIN
            ),
            _info(
                "sparse",
                "ceil(sparsity*rows) zeros per column, the rest N(0, std^2) (Martens 2010)",
                sparsity=ParamInfo("float", 0.1, min=0.0, max=1.0),
                std=_STD,
            ),
            _info(
                "eye",
                "identity matrix for 2-D weights (IRNN); conv weights get dirac",
                needs="linear",
            ),
            _info(
                "dirac", "identity convolution for conv weights; 2-D weights get eye", needs="conv"
            ),
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
    }
)

ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "glorot_uniform": "xavier_uniform",
        "glorot_normal": "xavier_normal",
        "he_uniform": "kaiming_uniform",
        "he_normal": "kaiming_normal",
        "identity": "eye",
    }
)


def canonical_name(name: str) -> str:
    """The canonical (torch) spelling of an initializer name or alias, case-insensitive."""
    key = name.strip().lower() if isinstance(name, str) else ""
    if key in INITIALIZERS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    aliases = ", ".join(f"{alias} -> {target}" for alias, target in ALIASES.items())
    raise InitializerError(
        f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)} (aliases: {aliases})"
    )


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
        if value is not None and pinfo.kind == "float":
            value = float(value)
        elif value is not None and pinfo.kind == "int":
            value = int(value)
        elif value is not None and pinfo.kind == "path":
            value = os.fspath(value)
        resolved[pname] = value
    if info.name == "uniform" and not resolved["a"] < resolved["b"]:
        raise InitializerError(
            f"parameter 'b' of initializer 'uniform' must be greater than a, "
            f"got a={resolved['a']!r}, b={resolved['b']!r}"
        )
    return resolved
