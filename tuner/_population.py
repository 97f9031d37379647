"""Population training: many trials of one architecture and batch size as one computation.

Small models leave a device mostly idle when trained one trial at a time. Here K members
(trials) train together as stacked tensors (:mod:`_population_stack`), each with its own
initializer (built and initialized exactly as :func:`execute_trial` does), learning rate and
L2 lambda (:mod:`_population_optim`), data order (its own data-seed generator, the same
``randperm`` calls), early stopping and ``on_epoch`` hook (pruning, cancel, timeout). A
member that stops leaves the stack at the epoch boundary; the rest go on. Each member's
:class:`TrialOutcome` means what a single-trial run's does: same history, value, best epoch
and stop reason (on CPU in exact mode, the same numbers). Members that cannot be stacked
(see :func:`stack_plan`) run through :func:`execute_trial`, one by one.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tuner._data import DataSplit
from tuner._diagnostics import LayerDiagnostics
from tuner._population_optim import StackedOptimizer
from tuner._population_stack import StackedMLP, stack_plan
from tuner._search import TrialParams
from tuner._tasks import Task
from tuner._train import EarlyStopping, EpochHook, EpochStats, StopReason, TrainConfig
from tuner._trial import (
    TrialOutcome,
    _build,
    _diagnostics,
    describe_error,
    execute_trial,
    manifest,
    trial_seeds,
)

CPU_CAP = 8  # beyond this a 2-16 core CPU gains nothing: the work per member dominates
CUDA_CAP = 64
MEMORY_SHARE = 0.5  # of the free device memory (CUDA) or available RAM (CPU) a population may use


@dataclass(frozen=True)
class PopulationConfig:
    size: int | None = None  # members per population; None: from free memory and model size
    fast: bool | None = None  # bf16 autocast, TF32 and fused optimizer kernels; None: CUDA only
    compile: bool = False  # torch.compile the stacked forward pass


@dataclass(frozen=True)
class Member:
    """One trial to train in a population: what :func:`execute_trial` would be given."""

    number: int
    params: TrialParams
    config: TrainConfig
    on_epoch: EpochHook | None = None
    seed_number: int | None = None  # a retry's first attempt: its seeds


def fusable_key(config: TrainConfig) -> tuple[int, str, float]:
    """What members of one population must share (the architecture is the task's)."""
    return config.batch_size, config.optimizer, config.momentum


def population_groups(
    keys: Sequence[Hashable], limit: Callable[[Hashable], int]
) -> list[list[int]]:
    """Indices grouped by key (first-seen order), each group cut to at most ``limit(key)``."""
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return [
        group[i : i + size]
        for key, group in groups.items()
        for size in [max(1, limit(key))]
        for i in range(0, len(group), size)
    ]


def stackable(task: Task) -> bool:
    return stack_plan(task.build_model()) is not None


def population_size(
    task: Task, batch_size: int, device: torch.device, config: PopulationConfig
) -> int:
    """Members to train at once: the override, else what fits in memory (1: not stackable)."""
    model = task.build_model()
    plan = stack_plan(model)
    if plan is None:
        return 1
    if config.size:
        return config.size
    n_params = sum(p.numel() for p in model.parameters())
    widths = sum(m.out_features + m.in_features for m in plan if isinstance(m, nn.Linear))
    # parameters, gradients, two optimizer states, a low-precision copy; activations both ways
    per_member = 4 * (5 * n_params + 4 * batch_size * widths)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1, min(CUDA_CAP, int(free * MEMORY_SHARE // per_member)))
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: the cap decides
        return CPU_CAP
    return max(1, min(CPU_CAP, int(available * MEMORY_SHARE // per_member)))


def fast_by_default(device: torch.device) -> bool:
    return device.type == "cuda"


def _bf16_matmuls(device: torch.device) -> bool:
    """Whether the device multiplies bf16 matrices in hardware (CUDA Ampere+, CPU AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.cpu._is_amx_tile_supported()


@dataclass
class _Run:
    """A member in training: its stopper, its history, how it ended."""

    member: Member
    seeds: dict[str, int]
    generator: torch.Generator
    stopper: EarlyStopping
    outcome: dict[str, Any] = field(default_factory=dict)
    history: list[EpochStats] = field(default_factory=list)
    finished: float | None = None

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
        self.finished = time.perf_counter()
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
        except Exception as exc:
            return self.end("error", describe_error(exc))
        if reason is not None:
            return self.end(reason)
        if should_stop:
            return self.end("patience")
        return self.end("max_epochs") if stats.epoch >= cfg.max_epochs else None


@contextlib.contextmanager
def _device_math(device: torch.device, fast: bool) -> Iterator[None]:
    """TF32 matmuls on CUDA in fast mode, restored afterwards."""
    if not (fast and device.type == "cuda"):
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _train(
    runs: list[_Run], stack: StackedMLP, data: DataSplit, *, fast: bool, compile: bool
) -> None:
    """Train the stack until every member has left; each run records its own end."""
    x, y = data.x_train, data.y_train
    n, device, rows = len(x), x.device, x.reshape(len(x), -1)
    first = runs[0].member.config
    bf16 = fast and _bf16_matmuls(device)
    opt = StackedOptimizer(
        first.optimizer,
        lrs=[r.member.config.lr for r in runs],
        weight_decays=[r.member.config.weight_decay for r in runs],
        momentum=first.momentum,
        fused=fast,
    )
    forward = torch.compile(stack.forward, dynamic=True) if compile else stack.forward
    active = list(runs)
    for epoch in range(1, max(r.member.config.max_epochs for r in runs) + 1):
        order = torch.stack([torch.randperm(n, generator=r.generator) for r in active])
        if device.type == "cuda":
            order = order.pin_memory().to(device, non_blocking=True)
        loss_sum = torch.zeros(len(active), device=device)
        for start in range(0, n, first.batch_size):
            idx = order[:, start : start + first.batch_size]
            flat = idx.flatten()  # index_select on rows: the gather x[idx] does, but faster
            xb = rows.index_select(0, flat).view(*idx.shape, *x.shape[1:])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = forward(xb)
            losses = F.cross_entropy(
                logits.flatten(0, 1).float(), y.index_select(0, flat), reduction="none"
            ).view(idx.shape)
            losses = losses.mean(1)
            grads = torch.autograd.grad(losses.sum(), stack.params)
            opt.step(stack.params, list(grads))
            loss_sum += losses.detach() * idx.shape[1]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            val_loss, val_accuracy = stack.evaluate(data.x_val, data.y_val)
        # The only host sync of the epoch, for all members at once.
        figures = torch.stack([loss_sum / n, val_loss, val_accuracy]).tolist()
        kept = [
            i
            for i, (run, *f) in enumerate(zip(active, *figures, strict=True))
            if run.epoch_end(EpochStats(epoch, *f)) is None
        ]
        if len(kept) < len(active):
            if not kept:
                return
            index = torch.tensor(kept, device=device)
            stack.keep(index)
            opt.keep(index)
            active = [active[i] for i in kept]


def _population(
    members: Sequence[Member],
    *,
    task: Task,
    data: DataSplit,
    study_seed: int,
    device: torch.device,
    config: PopulationConfig,
) -> list[TrialOutcome]:
    started, t0 = datetime.now(UTC), time.perf_counter()
    fast = fast_by_default(device) if config.fast is None else config.fast
    runs: list[_Run] = []
    models: list[nn.Module] = []
    for member in members:
        root = member.number if member.seed_number is None else member.seed_number
        init_seed, data_seed = trial_seeds(study_seed, root)
        seeds = {"init": init_seed, "data": data_seed}
        cfg = member.config
        stopper = EarlyStopping(cfg.patience, min_delta=cfg.min_delta, direction=cfg.direction)
        run = _Run(member, seeds, torch.Generator(device="cpu").manual_seed(data_seed), stopper)
        runs.append(run)
        try:
            model, layers = _build(task, member.params, data, device, init_seed)
            run.outcome["manifest"] = manifest(
                seeds=[{"replicate": 0, **seeds}],
                params=member.params,
                config=cfg,
                device=device,
                layers=layers,
            ) | {"population": {"size": len(members), "fast": fast}}
            diagnostics: list[LayerDiagnostics] = _diagnostics(model, data, task)
            run.outcome["diagnostics"] = diagnostics
            models.append(model)
        except Exception as exc:
            run.end("error", describe_error(exc))
    training = [r for r in runs if r.finished is None]
    if training:
        try:
            stack = StackedMLP(models)
            del models[:]
            with _device_math(device, fast):
                _train(training, stack, data, fast=fast, compile=config.compile)
        except Exception as exc:
            for run in training:
                if run.finished is None:
                    run.end("error", describe_error(exc))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return [
        TrialOutcome(
            number=run.member.number,
            params=run.member.params,
            started_at=started,
            finished_at=datetime.now(UTC),
            duration_s=(run.finished or time.perf_counter()) - t0,
            device=str(device),
            seeds=run.seeds,
            **run.outcome,
        )
        for run in runs
    ]


def execute_population(
    members: Sequence[Member],
    *,
    task: Task,
    data: DataSplit,
    study_seed: int,
    device: torch.device,
    config: PopulationConfig | None = None,
) -> list[TrialOutcome]:
    """Train these trials of ``task``, fused where they can be; outcomes in input order.

    Members are grouped by what one stack must share (:func:`fusable_key`), each group cut to
    :func:`population_size`. A group of one, or a model that cannot be stacked, trains
    through :func:`execute_trial`. Like it, nothing raises for a trial's own failure.
    """
    config = config or PopulationConfig()
    outcomes: list[TrialOutcome | None] = [None] * len(members)
    keys = [fusable_key(m.config) for m in members]
    limits = {k: population_size(task, k[0], device, config) for k in set(keys)}
    for group in population_groups(keys, lambda k: limits[k]):  # type: ignore[index]
        chosen = [members[i] for i in group]
        if len(chosen) > 1:
            results = _population(
                chosen, task=task, data=data, study_seed=study_seed, device=device, config=config
            )
        else:
            results = [
                _single(m, task=task, data=data, study_seed=study_seed, device=device)
                for m in chosen
            ]
        for i, outcome in zip(group, results, strict=True):
            outcomes[i] = outcome
    return [o for o in outcomes if o is not None]


def _single(
    member: Member, *, task: Task, data: DataSplit, study_seed: int, device: torch.device
) -> TrialOutcome:
    return execute_trial(
        number=member.number,
        params=member.params,
        task=task,
        data=data,
        config=member.config,
        study_seed=study_seed,
        device=device,
        on_epoch=member.on_epoch,
        seed_number=member.seed_number,
    )
