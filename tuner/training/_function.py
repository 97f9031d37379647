"""A trial of a task that trains with its own function: the context it is given, and its run.

The task's ``train(ctx)`` owns the model, the data and the loop. The context
(:class:`FunctionTrial`) gives it what every trial gets from the product, and the product
keeps what every trial keeps: the initializer applied and recorded per layer, the t=0
diagnostics, the optimizer of the searched lr and L2 lambda, and, epoch by epoch, early
stopping on the study's metric, divergence, pruning, cancel, timeout and hand-back (through
the same ``on_epoch`` hook as the built-in loop). Its outcome is a :class:`TrialOutcome`
like any other, so recording, replay and reports need nothing else.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from tuner.errors import TaskError
from tuner.inits import LayerRecord, apply_initializer
from tuner.search import TrialParams
from tuner.tasks import LossFn, Task, TrainFunction
from tuner.training._diagnostics import LayerDiagnostics, diagnose
from tuner.training._failure import failed_fields
from tuner.training._knobs import activation_of
from tuner.training._loop import (
    EarlyStopping,
    EpochHook,
    EpochStats,
    StopReason,
    TrainConfig,
    TrainResult,
    clip_gradients,
    make_optimizer,
    make_scheduler,
)
from tuner.training._mup import mup_rescale, task_records
from tuner.training._signal import TrialSignal, measure_signal
from tuner.training._trial import (
    GLOBAL_RNG,
    TrialOutcome,
    manifest,
    result_fields,
)

log = logging.getLogger("tuner.trial")


class FunctionTrial:
    """The :class:`tuner.tasks.TrialContext` of one trial (see there for each member)."""

    def __init__(
        self,
        *,
        number: int,
        params: TrialParams,
        task: Task,
        config: TrainConfig,
        device: torch.device,
        seeds: Mapping[str, int],
        on_epoch: EpochHook | None = None,
    ) -> None:
        self.number = number
        self.params: Mapping[str, Any] = MappingProxyType(params.as_flat())
        self.device = device
        self.init_seed, self.data_seed = int(seeds["init"]), int(seeds["data"])
        self.max_epochs = config.max_epochs
        self._trial, self._task, self._config, self._on_epoch = params, task, config, on_epoch
        self._generator = torch.Generator(device="cpu").manual_seed(self.data_seed)
        self._stopper = EarlyStopping(
            config.patience, min_delta=config.min_delta, direction=config.direction
        )
        self.history: list[EpochStats] = []
        self.stop_reason: StopReason | None = None
        self.layers: list[LayerRecord] = []
        self.diagnostics: list[LayerDiagnostics] = []
        self.signal: TrialSignal | None = None
        self.initialized = False
        self.records: dict[str, Any] = dict(task.records)  # the manifest's task entries

    def generator(self) -> torch.Generator:
        return self._generator

    def init(
        self,
        model: nn.Module,
        calibration: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        loss: LossFn | None = None,
    ) -> nn.Module:
        x, y = calibration if isinstance(calibration, tuple) else (calibration, None)
        with GLOBAL_RNG:  # `default` re-draws from torch's global generator, as a build does
            torch.manual_seed(self.init_seed)
            self.layers = apply_initializer(
                model,
                self._trial.initializer_name,
                self._trial.init_params,
                activation=activation_of(self._task, self._trial),
                generator=torch.Generator(device="cpu").manual_seed(self.init_seed),
                calibration=x,
                groups=self._trial.group_choices(),
            )
            mup_rescale(model, self.layers)  # a model with base shapes: muP's rescaling
        self.records = task_records(self._task, model, self._config, self.layers)
        self.initialized = True
        self.signal = measure_signal(model, x)  # the module given, as the diagnostics
        if x is not None and y is not None:
            try:
                activation = activation_of(self._task, self._trial)
                self.diagnostics = diagnose(model, x, y, activation=activation, loss=loss)
            except Exception as exc:  # a model the probe cannot read still trains
                log.warning("no diagnostics for task %s: %r", self._task.name, exc)
        return model

    def optimizer(self, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        return make_optimizer(self._config.optimizer, iter(parameters), self._config)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> lr_scheduler.LRScheduler:
        return make_scheduler(optimizer, self._config)

    def clip_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        clip_gradients(parameters, self._config)

    def report(self, epoch: int, **metrics: float) -> bool:
        if self.stop_reason is not None:
            return True  # told to stop already; later epochs are not recorded
        if epoch != len(self.history) + 1:
            raise TaskError(f"report(epoch={epoch}): epochs are reported 1, 2, 3, ... in order")
        name = self._config.metric
        if name not in metrics:
            raise TaskError(
                f"report(epoch={epoch}) has no {name!r} (the study's metric); got {sorted(metrics)}"
            )
        values = {k: float(v) for k, v in metrics.items()}
        nan = math.nan
        stats = EpochStats(
            epoch,
            train_loss=values.get("train_loss", nan),
            val_loss=values.get("val_loss", nan),
            val_accuracy=values.get("val_accuracy", nan),
            metrics=values,
        )
        self.history.append(stats)
        if not all(math.isfinite(v) for v in values.values()):
            self.stop_reason = "diverged"
            return True
        should_stop = self._stopper.update(epoch, values[name])
        reason = self._on_epoch(stats) if self._on_epoch else None
        if reason is not None:
            self.stop_reason = reason
        elif should_stop:
            self.stop_reason = "patience"
        elif epoch >= self.max_epochs:
            self.stop_reason = "max_epochs"
        return self.stop_reason is not None

    def result(self) -> TrainResult:
        """What the trial came to; a function that returned on its own ran its course."""
        if not self.history:
            raise TaskError(f"task {self._task.name!r}: train(ctx) returned without a report()")
        stopper = self._stopper
        reason: StopReason = self.stop_reason or "max_epochs"
        return TrainResult(
            stopper.best, stopper.best_epoch, len(self.history), reason, self.history
        )


def train_function_trial(
    train_fn: TrainFunction,
    *,
    number: int,
    params: TrialParams,
    task: Task,
    config: TrainConfig,
    device: torch.device,
    seeds: dict[str, int],
    on_epoch: EpochHook | None = None,
    seed_number: int | None = None,
) -> TrialOutcome:
    """Run ``train_fn`` as one trial; every failure becomes an outcome, except interrupts and
    a lost device (:class:`~tuner.errors.DeviceLost`)."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    ctx = FunctionTrial(
        number=number,
        params=params,
        task=task,
        config=config,
        device=device,
        seeds=seeds,
        on_epoch=on_epoch,
    )
    outcome: dict[str, Any] = {}
    try:
        with GLOBAL_RNG:
            torch.manual_seed(ctx.init_seed)  # what the function builds before ctx.init()
        train_fn(ctx)
        outcome.update(result_fields(ctx.result()))
    except Exception as exc:
        outcome.update(failed_fields(exc, device, history=ctx.history))
    recorded = manifest(
        seeds=[{"replicate": 0, **seeds}],
        params=params,
        config=config,
        device=device,
        layers=ctx.layers,
        seed_number=seed_number if seed_number is not None else number,
        records=ctx.records,
    )
    recorded["task_function"] = {"initialized": ctx.initialized, "extra": dict(params.extra)}
    return TrialOutcome(
        number=number,
        params=params,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_s=time.perf_counter() - t0,
        device=str(device),
        seeds={"init": ctx.init_seed, "data": ctx.data_seed},
        diagnostics=ctx.diagnostics,
        signal=ctx.signal,
        manifest=recorded,
        **outcome,
    )
