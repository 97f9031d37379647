"""The data-driven half of LSUV (Mishkin & Matas 2016, "All you need is a good init").

:func:`lsuv_rescale` takes a model whose layers are already orthogonally initialized
(with zero biases) and, layer by layer in forward order, divides each weight by the
standard deviation of that layer's output on a calibration batch until the output
variance is within ``tol`` of 1. The orthogonal step lives in ``tuner.inits._apply``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.errors import InitializerError


@dataclass(frozen=True)
class LsuvResult:
    """What LSUV did to one layer: how many rescalings, and the output variance it ended at."""

    iterations: int
    output_var: float


class _StopForward(Exception):
    """Raised by a forward hook once the measured layer has run: the rest of the pass is waste."""


def lsuv_rescale(
    model: nn.Module,
    layers: Sequence[tuple[str, nn.Module]],
    calibration: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
) -> dict[str, LsuvResult]:
    """Rescale each of ``layers`` (Linear/Conv, by qualified name) to unit output variance.

    Layers are processed in the order the forward pass first calls them; a layer the
    forward pass never calls is left alone (and absent from the result). The model runs
    in eval mode without gradients; every module's train/eval flag is restored afterwards.
    """
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            batch = _on_model_device(model, calibration)
            ordered = _forward_order(model, layers, batch)
            return {
                name: _rescale(model, name, module, batch, tol=tol, max_iter=max_iter)
                for name, module in ordered
            }
    finally:
        # Restore flags one by one: model.train(flag) would overwrite submodules that the
        # caller had put in a different mode on purpose (e.g. frozen BatchNorm in eval).
        for module, training in modes.items():
            module.training = training


def _on_model_device(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    param = next(model.parameters(), None)
    return batch if param is None else batch.to(param.device)


def _run(model: nn.Module, batch: torch.Tensor) -> None:
    try:
        model(batch)
    except _StopForward:
        pass
    except Exception as exc:  # the user's model: any other failure is a bad calibration batch
        if _device_failure(exc):
            raise  # the device's, not the initializer's: the caller records or stops on it
        raise InitializerError(
            f"lsuv: the model's forward pass failed on the calibration batch "
            f"(shape {tuple(batch.shape)}): {type(exc).__name__}: {exc}"
        ) from exc


def _device_failure(exc: Exception) -> bool:
    """Out of memory, or a CUDA error: what the device did, whatever the model."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, torch.AcceleratorError)):
        return True
    return isinstance(exc, RuntimeError) and str(exc).startswith("CUDA error")


def _forward_order(
    model: nn.Module, layers: Sequence[tuple[str, nn.Module]], batch: torch.Tensor
) -> list[tuple[str, nn.Module]]:
    called: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def make_hook(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if id(module) not in seen:
                seen.add(id(module))
                called.append((name, module))

        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in layers]
    try:
        _run(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return called


def _rescale(
    model: nn.Module,
    name: str,
    module: nn.Module,
    batch: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
) -> LsuvResult:
    outputs: list[torch.Tensor] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        if not outputs:  # a layer called twice per pass is measured at its first call
            outputs.append(output.detach())
        raise _StopForward

    def measure() -> float:
        outputs.clear()
        _run(model, batch)
        if not outputs:
            raise InitializerError(f"lsuv: layer {name!r} was not called by the forward pass")
        return float(outputs[0].float().var())

    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    handle = module.register_forward_hook(hook)
    try:
        var = measure()
        steps = 0
        while abs(var - 1.0) >= tol and steps < max_iter:
            if not math.isfinite(var) or var <= 0.0:
                raise InitializerError(
                    f"lsuv: layer {name!r} has output variance {var} on the calibration "
                    "batch; it cannot be rescaled to 1 (is the batch constant or all zeros?)"
                )
            weight.div_(math.sqrt(var))
            steps += 1
            var = measure()
        return LsuvResult(iterations=steps, output_var=var)
    finally:
        handle.remove()
