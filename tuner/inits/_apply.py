"""Weight initializers: layer discovery, applicability and application to a model.

The registry (names, aliases, parameters, activation gains) lives in
:mod:`tuner.spec._initializers` and the per-tensor fillers in :mod:`tuner.inits._fillers`; the
public names of both are re-exported here.

Conventions every initializer follows (see :func:`apply_initializer`):

* Covered layers: ``nn.Linear``, ``nn.Conv1d/2d/3d``, ``nn.RNN/LSTM/GRU`` and ``nn.Embedding``.
  Anything else (norms, attention projections, ...) keeps its own initialization.
* Recurrent weights stack their gates (LSTM 4, GRU 3); each gate block is initialized on
  its own, so fans and orthogonality are per gate.
* Each name applies its library's rule to every layer alike: ``xavier_*``, ``orthogonal``
  and ``identity`` use gain 1 unless given one; ``kaiming_*`` take the task's activation as
  torch's ``nonlinearity``. ``gain: auto`` derives the gain from the activation
  (:func:`activation_gain`) and gives the output layer (the last covered layer in module
  order, which no activation follows) the linear gain 1.
* Biases of covered layers are set to zero (except under ``default`` and ``pretrained``);
  an Embedding's ``padding_idx`` row is zeroed as PyTorch does.
* Values are drawn on ``generator``'s device in float32 (float64 for float64 weights) and
  copied into the parameters, so a seed gives the same weights on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuner.errors import InitializerError
from tuner.inits._fillers import FILLERS, Ctx, Filler, fans
from tuner.inits._gains import activation_gain
from tuner.inits._lsuv import lsuv_rescale
from tuner.spec import AUTO, INITIALIZERS, canonical_name, resolve_params

__all__ = ["LayerRecord", "applicability_error", "apply_initializer"]


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


def _record(
    name: str, module: nn.Module, pname: str, gates: int, applied: str, params: dict[str, Any]
) -> LayerRecord:
    weight: torch.Tensor = getattr(module, pname)
    fan_in, fan_out = fans(weight.chunk(gates, dim=0)[0])
    return LayerRecord(
        name, type(module).__name__, pname, applied, dict(params), fan_in, fan_out, _std(weight)
    )


def _fill_all(
    model: nn.Module,
    filler: Filler,
    params: Mapping[str, Any],
    activation: str,
    generator: torch.Generator,
) -> list[LayerRecord]:
    layers = _covered_layers(model)
    records: list[LayerRecord] = []
    done: set[int] = set()
    for index, (name, module) in enumerate(layers):
        ctx = Ctx(
            params,
            activation,
            index == len(layers) - 1,
            generator,
            int(getattr(module, "groups", 1)),
        )
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


def _reset_on_cpu(module: nn.Module) -> None:
    """``module.reset_parameters()`` drawing on the CPU whatever the module's device: its own
    parameters are swapped for CPU copies for the call, then copied back to where they live."""
    originals = dict(module._parameters)
    stand_ins = {
        name: None if p is None else nn.Parameter(p.detach().to("cpu", copy=True), p.requires_grad)
        for name, p in originals.items()
    }
    module._parameters.update(stand_ins)
    try:
        module.reset_parameters()  # type: ignore[operator]
    finally:
        module._parameters.update(originals)
    with torch.no_grad():
        for name, param in originals.items():
            stand_in = stand_ins[name]
            if param is not None and stand_in is not None:
                param.copy_(stand_in)


def _apply_default(model: nn.Module, generator: torch.Generator) -> list[LayerRecord]:
    """Each covered layer's reset_parameters(), on the global CPU RNG forked and seeded from
    generator: drawn on the CPU and copied to the model's device, so a seed gives the same
    weights on any device (a GPU's own RNG would draw other numbers)."""
    layers = _covered_layers(model)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    # fork_rng restores the CPU RNG on exit: the caller's global random state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        for _, module in layers:
            _reset_on_cpu(module)
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
    model: nn.Module,
    params: Mapping[str, Any],
    generator: torch.Generator,
    calibration: torch.Tensor | None,
) -> list[LayerRecord]:
    """Orthogonal (gain 1) everywhere, then LSUV rescaling of Linear/Conv layers.

    RNN and Embedding layers stay orthogonal: their output variance is not a single layer's
    pre-activation, so there is nothing well-defined to rescale.
    """
    if calibration is None:
        raise InitializerError("lsuv needs a calibration batch of inputs; none was given")
    records = _fill_all(model, FILLERS["orthogonal"], {"gain": 1.0}, "linear", generator)
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
                "gain": 1.0,
                "tol": params["tol"],
                "max_iter": params["max_iter"],
                "iterations": result.iterations,
                "output_var": result.output_var,
            }
            record.std = _std(getattr(modules[record.layer], record.param))
    return records


# Initializers whose nonlinearity is always the task's activation.
_USES_ACTIVATION = frozenset({"kaiming_uniform", "kaiming_normal"})


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

    ``params`` are concrete values; missing ones take their defaults (kaiming's nonlinearity
    and ``gain: auto``: derived from ``activation``). ``calibration`` is an input batch,
    needed by ``lsuv`` only. Invalid names, parameters or models raise
    :class:`InitializerError` before any weight changes.
    """
    canonical = canonical_name(name)
    resolved = resolve_params(INITIALIZERS[canonical], params)
    activation = activation.strip().lower()
    if canonical in _USES_ACTIVATION or resolved.get("gain") == AUTO:
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
    return _fill_all(model, FILLERS[canonical], resolved, activation, generator)
