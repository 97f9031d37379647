"""One trial, whichever way its task trains: the built-in loop, or the task's own function."""

from __future__ import annotations

import torch

from tuner.search import TrialParams
from tuner.spec import SeedDesign
from tuner.tasks import DataSplit, Task
from tuner.training._function import train_function_trial
from tuner.training._loop import EpochHook, TrainConfig
from tuner.training._seeds import trial_seeds
from tuner.training._trial import TrialOutcome, train_model_trial


def execute_trial(
    *,
    number: int,
    params: TrialParams,
    task: Task,
    data: DataSplit | None,
    config: TrainConfig,
    study_seed: int,
    device: torch.device,
    on_epoch: EpochHook | None = None,
    seed_number: int | None = None,
    replicates: int | SeedDesign = 1,
    seeds: list[dict[str, int]] | None = None,
) -> TrialOutcome:
    """Train one configuration; every failure becomes an outcome, except interrupts.

    Seeds derive from ``seed_number`` (default: the trial number); a retry passes its first
    attempt's number, so it re-runs the same computation. ``seeds`` (a manifest's, for a
    replay) replaces the derived seeds. A task with its own training function runs it with
    one seed pair; otherwise :func:`train_model_trial` trains ``replicates`` in lockstep (a
    count, or a crossed design of init and data-order seeds).
    """
    if task.train is not None:
        root = number if seed_number is None else seed_number
        init_seed, data_seed = trial_seeds(study_seed, root)
        pair = seeds[0] if seeds else {"init": init_seed, "data": data_seed}
        return train_function_trial(
            task.train,
            number=number,
            params=params,
            task=task,
            config=config,
            device=device,
            seeds={"init": int(pair["init"]), "data": int(pair["data"])},
            on_epoch=on_epoch,
            seed_number=root,
        )
    _, model_data = task.model_and_data()
    return train_model_trial(
        number=number,
        params=params,
        task=task,
        data=data if data is not None else model_data,
        config=config,
        study_seed=study_seed,
        device=device,
        on_epoch=on_epoch,
        seed_number=seed_number,
        replicates=replicates,
        seeds=seeds,
    )
