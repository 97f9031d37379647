"""Signal propagation at initialization, from theory: measured on the calibration batch.

Two views of whether a signal crosses the network before the first update:

* **Dynamical isometry** (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017): the
  squared singular values of each calibration sample's input-output Jacobian ``J`` (the
  spectrum of ``J J^T``; of ``J^T J`` when ``J`` is taller than wide), pooled over up to
  :data:`JACOBIAN_SAMPLES` samples (fewer for a model with many outputs or inputs, to bound
  the cost): their mean ``m_JJT`` and normalized variance
  ``sigma^2_JJT / m_JJT^2`` (0 for an isometry; a wide spread means some directions are
  amplified and others lost). One backward pass per output on the samples at once, so a model
  whose outputs depend on the rest of the batch is skipped, as is one with more than
  :data:`JACOBIAN_MAX_OUTPUTS` outputs per sample.
* **Mean field** (Schoenholz et al. 2017, :mod:`_meanfield`), for a fully connected net with a
  saturating activation (Linear layers, tanh or sigmoid modules): ``sigma_w^2`` and
  ``sigma_b^2`` measured on the hidden layers' weights and biases, the fixed points and their
  slopes, the depth scale ``xi_c``, and a warning when the depth exceeds ``6 xi_c``.

As :mod:`_diagnostics`: eval mode, no random numbers drawn, no parameter's gradient touched,
the mode restored, so measuring changes nothing about how the model then trains. Whatever
cannot be measured is recorded with the reason; nothing here raises.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn

from storage import TrialSignalData
from tuner.training._meanfield import DEPTH_FACTOR, MeanField, mean_field

#: Calibration samples the Jacobian's spectrum is pooled over.
JACOBIAN_SAMPLES = 32
#: The most outputs per sample (one backward pass each) a Jacobian is taken of.
JACOBIAN_MAX_OUTPUTS = 1024
#: The most Jacobian rows (samples x outputs): fewer samples for a model with many outputs.
JACOBIAN_MAX_ROWS = 1 << 13
#: The most Jacobian entries held at once (samples x outputs x inputs): 64 MiB in fp32.
JACOBIAN_MAX_ENTRIES = 1 << 24

#: A model's signal at t=0; defined in storage (which stores it), named here for the engine.
TrialSignal = TrialSignalData

_SATURATING: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_PASSIVE = (nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity)


class _Skip(Exception):
    """Why a figure cannot be measured on this model."""


def _flat_output(output: Any, rows: int) -> torch.Tensor:
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise _Skip(f"the model's output is a {type(output).__name__}, not a tensor")
    if output.dim() == 0 or output.shape[0] != rows:
        raise _Skip(f"the model's output {tuple(output.shape)} has no batch dimension first")
    return output.reshape(rows, -1)


def _moments(jacobians: torch.Tensor) -> tuple[float, float]:
    """(sum of the squared singular values, sum of their squares) over the samples."""
    total, squares = 0.0, 0.0
    for sample in jacobians:  # one sample's (outputs, inputs) at a time, in float64
        j = sample.double()
        gram = j @ j.T if j.shape[0] <= j.shape[1] else j.T @ j
        total += float(torch.diagonal(gram).sum())
        squares += float((gram * gram).sum())  # the trace of gram^2: sum of s^4
    return total, squares


def jacobian_spectrum(
    model: nn.Module, x: torch.Tensor, *, max_samples: int = JACOBIAN_SAMPLES
) -> tuple[float, float, int]:
    """``(m_JJT, sigma^2_JJT / m_JJT^2, samples)`` of ``model`` on the first rows of ``x``.

    Raises :class:`_Skip` with the reason when the model cannot be measured this way.
    """
    if not x.is_floating_point():
        raise _Skip(f"the inputs are {x.dtype} (not continuous): no Jacobian to take")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = _flat_output(model(x[:1]), 1)
        outputs, inputs = alone.shape[1], x[0].numel()
        if outputs > JACOBIAN_MAX_OUTPUTS:
            raise _Skip(
                f"the Jacobian has {outputs} outputs per sample (one backward pass each; "
                f"at most {JACOBIAN_MAX_OUTPUTS} are measured)"
            )
        samples = min(
            max_samples,
            len(x),
            JACOBIAN_MAX_ROWS // outputs,
            JACOBIAN_MAX_ENTRIES // (outputs * inputs),
        )
        if samples < 1:
            raise _Skip(f"the Jacobian of {outputs} x {inputs} per sample is too large to hold")
        xs = x[:samples].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = _flat_output(model(xs), samples)
            # alone or in a batch, a sample's output is the same up to the kernels' rounding
            scale = float(alone.abs().max()) if alone.numel() else 0.0
            if not torch.allclose(out[:1].detach(), alone, rtol=1e-2, atol=1e-3 * scale + 1e-6):
                raise _Skip("the model's output for a sample depends on the rest of the batch")
            jacobians = torch.empty(samples, outputs, inputs, dtype=xs.dtype, device=xs.device)
            for k in range(outputs):  # row k of every sample's Jacobian in one backward pass
                (grad,) = torch.autograd.grad(out[:, k].sum(), xs, retain_graph=k < outputs - 1)
                jacobians[:, k] = grad.reshape(samples, inputs)
    finally:
        model.train(was_training)
    total, squares = _moments(jacobians)
    count = samples * min(outputs, inputs)
    mean, second = total / count, squares / count
    if not (math.isfinite(mean) and math.isfinite(second)):
        raise _Skip("the Jacobian is not finite")
    if mean <= 0.0:
        raise _Skip("the Jacobian is zero: the output does not depend on the input")
    return mean, max(0.0, second / mean**2 - 1.0), samples


def fully_connected(model: nn.Module) -> tuple[list[nn.Linear], str]:
    """The Linear layers (in module order) and the activation of a fully connected net with a
    saturating activation; raises :class:`_Skip` saying what else the model has."""
    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    linears = [m for m in leaves if isinstance(m, nn.Linear)]
    known = (nn.Linear, *_PASSIVE, *_SATURATING)
    other = [m for m in leaves if not isinstance(m, known)]
    if other:
        kinds = sorted({type(m).__name__ for m in other})
        has = ", ".join(kinds)
        raise _Skip(f"the mean field is of fully connected tanh/sigmoid nets; this one has {has}")
    found = {name for m in leaves for kind, name in _SATURATING.items() if isinstance(m, kind)}
    if len(found) != 1:
        why = "no tanh or sigmoid module" if not found else "both tanh and sigmoid"
        raise _Skip(f"the mean field needs one saturating activation; the model has {why}")
    if len(linears) < 2:
        raise _Skip("the mean field needs a hidden layer; the model has one Linear layer")
    for before, after in itertools.pairwise(linears):
        if before.out_features != after.in_features:
            raise _Skip("the Linear layers do not form a chain (widths do not match)")
    return linears, found.pop()


def _mean_square(t: torch.Tensor) -> float:
    return float(t.detach().double().square().mean())


def _measured(linears: list[nn.Linear]) -> tuple[float, float]:
    """``(sigma_w^2, sigma_b^2)``: ``fan_in E[W^2]`` and ``E[b^2]`` averaged over the hidden
    layers (from the second Linear on, the readout left out unless it is the only one)."""
    hidden = linears[1:-1] or linears[1:]
    w2 = [m.in_features * _mean_square(m.weight) for m in hidden]
    b2 = [0.0 if m.bias is None else _mean_square(m.bias) for m in hidden]
    return sum(w2) / len(w2), sum(b2) / len(b2)


def cannot_cross(depth: int, theory: MeanField) -> str | None:
    """The warning when ``depth`` exceeds the theory's trainable depth (:data:`DEPTH_FACTOR`
    depth scales), else None."""
    limit = theory.trainable_depth()
    if depth <= limit:
        return None
    return (
        f"signal cannot cross the network: depth {depth} > {DEPTH_FACTOR:g} xi_c = "
        f"{limit:.3g} (chi_1 {theory.chi_1:.3g}, sigma_w^2 {theory.sigma_w2:.3g}, "
        f"sigma_b^2 {theory.sigma_b2:.3g})"
    )


def _mean_field_fields(model: nn.Module) -> dict[str, Any]:
    try:
        linears, activation = fully_connected(model)
        sigma_w2, sigma_b2 = _measured(linears)
        if not (math.isfinite(sigma_w2) and math.isfinite(sigma_b2)):
            raise _Skip("the weights are not finite")
    except _Skip as skip:
        return {"mean_field_skipped": str(skip)}
    theory = mean_field(activation, sigma_w2, sigma_b2)
    depth = len(linears)
    return {
        "depth": depth,
        "sigma_w2": sigma_w2,
        "sigma_b2": sigma_b2,
        "q_star": theory.q_star,
        "chi_1": theory.chi_1,
        "c_star": theory.c_star,
        "chi_c": theory.chi_c,
        "warning": cannot_cross(depth, theory),
    }


def measure_signal(
    model: nn.Module, x: torch.Tensor | None, *, max_samples: int = JACOBIAN_SAMPLES
) -> TrialSignal:
    """The signal of ``model`` (initialized, on ``x``'s device) at t=0; never raises."""
    fields: dict[str, Any] = {}
    try:
        if x is None or len(x) == 0:
            raise _Skip("no calibration batch")
        mean, spread, samples = jacobian_spectrum(model, x, max_samples=max_samples)
        fields |= {"jacobian_mean_sq": mean, "jacobian_spread": spread, "jacobian_samples": samples}
    except _Skip as skip:
        fields["jacobian_skipped"] = str(skip)
    except Exception as exc:  # a model the probe cannot differentiate still trains
        fields["jacobian_skipped"] = f"the Jacobian could not be taken: {exc!r}"[:500]
    try:
        fields |= _mean_field_fields(model)
    except Exception as exc:
        fields["mean_field_skipped"] = f"the mean field could not be computed: {exc!r}"[:500]
    return TrialSignal(**fields)
