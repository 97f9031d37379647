"""What a task's own training function is given: the trial, as a context object.

A plugin that trains with its own code provides ``train(ctx)``; the product supplies the
context (:class:`tuner.training.FunctionTrial`). The function trains however it likes and
goes through the context for everything the product does for every trial: the searched
hyperparameters and seeds, the initializer, the optimizer, and each epoch's report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import torch
from torch import nn
from torch.optim import lr_scheduler

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TrialContext(Protocol):
    """One trial, as a training function sees it."""

    #: The trial's number in its study.
    number: int
    #: The searched hyperparameters by name: the five and the spec's extra ones.
    params: Mapping[str, Any]
    #: Where to train (the worker's device).
    device: torch.device
    #: Seed of the model's construction and initialization (set as torch's seed before
    #: ``train`` is called, and used by :meth:`init`).
    init_seed: int
    #: Seed of the data order: use :meth:`generator` for shuffling.
    data_seed: int
    #: The study's epoch limit; :meth:`report` says stop when it is reached.
    max_epochs: int

    def generator(self) -> torch.Generator:
        """A CPU generator seeded with ``data_seed`` (the same one on every call): draw the
        batch order from it, and a replay reproduces the trial."""
        ...

    def init(
        self,
        model: nn.Module,
        calibration: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        loss: LossFn | None = None,
    ) -> nn.Module:
        """Apply the trial's initializer to ``model`` (every layer it covers), record the
        per-layer manifest, and measure the signal at t=0 on ``calibration`` (inputs, or
        inputs and targets; ``loss`` defaults to cross-entropy). A model in muP (base
        shapes set: :func:`tuner.mup.parametrize`) then gets muP's rescaling, recorded in
        the manifest's ``parametrization``. Returns the model."""
        ...

    def optimizer(self, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer the study searches: its lr and L2 lambda (weight decay), and the
        optimizer and momentum (searched, else the task's). Parameters in muP get muP's
        per-group lrs and lambdas (``mup.MuAdam``, ``mup.MuSGD``)."""
        ...

    def scheduler(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
        """The searched learning-rate schedule for ``optimizer`` (``schedule``, ``step_size``,
        ``step_factor``, ``warmup_epochs``; constant when none is searched): call its
        ``step()`` once after each epoch."""
        ...

    def clip_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Clip the gradients' global norm to the searched ``clip_norm`` (nothing if unset):
        call it between ``backward()`` and ``optimizer.step()``."""
        ...

    def report(self, epoch: int, **metrics: float) -> bool:
        """Record one finished epoch (1-based) and its metrics (the study's metric among
        them); True when training must stop now: no improvement for ``patience`` epochs, a
        pruned trial, a non-finite metric, the epoch limit, a cancelled or timed-out study, a
        worker handing its trials back."""
        ...


TrainFunction = Callable[[TrialContext], None]
