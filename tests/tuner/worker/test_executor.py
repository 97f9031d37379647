"""The worker's training is an argument: a stand-in executor runs every other part for real."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import storage
from tuner.population import Member, PopulationConfig
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.tasks import DataSplit, Task
from tuner.training import EpochHook, EpochStats, StopReason, TrialOutcome
from tuner.worker import Executor, Worker, WorkerConfig

EPOCHS = 3


def _outcome(number: int, params: Any, on_epoch: EpochHook | None) -> TrialOutcome:
    """A made-up trial: EPOCHS epochs reported through the worker's real hook, no training."""
    started = datetime.now(UTC)
    reason: StopReason = "max_epochs"
    epoch = 0
    for epoch in range(1, EPOCHS + 1):
        stop = on_epoch(EpochStats(epoch, 1.0 / epoch, 1.0 / epoch, 0.5)) if on_epoch else None
        if stop is not None:
            reason = stop
            break
    return TrialOutcome(
        number=number,
        params=params,
        state="pruned" if reason == "pruned" else "complete",
        stop_reason=reason,
        value=0.5,
        best_epoch=epoch,
        epochs_run=epoch,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_s=0.0,
        device="cpu",
        seeds={"init": 0, "data": 0},
    )


def _study(db: storage.Database, name: str, n_trials: int) -> None:
    spec = parse_spec(
        {
            "name": name,
            "task": {"model": "mlp", "hidden": [4], "dataset": "synthetic"},
            "budget": {"n_trials": n_trials, "max_epochs": EPOCHS},
            "sampler": "random",
            "pruner": "none",
        }
    )
    submit_study(db, spec)


def _ended(db: storage.Database, name: str) -> tuple[str, list[storage.TrialResult]]:
    with db.session() as session:
        record = storage.get_study_record(session, name)
        assert record is not None
        rows = storage.list_trial_results(session, name, order_by="trial_number")
        session.expunge_all()
        return record.status, rows


def _config(name: str, population: int) -> WorkerConfig:
    return WorkerConfig(
        device="cpu",
        studies=(name,),
        exit_when_idle=True,
        poll_interval=0.05,
        population=population,
    )


def test_a_fake_trial_executor_is_what_the_worker_runs(sqlite_url: str) -> None:
    db = storage.Database(sqlite_url)
    db.upgrade()
    calls: list[int] = []

    def trial(*, number: int, params: Any, on_epoch: EpochHook, **rest: Any) -> TrialOutcome:
        calls.append(number)
        return _outcome(number, params, on_epoch)

    try:
        _study(db, "fake", n_trials=4)
        worker = Worker(db, _config("fake", population=1), executor=Executor(trial=trial))
        assert worker.run() == 4
        status, rows = _ended(db, "fake")
        assert status == "completed"
        assert len(rows) == 4 and len(calls) == 4
        assert sorted(calls) == [row.trial_number for row in rows]
        assert {(r.state, r.stop_reason, r.epochs_run) for r in rows} == {
            ("complete", "max_epochs", EPOCHS)
        }
    finally:
        db.dispose()


def test_a_fake_population_executor_gets_the_claims_as_members(sqlite_url: str) -> None:
    db = storage.Database(sqlite_url)
    db.upgrade()
    sizes: list[int] = []

    def population(
        members: Sequence[Member],
        *,
        task: Task,
        data: DataSplit,
        study_seed: int,
        device: Any,
        config: PopulationConfig,
        on_outcome: Callable[[int, TrialOutcome], None],
    ) -> list[TrialOutcome]:
        sizes.append(len(members))
        outcomes = [_outcome(m.number, m.params, m.on_epoch) for m in members]
        for i, outcome in enumerate(outcomes):
            on_outcome(i, outcome)
        return outcomes

    def no_trial(**kw: Any) -> TrialOutcome:
        raise AssertionError("a population of one trains alone")

    try:
        _study(db, "pop", n_trials=6)
        executor = Executor(trial=no_trial, population=population)
        assert Worker(db, _config("pop", population=3), executor=executor).run() == 6
        status, rows = _ended(db, "pop")
        assert (status, len(rows), sizes) == ("completed", 6, [3, 3])
    finally:
        db.dispose()
