"""Weight initializers: the registry (names, parameters, applicability) and their application.

Conventions every initializer follows (see :func:`apply_initializer`):

* Covered layers: ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``nn.RNN/LSTM/GRU`` and ``nn.Embedding``.
  Anything else (norms, attention projections, ...) keeps its own initialization.
* Recurrent weights stack their gates (LSTM 4, GRU 3); each gate block is initialized on
  its own, so fans and orthogonality are per gate.
* ``gain`` defaults from the task's activation (:func:`activation_gain`); the last covered
  layer in module order is taken as the output layer and gets the linear gain 1. A gain the
  user passes applies to every layer, the output layer included.
* Biases of covered layers are set to zero (except under ``default`` and ``pretrained``);
  an Embedding's ``padding_idx`` row is zeroed as PyTorch does.
* Values are drawn on ``generator``'s device in float32 (float64 for float64 weights) and
  copied into the parameters, so a seed gives the same weights on CPU and GPU.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

from tuner._errors import InitializerError
from tuner._lsuv import lsuv_rescale

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu")
LEAKY_RELU_SLOPE = 0.01
# Std of a standard normal truncated to [-2, 2]. Keras divides by it so that truncated draws
# end up with the intended std (lecun_normal, variance_scaling with truncated_normal).
_TRUNC_STD = 0.87962566103423978

_Nonlinearity = Literal["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]
# activation -> (torch nonlinearity, its parameter). GELU has no entry in calculate_gain;
# it is close to ReLU for the magnitudes that matter, so it gets ReLU's sqrt(2).
_TORCH_NONLINEARITY: dict[str, tuple[_Nonlinearity, float | None]] = {
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
        nonlinearity, param = _TORCH_NONLINEARITY[activation.strip().lower()]
    except KeyError:
        known = ", ".join((*ACTIVATIONS, "linear"))
        raise InitializerError(f"unknown activation {activation!r}; known: {known}") from None
    return float(nn.init.calculate_gain(nonlinearity, param))


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


INITIALIZERS: Mapping[str, InitializerInfo] = MappingProxyType({info.name: info for info in (
    _info("default", "PyTorch's own reset_parameters() of each layer, reproducible from the seed"),
    _info("zeros", "every weight 0 (a baseline: units never become different from each other)"),
    _info("constant", "every weight = val", val=ParamInfo("float", 0.0)),
    _info("uniform", "U(a, b)", a=ParamInfo("float", -0.05), b=ParamInfo("float", 0.05)),
    _info("normal", "N(mean, std^2)", mean=_MEAN, std=_STD),
    _info("trunc_normal", "N(mean, std^2) cut at mean +- 2 std (Keras)", mean=_MEAN, std=_STD),
    _info("xavier_uniform", "Glorot: U(+-gain*sqrt(6/(fan_in+fan_out)))", gain=_GAIN),
    _info("xavier_normal", "Glorot: N(0, gain^2*2/(fan_in+fan_out))", gain=_GAIN),
    _info("kaiming_uniform", "He: U(+-gain*sqrt(3/fan)), gain from the activation",
          a=_SLOPE, mode=_FAN_MODE),
    _info("kaiming_normal", "He: N(0, gain^2/fan), gain from the activation",
          a=_SLOPE, mode=_FAN_MODE),
    _info("lecun_uniform", "LeCun (for SELU): U(+-sqrt(3/fan_in))"),
    _info("lecun_normal", "LeCun (for SELU): truncated normal with std sqrt(1/fan_in) (Keras)"),
    _info(
        "variance_scaling",
        "Keras VarianceScaling: variance scale/fan, normal (cut or not) or uniform",
        scale=ParamInfo("float", 1.0, min=0.0, min_exclusive=True),
        mode=ParamInfo("str", "fan_in", ("fan_in", "fan_out", "fan_avg")),
        distribution=ParamInfo(
            "str", "truncated_normal", ("truncated_normal", "untruncated_normal", "uniform")
        ),
    ),
    _info("orthogonal", "(semi-)orthogonal matrix times gain (Saxe), per RNN gate", gain=_GAIN),
    _info(
        "sparse",
        "ceil(sparsity*rows) zeros per column, the rest N(0, std^2) (Martens 2010)",
        sparsity=ParamInfo("float", 0.1, min=0.0, max=1.0),
        std=_STD,
    ),
    _info("eye", "identity matrix for 2-D weights (IRNN); conv weights get dirac", needs="linear"),
    _info("dirac", "identity convolution for conv weights; 2-D weights get eye", needs="conv"),
    _info(
        "lsuv",
        "orthogonal, then rescale each layer to unit output variance on a batch (Mishkin 2016)",
        tol=ParamInfo("float", 0.1, min=0.0, min_exclusive=True),
        max_iter=ParamInfo("int", 10, min=1.0),
    ),
    _info(
        "pretrained",
        "load a state dict saved with torch.save(model.state_dict(), path)",
        path=ParamInfo("path", None),
        strict=ParamInfo("bool", True),
    ),
)})

ALIASES: Mapping[str, str] = MappingProxyType({
    "glorot_uniform": "xavier_uniform",
    "glorot_normal": "xavier_normal",
    "he_uniform": "kaiming_uniform",
    "he_normal": "kaiming_normal",
    "identity": "eye",
})


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


def _resolve_params(info: InitializerInfo, params: Mapping[str, Any]) -> dict[str, Any]:
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


# ---------------------------------------------------------------------------------------------
# Layers

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RNN = (nn.RNN, nn.LSTM, nn.GRU)
_TWO_D = (nn.Linear, nn.Embedding, *_RNN)
_COVERED = (nn.Linear, *_CONV, *_RNN, nn.Embedding)
_GATES = {"LSTM": 4, "GRU": 3}


def _covered_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _COVERED)]


def _weights(module: nn.Module) -> list[tuple[str, int]]:
    """(parameter name, number of stacked gate blocks) for each weight of a covered layer."""
    if isinstance(module, _RNN):
        gates = _GATES.get(module.mode, 1)
        return [
            (name, 1 if name.startswith("weight_hr") else gates)  # LSTM projection: one block
            for name, _ in module.named_parameters(recurse=False)
            if name.startswith("weight_")
        ]
    return [("weight", 1)]


def _zero_biases(module: nn.Module) -> None:
    with torch.no_grad():
        for name, param in module.named_parameters(recurse=False):
            if name.startswith("bias"):
                param.zero_()


def _fans(tensor: torch.Tensor) -> tuple[int, int]:
    """``torch.nn.init._calculate_fan_in_and_fan_out``: conv fans include the receptive field."""
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _std(tensor: torch.Tensor) -> float:
    return float(tensor.detach().double().std(correction=0)) if tensor.numel() else 0.0


def applicability_error(model: nn.Module, name: str) -> str | None:
    """None if initializer ``name`` can apply to ``model``, else a sentence saying why not.

    An unknown name is reported the same way (the sentence lists the known names).
    """
    try:
        canonical = canonical_name(name)
    except InitializerError as exc:
        return str(exc)
    layers = [module for _, module in _covered_layers(model)]
    if not layers:
        return (
            f"{canonical} needs a Linear, Conv1d/2d/3d, RNN/LSTM/GRU or Embedding layer; "
            "the model has none"
        )
    needs = INITIALIZERS[canonical].needs
    if needs == "conv" and not any(isinstance(m, _CONV) for m in layers):
        return f"{canonical} needs a convolutional layer (Conv1d/2d/3d); the model has none"
    if needs == "linear" and not any(isinstance(m, _TWO_D) for m in layers):
        return (
            f"{canonical} needs a layer with a 2-D weight (Linear, Embedding, RNN/LSTM/GRU); "
            "the model has none"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Fillers: write one weight block (a fresh tensor on the generator's device) in place and return
# (the initializer really applied, its effective parameters).


@dataclass(frozen=True)
class _Ctx:
    params: Mapping[str, Any]
    activation: str
    is_last: bool
    generator: torch.Generator
    groups: int  # conv groups, for dirac

    @property
    def gain(self) -> float:
        if self.params.get("gain") is not None:
            return float(self.params["gain"])
        return 1.0 if self.is_last else activation_gain(self.activation)


_Filler = Callable[[torch.Tensor, _Ctx], tuple[str, dict[str, Any]]]
_Result = tuple[str, dict[str, Any]]


def _zeros(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    buf.zero_()
    return "zeros", {}


def _constant(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    buf.fill_(ctx.params["val"])
    return "constant", {"val": ctx.params["val"]}


def _uniform(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    a, b = ctx.params["a"], ctx.params["b"]
    nn.init.uniform_(buf, a, b, generator=ctx.generator)
    return "uniform", {"a": a, "b": b}


def _normal(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    mean, std = ctx.params["mean"], ctx.params["std"]
    nn.init.normal_(buf, mean, std, generator=ctx.generator)
    return "normal", {"mean": mean, "std": std}


def _trunc(buf: torch.Tensor, mean: float, std: float, generator: torch.Generator) -> None:
    # torch's a/b are absolute bounds; Keras (and this project) cut at mean +- 2 std.
    nn.init.trunc_normal_(buf, mean, std, mean - 2 * std, mean + 2 * std, generator=generator)


def _trunc_normal(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    mean, std = ctx.params["mean"], ctx.params["std"]
    _trunc(buf, mean, std, ctx.generator)
    return "trunc_normal", {"mean": mean, "std": std}


def _xavier_uniform(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    nn.init.xavier_uniform_(buf, ctx.gain, generator=ctx.generator)
    return "xavier_uniform", {"gain": ctx.gain}


def _xavier_normal(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    nn.init.xavier_normal_(buf, ctx.gain, generator=ctx.generator)
    return "xavier_normal", {"gain": ctx.gain}


def _kaiming(buf: torch.Tensor, ctx: _Ctx, uniform: bool) -> _Result:
    a: float | None = ctx.params["a"]
    mode: str = ctx.params["mode"]
    nonlinearity: _Nonlinearity
    # An explicit `a` on a rectifier means leaky_relu with that slope (torch's own kaiming
    # default; a=0 is relu). For tanh/sigmoid/selu torch ignores `a`, and so do we.
    if ctx.is_last:
        nonlinearity, a = "linear", None
    elif ctx.activation in ("relu", "gelu"):
        nonlinearity = "relu" if a is None else "leaky_relu"
    elif ctx.activation == "leaky_relu":
        nonlinearity, a = "leaky_relu", LEAKY_RELU_SLOPE if a is None else a
    else:
        nonlinearity, a = _TORCH_NONLINEARITY[ctx.activation][0], None
    gain = float(nn.init.calculate_gain(nonlinearity, a))
    fan_in, fan_out = _fans(buf)
    std = gain / math.sqrt(max(1, fan_in if mode == "fan_in" else fan_out))
    if uniform:
        bound = math.sqrt(3.0) * std
        nn.init.uniform_(buf, -bound, bound, generator=ctx.generator)
    else:
        nn.init.normal_(buf, 0.0, std, generator=ctx.generator)
    name = "kaiming_uniform" if uniform else "kaiming_normal"
    return name, {"a": a, "mode": mode, "nonlinearity": nonlinearity, "gain": gain}


def _lecun_uniform(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    limit = math.sqrt(3.0 / max(1, _fans(buf)[0]))
    nn.init.uniform_(buf, -limit, limit, generator=ctx.generator)
    return "lecun_uniform", {}


def _lecun_normal(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    _trunc(buf, 0.0, math.sqrt(1.0 / max(1, _fans(buf)[0])) / _TRUNC_STD, ctx.generator)
    return "lecun_normal", {}


def _variance_scaling(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    """keras.initializers.VarianceScaling, exactly."""
    scale, mode, dist = ctx.params["scale"], ctx.params["mode"], ctx.params["distribution"]
    fan_in, fan_out = _fans(buf)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    variance = scale / max(1.0, fan)
    if dist == "truncated_normal":
        _trunc(buf, 0.0, math.sqrt(variance) / _TRUNC_STD, ctx.generator)
    elif dist == "untruncated_normal":
        nn.init.normal_(buf, 0.0, math.sqrt(variance), generator=ctx.generator)
    else:
        limit = math.sqrt(3.0 * variance)
        nn.init.uniform_(buf, -limit, limit, generator=ctx.generator)
    return "variance_scaling", {"scale": scale, "mode": mode, "distribution": dist}


def _orthogonal(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    nn.init.orthogonal_(buf, ctx.gain, generator=ctx.generator)
    return "orthogonal", {"gain": ctx.gain}


def _sparse(buf: torch.Tensor, ctx: _Ctx) -> _Result:
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


def _identity(buf: torch.Tensor, ctx: _Ctx) -> _Result:
    """eye for 2-D weights, dirac for conv weights (both names share this)."""
    if buf.dim() == 2:
        nn.init.eye_(buf)
        return "eye", {}
    nn.init.dirac_(buf, groups=ctx.groups)
    return "dirac", {"groups": ctx.groups}


_FILLERS: dict[str, _Filler] = {
    "zeros": _zeros,
    "constant": _constant,
    "uniform": _uniform,
    "normal": _normal,
    "trunc_normal": _trunc_normal,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "kaiming_uniform": lambda buf, ctx: _kaiming(buf, ctx, uniform=True),
    "kaiming_normal": lambda buf, ctx: _kaiming(buf, ctx, uniform=False),
    "lecun_uniform": _lecun_uniform,
    "lecun_normal": _lecun_normal,
    "variance_scaling": _variance_scaling,
    "orthogonal": _orthogonal,
    "sparse": _sparse,
    "eye": _identity,
    "dirac": _identity,
}


# ---------------------------------------------------------------------------------------------
# Application


@dataclass
class LayerRecord:
    """One initialized weight tensor, for the trial manifest (``dataclasses.asdict``)."""

    layer: str  # qualified module name, e.g. "net.0"
    kind: str  # module class: "Linear", "Conv2d", "LSTM", ...
    param: str  # "weight", "weight_hh_l0", ...
    initializer: str  # what was really applied (eye/dirac swap, lsuv vs orthogonal)
    params: dict[str, Any]  # effective parameters, derived gain included
    fan_in: int  # per gate block for recurrent weights
    fan_out: int
    std: float  # empirical std of the whole tensor after init


def _check_materialized(model: nn.Module) -> None:
    for name, module in _covered_layers(model):
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
            raise InitializerError(
                f"layer {name!r} has uninitialized (lazy) parameters; run one forward pass first"
            )


def _record(name: str, module: nn.Module, pname: str, gates: int, applied: str,
            params: dict[str, Any]) -> LayerRecord:
    weight: torch.Tensor = getattr(module, pname)
    fan_in, fan_out = _fans(weight.chunk(gates, dim=0)[0])
    return LayerRecord(name, type(module).__name__, pname, applied, dict(params), fan_in, fan_out,
                       _std(weight))


def _fill_all(
    model: nn.Module, filler: _Filler, params: Mapping[str, Any], activation: str,
    generator: torch.Generator,
) -> list[LayerRecord]:
    layers = _covered_layers(model)
    records: list[LayerRecord] = []
    done: set[int] = set()
    for index, (name, module) in enumerate(layers):
        ctx = _Ctx(params, activation, index == len(layers) - 1, generator,
                   int(getattr(module, "groups", 1)))
        for pname, gates in _weights(module):
            weight: torch.Tensor = getattr(module, pname)
            if id(weight) in done:  # tied weights (e.g. embedding = output layer): once only
                continue
            done.add(id(weight))
            dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
            applied, effective = "", dict[str, Any]()
            with torch.no_grad():
                for block in weight.detach().chunk(gates, dim=0):  # views into the weight
                    buf = torch.empty(block.shape, dtype=dtype, device=generator.device)
                    applied, effective = filler(buf, ctx)
                    block.copy_(buf)
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    weight[module.padding_idx].zero_()
            records.append(_record(name, module, pname, gates, applied, effective))
        _zero_biases(module)
    return records


def _apply_default(model: nn.Module, generator: torch.Generator) -> list[LayerRecord]:
    """Each covered layer's reset_parameters(), on a global RNG forked and seeded from generator."""
    layers = _covered_layers(model)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    # fork_rng restores the CPU RNG and the listed CUDA RNGs on exit, so the caller's global
    # random state is untouched. Other accelerators (mps, xpu) are not seeded here.
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        for _, module in layers:
            module.reset_parameters()  # type: ignore[operator]
    return [
        _record(name, module, pname, gates, "default", {})
        for name, module in layers
        for pname, gates in _weights(module)
    ]


def _apply_pretrained(
    model: nn.Module, params: Mapping[str, Any], generator: torch.Generator
) -> list[LayerRecord]:
    path = Path(params["path"]).expanduser()
    if not path.is_file():
        raise InitializerError(f"pretrained: no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with non-tensor objects, ...
        raise InitializerError(f"pretrained: cannot load {path}: {exc}") from exc
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # a checkpoint {"state_dict": ..., ...}
    if not isinstance(state, Mapping) or not all(isinstance(key, str) for key in state):
        raise InitializerError(f"pretrained: {path} does not hold a state dict")
    # Weights the file lacks (strict=False) get the default init, reproducibly from the seed.
    records = _apply_default(model, generator)
    try:
        result = model.load_state_dict(state, strict=params["strict"])
    except RuntimeError as exc:
        raise InitializerError(f"pretrained: {path} does not fit the model: {exc}") from exc
    missing = set(result.missing_keys)
    for record in records:
        key = f"{record.layer}.{record.param}" if record.layer else record.param
        if key not in missing:
            record.initializer = "pretrained"
            record.params = {"path": str(path), "strict": params["strict"]}
            weight = model.get_parameter(key)
            record.std = _std(weight)
    return records


def _apply_lsuv(
    model: nn.Module, params: Mapping[str, Any], generator: torch.Generator,
    calibration: torch.Tensor | None,
) -> list[LayerRecord]:
    """Orthogonal (gain 1) everywhere, then LSUV rescaling of Linear/Conv layers.

    RNN and Embedding layers stay orthogonal: their output variance is not a single layer's
    pre-activation, so there is nothing well-defined to rescale.
    """
    if calibration is None:
        raise InitializerError("lsuv needs a calibration batch of inputs; none was given")
    records = _fill_all(model, _orthogonal, {"gain": 1.0}, "linear", generator)
    targets = [(n, m) for n, m in _covered_layers(model) if isinstance(m, (nn.Linear, *_CONV))]
    results = lsuv_rescale(
        model, targets, calibration, tol=params["tol"], max_iter=params["max_iter"]
    )
    modules = dict(model.named_modules())
    for record in records:
        result = results.get(record.layer)
        if result is not None:
            record.initializer = "lsuv"
            record.params = {
                "gain": 1.0, "tol": params["tol"], "max_iter": params["max_iter"],
                "iterations": result.iterations, "output_var": result.output_var,
            }
            record.std = _std(getattr(modules[record.layer], record.param))
    return records


# Initializers whose gain or nonlinearity is derived from the task's activation.
_USES_ACTIVATION = frozenset(
    {"xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal"}
)


def apply_initializer(
    model: nn.Module,
    name: str,
    params: Mapping[str, Any],
    *,
    activation: str,
    generator: torch.Generator,
    calibration: torch.Tensor | None = None,
) -> list[LayerRecord]:
    """Initialize ``model``'s covered layers in place; one record per weight tensor.

    ``params`` are concrete values; missing ones take their defaults (gain: derived from
    ``activation``). ``calibration`` is an input batch, needed by ``lsuv`` only. Invalid
    names, parameters or models raise :class:`InitializerError` before any weight changes.
    """
    canonical = canonical_name(name)
    resolved = _resolve_params(INITIALIZERS[canonical], params)
    activation = activation.strip().lower()
    if canonical in _USES_ACTIVATION and resolved.get("gain") is None:
        activation_gain(activation)  # validate it; other initializers accept any activation
    problem = applicability_error(model, canonical)
    if problem is not None:
        raise InitializerError(problem)
    _check_materialized(model)
    if canonical == "default":
        return _apply_default(model, generator)
    if canonical == "pretrained":
        return _apply_pretrained(model, resolved, generator)
    if canonical == "lsuv":
        return _apply_lsuv(model, resolved, generator, calibration)
    return _fill_all(model, _FILLERS[canonical], resolved, activation, generator)
