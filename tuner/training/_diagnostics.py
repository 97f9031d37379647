"""Diagnostics at initialization: what each layer's signal looks like before the first update.

One forward and one backward pass on a fixed calibration batch, in eval mode (no dropout,
no batch-norm statistics updated, no random numbers drawn), so measuring a model changes
nothing about how it then trains. Per parameterized layer, in the order the forward pass
reaches them, it records the output's mean and std after the layer's activation (the
task's activation for hidden layers, none for the last layer), the pre-activation std,
the fraction of dead units (ReLU family: never positive on the batch), the saturated
fraction (tanh/sigmoid outputs within 1% of their bounds), and the std of the weights and
of their gradients. A good initializer keeps ``act_std`` roughly constant with depth
(Glorot & Bengio 2010, He et al. 2015); a bad one shows it shrinking or exploding here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from storage import LayerDiagnosticsData
from tuner.inits import fans
from tuner.tasks import LossFn, activation_module

#: Activations whose units die when their input stays negative.
RELU_FAMILY = frozenset({"relu", "leaky_relu", "gelu"})
#: Activations that saturate; the pre-activation beyond which the output is within 1% of a bound.
SATURATION_AT = {"tanh": math.atanh(0.99), "sigmoid": math.log(0.99 / 0.01)}
_LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase, nn.Embedding)

#: Thresholds of :func:`signal_problems`.
VANISHING_RATIO = 0.1  # last layer's activation std below this fraction of the first's
EXPLODING_RATIO = 10.0
DEAD_LIMIT = 0.5  # fraction of a layer's units dead
SATURATED_LIMIT = 0.5


#: One layer's record; defined in storage (which stores it), named here for the engine.
LayerDiagnostics = LayerDiagnosticsData


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


def _units_last(t: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Rows = observations, columns = units (channels for convolutions)."""
    if isinstance(module, nn.modules.conv._ConvNd) and t.dim() > 2:
        t = t.movedim(1, -1)
    return t.reshape(-1, t.shape[-1])


def _weights(module: nn.Module) -> list[torch.Tensor]:
    return [p for n, p in module.named_parameters(recurse=False) if n.startswith("weight")]


def _std(tensors: list[torch.Tensor]) -> float:
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
    return float(flat.std()) if flat.numel() > 1 else 0.0


def _fans(module: nn.Module) -> tuple[int, int]:
    weight = _weights(module)[0]
    if isinstance(module, nn.Embedding):
        return weight.shape[0], weight.shape[1]
    return fans(weight)


def diagnose(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    activation: str,
    loss: LossFn | None = None,
) -> list[LayerDiagnostics]:
    """Measure ``model`` (already initialized, on ``x``'s device) on the batch ``(x, y)``;
    gradients are of ``loss(model(x), y)`` (default: cross-entropy)."""
    activation = activation.strip().lower()
    layers: dict[nn.Module, str] = {
        m: name for name, m in model.named_modules() if isinstance(m, _LAYER_TYPES) and _weights(m)
    }
    outputs: dict[nn.Module, torch.Tensor] = {}  # first call of each layer, in forward order

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        if tensor is not None:
            outputs.setdefault(module, tensor.detach())

    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    try:
        model.zero_grad(set_to_none=True)
        (loss or F.cross_entropy)(model(x), y).backward()
        act_fn = activation_module(activation)
        records = []
        for depth, (module, pre) in enumerate(outputs.items()):
            last = depth == len(outputs) - 1
            units = _units_last(pre.float(), module)
            post = units if last else act_fn(units)
            grads = [w.grad for w in _weights(module) if w.grad is not None]
            fan_in, fan_out = _fans(module)
            records.append(
                LayerDiagnostics(
                    index=depth,
                    name=layers[module],
                    kind=type(module).__name__,
                    fan_in=fan_in,
                    fan_out=fan_out,
                    act_mean=float(post.mean()),
                    act_std=float(post.std()),
                    preact_std=float(units.std()),
                    dead_frac=None
                    if last or activation not in RELU_FAMILY
                    else float((units <= 0).all(dim=0).float().mean()),
                    saturated_frac=None
                    if last or activation not in SATURATION_AT
                    else float((units.abs() > SATURATION_AT[activation]).float().mean()),
                    weight_std=_std(_weights(module)),
                    grad_std=_std(grads) if grads else 0.0,
                )
            )
        return records
    finally:
        for handle in handles:
            handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)


def signal_problems(layers: list[LayerDiagnostics]) -> list[str]:
    """What looks broken in a model's signal at initialization, one sentence per problem."""
    problems: list[str] = []
    finite = all(math.isfinite(v) for d in layers for v in (d.act_std, d.grad_std, d.weight_std))
    if not finite:
        return ["non-finite activations or gradients at initialization"]
    if len(layers) >= 2 and layers[0].act_std > 0:
        first, last = layers[0], layers[-1]
        ratio = last.act_std / first.act_std
        where = (
            f"activation std {first.act_std:.3g} at layer 0 -> "
            f"{last.act_std:.3g} at layer {last.index}"
        )
        if ratio < VANISHING_RATIO:
            problems.append(f"vanishing signal: {where} (x{ratio:.2g})")
        elif ratio > EXPLODING_RATIO:
            problems.append(f"exploding signal: {where} (x{ratio:.2g})")
    elif layers and layers[0].act_std == 0:
        problems.append("no signal: the first layer's output is constant")
    for d in layers:
        if d.dead_frac is not None and d.dead_frac > DEAD_LIMIT:
            problems.append(f"{d.dead_frac:.0%} dead units at layer {d.index} ({d.name})")
        if d.saturated_frac is not None and d.saturated_frac > SATURATED_LIMIT:
            problems.append(
                f"{d.saturated_frac:.0%} saturated outputs at layer {d.index} ({d.name})"
            )
    return problems
