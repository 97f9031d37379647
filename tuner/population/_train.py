"""The population's epoch loop: one stacked step for every member, one host sync per epoch.

Each member keeps what ``train`` keeps for a single trial: its own data-order generator
(the same ``randperm`` per epoch), early stopping, history and ``on_epoch`` hook, checked in
the same order at every epoch end. Members that stop leave the stack at the epoch boundary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch

from tuner.population._compiled import compiled_step
from tuner.population._optim import StackedOptimizer
from tuner.population._stack import StackedMLP
from tuner.search import TrialParams
from tuner.tasks import DataSplit
from tuner.training import (
    EarlyStopping,
    EpochHook,
    EpochStats,
    StopReason,
    TrainConfig,
    describe_error,
    on_device,
)


@dataclass(frozen=True)
class Member:
    """One trial to train in a population: what :func:`execute_trial` would be given."""

    number: int
    params: TrialParams
    config: TrainConfig
    on_epoch: EpochHook | None = None
    seed_number: int | None = None  # a retry's first attempt: its seeds


def bf16_matmuls(device: torch.device) -> bool:
    """Whether bf16 matmuls pay here: CUDA with bf16, or a CPU with bf16 dot products.

    On CPUs with AVX512-BF16 (or AMX) oneDNN multiplies bf16 at 2-4x its fp32 rate; on
    2 AVX512-BF16 cores a stacked step of 4 members gains 1.2x (batch 32) to 2.3x (batch
    256), weight casts included (bench/README.md). Elsewhere bf16 would be emulated.
    """
    if device.type == "cuda":
        with on_device(device):  # the trial's GPU, not the current one
            return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_fast(device: torch.device, fast: bool | None) -> bool:
    """Whether ``fast`` (None: the default) means fast mode on ``device``: on CUDA only."""
    return device.type == "cuda" if fast is None else fast


def population_matmuls(device: torch.device, fast: bool | None) -> str:
    """The dtype a population's matmuls run in on ``device``: bf16 in fast mode where it pays
    (:func:`bf16_matmuls`), else the parameters' own, float32."""
    return "bfloat16" if resolve_fast(device, fast) and bf16_matmuls(device) else "float32"


@dataclass
class MemberRun:
    """A member in training: its stopper and history, and how it ended."""

    member: Member
    seeds: dict[str, int]
    generator: torch.Generator
    stopper: EarlyStopping
    outcome: dict[str, Any] = field(default_factory=dict)
    history: list[EpochStats] = field(default_factory=list)
    finished_at: datetime | None = None
    finished: float = 0.0  # perf_counter at the end

    def end(self, reason: StopReason, error: str | None = None) -> StopReason:
        self.outcome.update(
            stop_reason=reason,
            value=None if error else self.stopper.best,
            best_epoch=None if error else self.stopper.best_epoch,
            epochs_run=0 if error else len(self.history),
            history=[] if error else self.history,
            error=error,
        )
        if reason == "pruned":
            self.outcome["state"] = "pruned"
        else:  # as _state_for: no usable epoch (diverged at once, or an error) is a failure
            self.outcome["state"] = "fail" if self.outcome["value"] is None else "complete"
        self.finished_at, self.finished = datetime.now(UTC), time.perf_counter()
        return reason

    def epoch_end(self, stats: EpochStats) -> StopReason | None:
        """What ``train`` does after an epoch: the same checks, in the same order."""
        cfg = self.member.config
        self.history.append(stats)
        if not (math.isfinite(stats.train_loss) and math.isfinite(stats.val_loss)):
            return self.end("diverged")
        should_stop = self.stopper.update(stats.epoch, stats.metric(cfg.metric))
        try:
            reason = self.member.on_epoch(stats) if self.member.on_epoch else None
        except Exception as exc:  # as in a single run: the trial fails, the others go on
            return self.end("error", describe_error(exc))
        if reason is not None:
            return self.end(reason)
        if should_stop:
            return self.end("patience")
        return self.end("max_epochs") if stats.epoch >= cfg.max_epochs else None


def train_stack(
    runs: list[MemberRun],
    stack: StackedMLP,
    data: DataSplit,
    *,
    fast: bool,
    bf16: bool,
    compile: bool,
) -> Iterator[list[MemberRun]]:
    """Train until every member has left; after each epoch, yields the members that left.

    ``fast``: one optimizer step for the whole stack; ``bf16``: matmuls in bf16 (the
    parameters stay fp32); ``compile``: the step through ``torch.compile`` (:mod:`_compiled`).
    """
    x, y = data.x_train, data.y_train
    n, device, rows = len(x), x.device, x.reshape(len(x), -1)
    first = runs[0].member.config
    if bf16:  # matmuls in bf16; the inputs cast once, not every batch
        stack.dtype, rows = torch.bfloat16, rows.to(torch.bfloat16)
    opt = StackedOptimizer(
        first.optimizer,
        lrs=[r.member.config.lr for r in runs],
        weight_decays=[r.member.config.weight_decay for r in runs],
        momentum=first.momentum,
        fast=fast,
    )
    opt.bind(stack.params, stack.grads)
    step = compiled_step(stack) if compile else stack.loss_and_grads
    active = list(runs)
    for epoch in range(1, max(r.member.config.max_epochs for r in runs) + 1):
        order = torch.stack([torch.randperm(n, generator=r.generator) for r in active])
        if device.type == "cuda":
            with on_device(device):  # pinning opens a context on the current GPU
                order = order.pin_memory().to(device, non_blocking=True)
        loss_sum = torch.zeros(len(active), device=device)
        for start in range(0, n, first.batch_size):
            idx = order[:, start : start + first.batch_size]
            flat = idx.flatten()  # the gather x[idx] does, as one index_select on rows
            xb = rows.index_select(0, flat).view(*idx.shape, *x.shape[1:])
            losses = step(xb, y.index_select(0, flat))
            opt.step()
            loss_sum += losses * idx.shape[1]
        val_loss, val_accuracy = stack.evaluate(data.x_val, data.y_val)
        # The only host sync of the epoch, for all members at once.
        figures = torch.stack([loss_sum / n, val_loss, val_accuracy]).tolist()
        stats = [EpochStats(epoch, *f) for f in zip(*figures, strict=True)]
        ends = [run.epoch_end(s) for run, s in zip(active, stats, strict=True)]
        kept = [i for i, reason in enumerate(ends) if reason is None]
        yield [run for run, reason in zip(active, ends, strict=True) if reason is not None]
        if not kept:
            return
        if len(kept) < len(active):
            index = torch.tensor(kept, device=device)
            stack.keep(index)
            opt.keep(index)
            opt.bind(stack.params, stack.grads)
            active = [active[i] for i in kept]
