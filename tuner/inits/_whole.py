"""The initializers that act on the whole model: PyTorch's own (``default``), a state dict
(``pretrained``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuner.errors import InitializerError
from tuner.inits._layers import covered_layers, layer_weights
from tuner.inits._records import LayerRecord, record_of, std_of


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


def apply_default(model: nn.Module, generator: torch.Generator) -> list[LayerRecord]:
    """Each covered layer's reset_parameters(), on the global CPU RNG forked and seeded from
    generator: drawn on the CPU and copied to the model's device, so a seed gives the same
    weights on any device (a GPU's own RNG would draw other numbers)."""
    layers = covered_layers(model)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    # fork_rng restores the CPU RNG on exit: the caller's global random state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        for _, module in layers:
            _reset_on_cpu(module)
    return [
        record_of(name, module, pname, gates, "default", {})
        for name, module in layers
        for pname, gates in layer_weights(module)
    ]


def apply_pretrained(
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
    records = apply_default(model, generator)
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
            record.std = std_of(weight)
    return records
