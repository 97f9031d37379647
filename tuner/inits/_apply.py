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

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tuner.errors import InitializerError
from tuner.inits._fillers import FILLERS, Ctx, Filler
from tuner.inits._gains import activation_gain
from tuner.inits._layers import (
    CONV,
    TWO_D,
    covered_layers,
    layer_groups,
    layer_weights,
    zero_biases,
)
from tuner.inits._lsuv import lsuv_rescale
from tuner.inits._records import LayerRecord, record_of, std_of
from tuner.inits._whole import apply_default, apply_pretrained
from tuner.spec import AUTO, INITIALIZERS, WHOLE_MODEL, canonical_name, resolve_params

__all__ = ["LayerRecord", "applicability_error", "apply_initializer"]


def applicability_error(model: nn.Module, name: str) -> str | None:
    """None if initializer ``name`` can apply to ``model``, else a sentence saying why not.

    An unknown name is reported the same way (the sentence lists the known names).
    """
    try:
        canonical = canonical_name(name)
    except InitializerError as exc:
        return str(exc)
    layers = [module for _, module in covered_layers(model)]
    if not layers:
        return (
            f"{canonical} needs a Linear, Conv1d/2d/3d, RNN/LSTM/GRU or Embedding layer; "
            "the model has none"
        )
    needs = INITIALIZERS[canonical].needs
    if needs == "conv" and not any(isinstance(m, CONV) for m in layers):
        return f"{canonical} needs a convolutional layer (Conv1d/2d/3d); the model has none"
    if needs == "linear" and not any(isinstance(m, TWO_D) for m in layers):
        return (
            f"{canonical} needs a layer with a 2-D weight (Linear, Embedding, RNN/LSTM/GRU); "
            "the model has none"
        )
    return None


# ---------------------------------------------------------------------------------------------
# Application


def _check_materialized(model: nn.Module) -> None:
    for name, module in covered_layers(model):
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
            raise InitializerError(
                f"layer {name!r} has uninitialized (lazy) parameters; run one forward pass first"
            )


Chooser = Callable[[str, str], tuple[Filler, Mapping[str, Any]] | None]


def _fill_all(
    model: nn.Module,
    choose: Chooser,
    activation: str,
    generator: torch.Generator,
    *,
    biases: bool = True,
) -> list[LayerRecord]:
    """Fill every chosen weight, layer by layer in module order; ``biases``: zero the biases
    of the layers filled."""
    layers = covered_layers(model)
    records: list[LayerRecord] = []
    done: set[int] = set()
    for index, (name, module) in enumerate(layers):
        filled = False
        for pname, gates in layer_weights(module):
            weight: torch.Tensor = getattr(module, pname)
            choice = choose(name, pname)
            if choice is None:
                continue
            filled = True  # its biases too, even when its weight is tied to one filled before
            if id(weight) in done:  # tied weights (e.g. embedding = output layer): once only
                continue
            done.add(id(weight))
            filler, params = choice
            groups = int(getattr(module, "groups", 1))
            ctx = Ctx(params, activation, index == len(layers) - 1, generator, groups)
            dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
            applied, effective = "", dict[str, Any]()
            with torch.no_grad():
                for block in weight.detach().chunk(gates, dim=0):  # views into the weight
                    buf = torch.empty(block.shape, dtype=dtype, device=generator.device)
                    applied, effective = filler(buf, ctx)
                    block.copy_(buf)
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    weight[module.padding_idx].zero_()
            records.append(record_of(name, module, pname, gates, applied, effective))
        if filled and biases:
            zero_biases(module)
    return records


def _fill_groups(
    model: nn.Module,
    records: list[LayerRecord],
    groups: Mapping[str, tuple[str, Mapping[str, Any]]],
    activation: str,
    generator: torch.Generator,
) -> None:
    """Refill the weights of each group given its own initializer (after the model-wide one,
    whose records they replace); every record is labelled with its weight's group."""
    assignment = layer_groups(model)
    chosen = {g: (FILLERS[name], params) for g, (name, params) in groups.items()}
    refilled = _fill_all(
        model,
        lambda layer, p: chosen.get(assignment[layer, p]),
        activation,
        generator,
        biases=False,
    )
    position = {(r.layer, r.param): i for i, r in enumerate(records)}
    for record in refilled:
        records[position[record.layer, record.param]] = record
    for record in records:
        record.group = assignment.get((record.layer, record.param), "")


def _resolved_groups(
    model: nn.Module, groups: Mapping[str, tuple[str, Mapping[str, Any]]]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each group's initializer checked: a filler, valid parameters, a group the model has."""
    present = set(layer_groups(model).values())
    resolved = {}
    for group, (name, params) in groups.items():
        canonical = canonical_name(name)
        if canonical in WHOLE_MODEL:
            raise InitializerError(f"{canonical} applies to the whole model, not to group {group}")
        if group not in present:
            raise InitializerError(
                f"layer group {group!r} matches no layer of the model; its groups: "
                + ", ".join(sorted(present))
            )
        resolved[group] = (canonical, resolve_params(INITIALIZERS[canonical], params))
    return resolved


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
    orthogonal = (FILLERS["orthogonal"], {"gain": 1.0})
    records = _fill_all(model, lambda *_: orthogonal, "linear", generator)
    targets = [(n, m) for n, m in covered_layers(model) if isinstance(m, (nn.Linear, *CONV))]
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
            record.std = std_of(getattr(modules[record.layer], record.param))
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
    groups: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> list[LayerRecord]:
    """Initialize ``model``'s covered layers in place; one record per weight tensor.

    ``params`` are concrete values; missing ones take their defaults (kaiming's nonlinearity
    and ``gain: auto``: derived from ``activation``). ``calibration`` is an input batch,
    needed by ``lsuv`` only. ``groups`` maps a layer group (``tuner.spec.LAYER_GROUPS``) to
    its own (name, params), drawn after the model-wide initializer on that group's weights.
    Invalid names, parameters, groups or models raise :class:`InitializerError` before any
    weight changes.
    """
    canonical = canonical_name(name)
    resolved = resolve_params(INITIALIZERS[canonical], params)
    activation = activation.strip().lower()
    problem = applicability_error(model, canonical)
    if problem is not None:
        raise InitializerError(problem)
    _check_materialized(model)
    chosen = _resolved_groups(model, groups or {})
    every = [(canonical, resolved), *chosen.values()]
    if any(n in _USES_ACTIVATION or p.get("gain") == AUTO for n, p in every):
        activation_gain(activation)  # validate it; other initializers accept any activation
    if canonical == "default":
        records = apply_default(model, generator)
    elif canonical == "pretrained":
        records = apply_pretrained(model, resolved, generator)
    elif canonical == "lsuv":
        records = _apply_lsuv(model, resolved, generator, calibration)
    else:
        main = (FILLERS[canonical], resolved)
        records = _fill_all(model, lambda *_: main, activation, generator)
    _fill_groups(model, records, chosen, activation, generator)
    return records
