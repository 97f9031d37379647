"""One population: its members built and initialized, stacked, trained; each member's outcome
emitted as it leaves.

A population that runs out of memory (building a member or the stack, moving the data, a
step, an evaluation) does not fail its members: the ones still training run again, from
their first epoch, in stacks half the size, down to a member alone, whose running out of
memory is then its failure. A member's ``on_epoch`` is not told again the epochs it heard
before the re-run: observers see each epoch once, and the pruner judged those already. The
sizes that ran out are in each outcome's manifest (``population.out_of_memory``), so a
worker can claim smaller populations from then on.
A lost device (:class:`~tuner.errors.DeviceLost`) ends it all: nothing is emitted for the
members still training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import torch
from torch import nn

from tuner.population._stack import StackedMLP
from tuner.population._train import Member, MemberRun, population_matmuls, train_stack
from tuner.tasks import DataSplit, Task
from tuner.training import (
    EarlyStopping,
    EpochStats,
    StopReason,
    TrialOutcome,
    build_initialized,
    calibration_diagnostics,
    calibration_signal,
    describe_error,
    device_lost,
    free_memory,
    is_device_lost,
    is_out_of_memory,
    manifest,
    release,
    trial_seeds,
)

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


def _member_run(member: Member, study_seed: int) -> MemberRun:
    root = member.number if member.seed_number is None else member.seed_number
    init_seed, data_seed = trial_seeds(study_seed, root)
    cfg = member.config
    stopper = EarlyStopping(cfg.patience, min_delta=cfg.min_delta, direction=cfg.direction)
    seeds = {"init": init_seed, "data": data_seed}
    return MemberRun(member, seeds, torch.Generator().manual_seed(data_seed), stopper)


def _epochs(
    runs: list[MemberRun],
    *,
    task: Task,
    data: DataSplit,
    device: torch.device,
    facts: dict[str, Any],
    compile: bool,
) -> Iterator[list[int]]:
    """Build, stack and train; yields the indices of the members that left: those whose
    build failed, then after each epoch those that stopped. Runs in its own frame, so the
    tensors of a failed computation go with its traceback."""
    data = data.to(device)  # a no-op when it is there already (a worker moves it once)
    models: list[nn.Module] = []
    live: list[int] = []
    failed: list[int] = []
    for index, run in enumerate(runs):
        member, seeds = run.member, run.seeds
        try:  # as execute_trial: seeded build, initializer, manifest, t=0 diagnostics
            model, layers = build_initialized(task, member.params, data, device, seeds["init"])
            run.outcome["manifest"] = manifest(
                seeds=[{"replicate": 0, **seeds}],
                params=member.params,
                config=member.config,
                device=device,
                layers=layers,
                seed_number=member.number if member.seed_number is None else member.seed_number,
                records=task.records,
            ) | {"population": facts}
            run.outcome["diagnostics"] = calibration_diagnostics(model, data, task)
            run.outcome["signal"] = calibration_signal(model, data)
        except Exception as exc:
            if is_out_of_memory(exc) or is_device_lost(exc):
                raise  # the population's, not this member's
            run.end("error", describe_error(exc))
            failed.append(index)
            continue
        live.append(index)
        models.append(model)
    if failed:
        yield failed
    if not live:
        return
    stack = StackedMLP(models)
    del models[:]  # the stack holds the weights now
    position = {id(runs[i]): i for i in live}
    fast, bf16 = facts["fast"], facts["matmuls"] == "bfloat16"
    # The fp32 precision is the process's, recorded in each manifest; nothing here changes
    # it (process-global flags toggled per slot thread would leak between slots).
    stacked = [runs[i] for i in live]
    for left in train_stack(stacked, stack, data, fast=fast, bf16=bf16, compile=compile):
        yield [position[id(run)] for run in left]


def train_population(
    members: Sequence[Member],
    emit: OutcomeHook,
    *,
    task: Task,
    data: DataSplit,
    study_seed: int,
    device: torch.device,
    fast: bool,
    compile: bool,
    out_of_memory: tuple[int, ...] = (),
) -> None:
    """Train ``members`` as one stack; ``emit(i, outcome)`` as each one leaves.

    ``out_of_memory``: the sizes of the populations these members ran out of memory in.
    """
    started, t0 = datetime.now(UTC), time.perf_counter()
    facts: dict[str, Any] = {
        "size": len(members),
        "members": [m.number for m in members],  # in stack order: what a replay re-runs
        "fast": fast,
        "matmuls": population_matmuls(device, fast),
        "compiled": compile,
    }
    if out_of_memory:
        facts["out_of_memory"] = list(out_of_memory)
    runs = [_member_run(member, study_seed) for member in members]
    done: set[int] = set()
    epochs = _epochs(runs, task=task, data=data, device=device, facts=facts, compile=compile)
    while True:
        try:
            left = next(epochs, None)
        except Exception as exc:  # the shared computation failed: every member still in it
            if is_device_lost(exc):
                raise device_lost(exc, device) from exc
            error, oom = describe_error(exc), is_out_of_memory(exc)
            release(exc)
            break
        if left is None:
            return
        for index in left:  # outside the try: the caller's errors are its own
            done.add(index)
            emit(index, _outcome(runs[index], started, t0, device))
    del epochs
    free_memory(device)
    rest = [i for i in range(len(members)) if i not in done]
    if oom and len(rest) > 1:  # smaller stacks, each from its first epoch
        size = max(1, len(rest) // 2)
        for part in (rest[i : i + size] for i in range(0, len(rest), size)):

            def emit_part(j: int, outcome: TrialOutcome, part: list[int] = part) -> None:
                emit(part[j], outcome)

            train_population(
                [_rerun(members[i], runs[i]) for i in part],
                emit_part,
                task=task,
                data=data,
                study_seed=study_seed,
                device=device,
                fast=fast,
                compile=compile,
                out_of_memory=(*out_of_memory, len(members)),
            )
        return
    for index in rest:
        runs[index].end("error", error)
        emit(index, _outcome(runs[index], started, t0, device))


def _rerun(member: Member, run: MemberRun) -> Member:
    """``member`` to train again from its first epoch, its hook quiet for the epochs it heard."""
    heard, hook = len(run.history), member.on_epoch
    if hook is None or heard == 0:
        return member

    def on_epoch(stats: EpochStats) -> StopReason | None:
        return hook(stats) if stats.epoch > heard else None

    return replace(member, on_epoch=on_epoch)
