"""The layers initializers cover, their weights, and the layer group each weight belongs to.

Groups (``tuner.spec.LAYER_GROUPS``) let a study search a different initializer for different
parts of a model. Each covered weight belongs to exactly one, the first that applies:

1. the group a model names on the module itself: ``module.init_group = "residual_last"``
   (:data:`GROUP_ATTRIBUTE`; the only way a layer is ``residual_last``);
2. ``embedding``: an ``nn.Embedding`` table;
3. ``recurrent``: an RNN/LSTM/GRU's hidden-to-hidden weights (``weight_hh_*``, and an LSTM's
   projection ``weight_hr_*``);
4. ``output``: the last covered layer in module order, unless it is an RNN (whose state a
   readout reads, in the model or outside the module initialized);
5. ``input``: the first covered layer (of an RNN, the input weights of its first layer);
6. ``hidden``: every other weight (an RNN's input weights above its first layer included).
"""

from __future__ import annotations

import torch
from torch import nn

from tuner.errors import InitializerError
from tuner.spec import LAYER_GROUPS

#: The module attribute through which a model puts a layer in a group of its choosing.
GROUP_ATTRIBUTE = "init_group"

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
RNN = (nn.RNN, nn.LSTM, nn.GRU)
TWO_D = (nn.Linear, nn.Embedding, *RNN)
_COVERED = (nn.Linear, *CONV, *RNN, nn.Embedding)
_GATES = {"LSTM": 4, "GRU": 3}


def covered_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _COVERED)]


def layer_weights(module: nn.Module) -> list[tuple[str, int]]:
    """(parameter name, number of stacked gate blocks) for each weight of a covered layer."""
    if isinstance(module, RNN):
        gates = _GATES.get(module.mode, 1)
        return [
            (name, 1 if name.startswith("weight_hr") else gates)  # LSTM projection: one block
            for name, _ in module.named_parameters(recurse=False)
            if name.startswith("weight_")
        ]
    return [("weight", 1)]


def _known(group: object, said: str) -> str:
    """``group`` if it is one of :data:`LAYER_GROUPS`; else an error that begins ``said``."""
    if group not in LAYER_GROUPS:
        raise InitializerError(f"{said} {group!r}; the groups: {', '.join(LAYER_GROUPS)}")
    return str(group)


def _group(module: nn.Module, pname: str, index: int, last: int) -> str:
    tagged = getattr(module, GROUP_ATTRIBUTE, None)
    if tagged is not None:
        return _known(tagged, f"a layer's {GROUP_ATTRIBUTE} is")
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, RNN):  # never the output layer: a readout follows, or its state is
        if not pname.startswith("weight_ih"):
            return "recurrent"
        return "input" if index == 0 and pname.startswith("weight_ih_l0") else "hidden"
    if index == last:
        return "output"
    return "input" if index == 0 else "hidden"


def layer_groups(model: nn.Module) -> dict[tuple[str, str], str]:
    """(layer name, weight name) -> its group, for every covered weight of ``model``."""
    layers = covered_layers(model)
    return {
        (name, pname): _group(module, pname, index, len(layers) - 1)
        for index, (name, module) in enumerate(layers)
        for pname, _ in layer_weights(module)
    }


def mark_group(module: nn.Module, group: str) -> nn.Module:
    """Put ``module``'s weights in ``group`` (e.g. a residual branch's last conv in
    ``residual_last``); returns the module, for use inside a constructor."""
    setattr(module, GROUP_ATTRIBUTE, _known(group, "unknown layer group"))
    return module


def zero_biases(module: nn.Module) -> None:
    with torch.no_grad():
        for name, param in module.named_parameters(recurse=False):
            if name.startswith("bias"):
                param.zero_()
