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

import os
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import torch
from torch import nn

from tuner.population._stack import StackedMLP, stack_plan
from tuner.population._train import Member, MemberRun, bf16_matmuls, train_stack
from tuner.spec import IntRange, SearchSpec
from tuner.tasks import DataSplit, Task
from tuner.training import (
    EarlyStopping,
    LayerDiagnostics,
    TrainConfig,
    TrialOutcome,
    build_initialized,
    calibration_diagnostics,
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
    # bf16 matmuls and fused optimizer kernels; None: CUDA only (:func:`resolve_fast`). The
    # fp32 precision (TF32) is the process's, set by whoever runs it (the worker), not here.
    fast: bool | None = None
    compile: bool = False  # torch.compile the stacked forward pass


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


#: Knobs a population trains exactly: members that differ in them go to separate stacks.
STACKED_KNOBS = frozenset({"optimizer", "momentum"})


def stacks_search(search: SearchSpec) -> bool:
    """Whether trials of this search can stack: any knob beyond the optimizer's (a schedule,
    warm-up, clipping, dropout, an activation) trains its trials one by one instead."""
    return set(search.extras) <= STACKED_KNOBS


def stackable(task: Task) -> bool:
    """Whether trials of ``task`` can train as one stack: a model the built-in loop trains,
    of a shape the stack knows (a task's own training function never stacks)."""
    if task.train is not None or task.build_model is None:
        return False
    if task.data is not None and task.data.regression:
        return False  # the stack's loss and evaluation are classification's
    return stack_plan(task.build_model()) is not None


def population_size(
    task: Task, batch_size: int, device: torch.device, config: PopulationConfig
) -> int:
    """Members to train at once: the override, else what fits in memory (1: not stackable)."""
    if not stackable(task):
        return 1
    build, _ = task.model_and_data()
    model = build()
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


def resolve_fast(device: torch.device, fast: bool | None) -> bool:
    """Whether ``fast`` (None: the default) means fast mode on ``device``: on CUDA only."""
    return device.type == "cuda" if fast is None else fast


def population_matmuls(device: torch.device, fast: bool | None) -> str:
    """The dtype a population's matmuls run in on ``device``: bf16 in fast mode where it pays
    (:func:`bf16_matmuls`), else the parameters' own, float32."""
    return "bfloat16" if resolve_fast(device, fast) and bf16_matmuls(device) else "float32"


def largest_batch(dim: int | list[int] | IntRange) -> int:
    """The largest batch size a search dimension can give (to size populations by)."""
    if isinstance(dim, IntRange):
        return dim.high
    return max(dim) if isinstance(dim, list) else dim


OutcomeHook = Callable[[int, TrialOutcome], None]


def _outcome(run: MemberRun, started: datetime, t0: float, device: torch.device) -> TrialOutcome:
    return TrialOutcome(
        number=run.member.number,
        params=run.member.params,
        started_at=started,
        finished_at=run.finished_at or datetime.now(UTC),
        duration_s=run.finished - t0,
        device=str(device),
        seeds=run.seeds,
        **run.outcome,
    )


def _population(
    members: Sequence[Member],
    emit: OutcomeHook,
    *,
    task: Task,
    data: DataSplit,
    study_seed: int,
    device: torch.device,
    config: PopulationConfig,
) -> None:
    """Build, stack and train ``members``; ``emit(i, outcome)`` as each one leaves."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    fast = resolve_fast(device, config.fast)
    matmuls = population_matmuls(device, config.fast)
    facts = {
        "size": len(members),
        "members": [m.number for m in members],  # in stack order: what a replay re-runs
        "fast": fast,
        "matmuls": matmuls,
    }
    runs: list[MemberRun] = []
    models: list[nn.Module] = []
    position: dict[int, int] = {}  # id(run) -> index in members
    for index, member in enumerate(members):
        root = member.number if member.seed_number is None else member.seed_number
        init_seed, data_seed = trial_seeds(study_seed, root)
        seeds = {"init": init_seed, "data": data_seed}
        cfg = member.config
        stopper = EarlyStopping(cfg.patience, min_delta=cfg.min_delta, direction=cfg.direction)
        run = MemberRun(member, seeds, torch.Generator().manual_seed(data_seed), stopper)
        try:  # as execute_trial: seeded build, initializer, manifest, t=0 diagnostics
            model, layers = build_initialized(task, member.params, data, device, init_seed)
            run.outcome["manifest"] = manifest(
                seeds=[{"replicate": 0, **seeds}],
                params=member.params,
                config=cfg,
                device=device,
                layers=layers,
                seed_number=root,
            ) | {"population": facts}
            diagnostics: list[LayerDiagnostics] = calibration_diagnostics(model, data, task)
            run.outcome["diagnostics"] = diagnostics
        except Exception as exc:
            run.end("error", describe_error(exc))
            emit(index, _outcome(run, started, t0, device))
            continue
        runs.append(run)
        models.append(model)
        position[id(run)] = index
    if not runs:
        return
    stack = StackedMLP(models)
    del models[:]  # the stack holds the weights now
    # The fp32 precision is the process's, recorded in each manifest above; nothing here
    # changes it (process-global flags toggled per slot thread would leak between slots).
    bf16 = matmuls == "bfloat16"
    epochs = train_stack(runs, stack, data, fast=fast, bf16=bf16, compile=config.compile)
    while True:
        try:
            left = next(epochs, None)
        except Exception as exc:  # the shared computation failed: every member with it
            left = [run for run in runs if run.finished_at is None]
            for run in left:
                run.end("error", describe_error(exc))
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if left is None:
            return
        for run in left:  # outside the try: the caller's errors are its own
            emit(position[id(run)], _outcome(run, started, t0, device))
        if all(run.finished_at is not None for run in runs):
            return


def execute_population(
    members: Sequence[Member],
    *,
    task: Task,
    data: DataSplit,
    study_seed: int,
    device: torch.device,
    config: PopulationConfig | None = None,
    on_outcome: OutcomeHook | None = None,
) -> list[TrialOutcome]:
    """Train these trials of ``task``, fused where they can be; outcomes in input order.

    Members are grouped by what one stack must share (:func:`fusable_key`), each group cut to
    :func:`population_size`. A model that cannot be stacked (or ``size=1``) trains through
    :func:`execute_trial`. Like it, nothing raises for a trial's own failure.
    ``on_outcome(i, outcome)`` hears of member ``i`` as soon as it has left its population.
    """
    config = config or PopulationConfig()
    outcomes: list[TrialOutcome | None] = [None] * len(members)
    keys = [fusable_key(m.config) for m in members]
    limits = {k: population_size(task, k[0], device, config) for k in set(keys)}
    for group in population_groups(keys, lambda k: limits[k]):  # type: ignore[index]

        def emit(i: int, outcome: TrialOutcome, group: list[int] = group) -> None:
            outcomes[group[i]] = outcome
            if on_outcome is not None:
                on_outcome(group[i], outcome)

        chosen = [members[i] for i in group]
        if limits[keys[group[0]]] > 1:  # stackable: even alone, the stacked loop is no slower
            _population(
                chosen,
                emit,
                task=task,
                data=data,
                study_seed=study_seed,
                device=device,
                config=config,
            )
        else:
            emit(0, _single(chosen[0], task=task, data=data, study_seed=study_seed, device=device))
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
