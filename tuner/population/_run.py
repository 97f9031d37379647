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
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tuner.population._fused import OutcomeHook, train_population
from tuner.population._stack import stack_plan
from tuner.population._train import Member, resolve_fast
from tuner.spec import IntRange, SearchSpec
from tuner.tasks import DataSplit, Task
from tuner.training import (
    TrainConfig,
    TrialOutcome,
    execute_trial,
    free_memory,
    survive_out_of_memory,
)

CPU_CAP = 8  # beyond this a 2-16 core CPU gains nothing: the work per member dominates
CUDA_CAP = 64
MEMORY_SHARE = 0.5  # of the free device memory (CUDA) or available RAM (CPU) a worker's
# populations may use, shared out between its slots
#: A sampler that learns from finished trials sees the study in at least this many rounds:
#: the default population is at most n_trials / 4, so three quarters of the trials are
#: asked with the results of a quarter or more in hand (at K = 64 TPE would ask a whole
#: 40-trial quickstart before it saw one result, a random search by another name).
SAMPLER_ROUNDS = 4
#: Samplers that do not learn from results: any population size asks as well.
NON_LEARNING_SAMPLERS = frozenset({"random", "grid"})


@dataclass(frozen=True)
class PopulationConfig:
    size: int | None = None  # members per population; None: from free memory and model size
    share: float = MEMORY_SHARE  # of free memory this population may use (a slot's share)
    # bf16 matmuls and whole-stack optimizer math; None: CUDA only (:func:`resolve_fast`). The
    # fp32 precision (TF32) is the process's, set by whoever runs it (the worker), not here.
    fast: bool | None = None
    compile: bool = False  # the stacked step through torch.compile (one graph for every K)


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
        free = _free_device_memory(device)
        return max(1, min(CUDA_CAP, int(free * config.share // per_member)))
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: the cap decides
        return CPU_CAP
    return max(1, min(CPU_CAP, int(available * config.share // per_member)))


def sampler_cap(sampler: str, n_trials: int) -> int | None:
    """The largest default population that leaves a learning sampler something to learn
    from (:data:`SAMPLER_ROUNDS` rounds of the budget); None for samplers that do not learn."""
    if sampler in NON_LEARNING_SAMPLERS:
        return None
    return max(1, n_trials // SAMPLER_ROUNDS)


def _free_device_memory(device: torch.device) -> int:
    """Free bytes on CUDA ``device``; 0 when asking runs out of memory itself (a population
    of one then). :class:`~tuner.errors.DeviceLost` when the device is lost."""
    try:
        free, _ = torch.cuda.mem_get_info(device)
    except Exception as exc:
        survive_out_of_memory(exc, device)
    else:
        return int(free)
    free_memory(device)
    return 0


def largest_batch(dim: int | list[int] | IntRange) -> int:
    """The largest batch size a search dimension can give (to size populations by)."""
    if isinstance(dim, IntRange):
        return dim.high
    return max(dim) if isinstance(dim, list) else dim


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
    :func:`execute_trial`. Like it, nothing raises for a trial's own failure, and a lost
    device raises :class:`~tuner.errors.DeviceLost`. A population that runs out of memory
    trains its members again in smaller stacks (:mod:`_fused`).
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
            fast = resolve_fast(device, config.fast)
            train_population(
                chosen,
                emit,
                task=task,
                data=data,
                study_seed=study_seed,
                device=device,
                fast=fast,
                compile=config.compile,
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
