"""What an initializer did to one weight: the record a trial's manifest keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.inits._fillers import fans


def std_of(tensor: torch.Tensor) -> float:
    return float(tensor.detach().double().std(correction=0)) if tensor.numel() else 0.0


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
    group: str = ""  # its layer group (input, hidden, output, recurrent, ...)


def record_of(
    name: str, module: nn.Module, pname: str, gates: int, applied: str, params: dict[str, Any]
) -> LayerRecord:
    weight: torch.Tensor = getattr(module, pname)
    fan_in, fan_out = fans(weight.chunk(gates, dim=0)[0])
    return LayerRecord(
        name, type(module).__name__, pname, applied, dict(params), fan_in, fan_out, std_of(weight)
    )


# Which filler (and parameters) a weight gets, by (layer name, weight name); None: left as is.
