"""What a worker runs to train its trials: one at a time, or a population as one stack.

The worker takes an :class:`Executor` (by default the real training); a stand-in that
reports made-up epochs through the same hooks exercises everything else a worker does
(claims, Optuna, reports, pruning, recording) without training anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from tuner.population import Member, PopulationConfig, execute_population
from tuner.search import TrialParams
from tuner.spec import SeedDesign
from tuner.tasks import DataSplit, Task
from tuner.training import EpochHook, TrainConfig, TrialOutcome, execute_trial


class TrialExecutor(Protocol):
    """Trains one trial, as :func:`tuner.training.execute_trial` is called by a worker.

    Calls ``on_epoch`` after each epoch and stops on the reason it returns; every failure
    of the trial's own is an outcome, only interrupts raise.
    """

    def __call__(
        self,
        *,
        number: int,
        params: TrialParams,
        task: Task,
        data: DataSplit | None,
        config: TrainConfig,
        study_seed: int,
        device: torch.device,
        on_epoch: EpochHook,
        seed_number: int,
        replicates: int | SeedDesign,
    ) -> TrialOutcome: ...


class PopulationExecutor(Protocol):
    """Trains trials as populations, as :func:`tuner.population.execute_population`.

    ``on_outcome(i, outcome)`` hears of member ``i`` as soon as it has ended.
    """

    def __call__(
        self,
        members: Sequence[Member],
        *,
        task: Task,
        data: DataSplit,
        study_seed: int,
        device: torch.device,
        config: PopulationConfig,
        on_outcome: Callable[[int, TrialOutcome], None],
    ) -> list[TrialOutcome]: ...


@dataclass(frozen=True)
class Executor:
    """A worker's training: ``trial`` for one trial, ``population`` for several at once."""

    trial: TrialExecutor = execute_trial
    population: PopulationExecutor = execute_population
