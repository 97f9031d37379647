"""The model's output width against the task's targets, checked on the meta device.

A classifier whose last layer has fewer units than the data has classes fails on CUDA
with a device-side assert (an index out of range in the loss), which poisons the CUDA
context; more units train silently on classes that never occur. Regression takes one
value per sample (the loss flattens the output against a 1-D target). Both are checked
before anything is allocated: the model is built, and run on a batch of 2, on ``meta``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from tuner.errors import TaskError
from tuner.tasks._data import DataSplit

log = logging.getLogger("tuner.tasks")
_ROWS = 2  # a batch of two: a flattened (2, k) output cannot pass for 2 values unless k = 1


def _meta_output(build: Callable[[], nn.Module], input_shape: tuple[int, ...]) -> object:
    with torch.device("meta"), torch.no_grad():
        model = build()
        return model(torch.empty((_ROWS, *input_shape)))


def output_width_error(name: str, build: Callable[[], nn.Module], data: DataSplit) -> str | None:
    """None if the model's output fits the task's targets, else a sentence saying why not.

    A model the meta device cannot run (data-dependent code, tensors made on the CPU in
    ``forward``) is not judged here: None, and its first trial tells."""
    try:
        out = _meta_output(build, data.input_shape)
    except Exception as exc:
        log.debug("task %s: output width not checked on the meta device: %r", name, exc)
        return None
    if not isinstance(out, torch.Tensor) or out.dim() == 0:
        return None  # the loss says what it needs of an output that is not a batch
    if data.regression:
        per_sample = out.numel() // _ROWS
        if per_sample != 1:
            return (
                f"task {name!r}: the model outputs {per_sample} values per sample, but a "
                "regression target takes 1 (give the last layer 1 output)"
            )
        return None
    width = out.shape[-1] if out.dim() == 2 else None
    if width != data.n_classes:
        got = f"{width} units" if width is not None else f"shape {tuple(out.shape)}"
        return (
            f"task {name!r}: the model's output has {got}, but the data has "
            f"{data.n_classes} classes (the last layer needs {data.n_classes} outputs)"
        )
    return None


def check_output_width(name: str, build: Callable[[], nn.Module], data: DataSplit) -> None:
    """Raise :class:`TaskError` when :func:`output_width_error` finds a mismatch."""
    problem = output_width_error(name, build, data)
    if problem is not None:
        raise TaskError(problem)
