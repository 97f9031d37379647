"""Running one trial: sample, seed, build, initialize, train, and describe the outcome.

Nothing here raises for a trial's own failure: divergence, an exception or
running out of memory all end in a :class:`TrialOutcome` with a stop reason,
so the caller always has a state to record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import optuna
import torch

from tuner._data import DataSplit
from tuner._errors import TunerError
from tuner._initializers import apply_initializer
from tuner._search import TrialParams
from tuner._tasks import Task
from tuner._train import EpochStats, StopReason, TrainConfig, TrainResult, train

TrialState = Literal["complete", "pruned", "fail"]


def trial_seeds(study_seed: int, number: int) -> tuple[int, int]:
    """Independent (init, data-order) seeds for a trial, stable across runs and machines."""
    init_seed, data_seed = np.random.SeedSequence([study_seed, number]).generate_state(2)
    return int(init_seed), int(data_seed)


@dataclass
class TrialOutcome:
    number: int
    params: TrialParams
    state: TrialState
    stop_reason: StopReason
    value: float | None
    best_epoch: int | None
    epochs_run: int
    started_at: datetime
    finished_at: datetime
    duration_s: float
    device: str
    seeds: dict[str, int]
    history: list[EpochStats] = field(default_factory=list)
    error: str | None = None


def _state_for(result: TrainResult) -> TrialState:
    if result.stop_reason == "pruned":
        return "pruned"
    if result.value is None:  # diverged (or stopped) before any usable epoch
        return "fail"
    return "complete"


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"out of memory: {exc}".splitlines()[0]
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def execute_trial(
    *,
    number: int,
    params: TrialParams,
    task: Task,
    data: DataSplit,
    config: TrainConfig,
    study_seed: int,
    device: torch.device,
    on_epoch: Callable[[EpochStats], StopReason | None] | None = None,
    seed_number: int | None = None,
) -> TrialOutcome:
    """Train one configuration; every failure becomes an outcome, except interrupts.

    Seeds derive from ``seed_number`` (default: the trial number); a retry passes its first
    attempt's number, so it re-runs the same computation.
    """
    init_seed, data_seed = trial_seeds(study_seed, number if seed_number is None else seed_number)
    started, t0 = datetime.now(UTC), time.perf_counter()
    outcome: dict[str, Any]
    try:
        torch.manual_seed(init_seed)  # modules draw their construction-time weights here
        model = task.build_model().to(device)
        apply_initializer(
            model,
            params.initializer_name,
            params.init_params,
            activation=task.activation,
            generator=torch.Generator(device="cpu").manual_seed(init_seed),
            calibration=data.x_train[:256],
        )
        result = train(
            model,
            data,
            config,
            generator=torch.Generator(device="cpu").manual_seed(data_seed),
            on_epoch=on_epoch,
        )
        outcome = {
            "state": _state_for(result),
            "stop_reason": result.stop_reason,
            "value": result.value,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "history": result.history,
        }
    except Exception as exc:
        outcome = {
            "state": "fail",
            "stop_reason": "error",
            "value": None,
            "best_epoch": None,
            "epochs_run": 0,
            "error": describe_error(exc),
        }
        if device.type == "cuda":
            torch.cuda.empty_cache()  # let the next trial start from a clean allocator
    return TrialOutcome(
        number=number,
        params=params,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_s=time.perf_counter() - t0,
        device=str(device),
        seeds={"init": init_seed, "data": data_seed},
        **outcome,
    )


def resolve_device(name: str | None = None) -> torch.device:
    """``auto``/None picks CUDA when present, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise TunerError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TunerError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def tell(study: optuna.Study, trial: optuna.Trial | int, outcome: TrialOutcome) -> None:
    """Finish the Optuna trial in the state the outcome says."""
    if outcome.state == "complete":
        study.tell(trial, outcome.value)
    elif outcome.state == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
