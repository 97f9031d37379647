"""A worker whose device fails: a CUDA error ends its use of the device, out of memory is
recorded (and shrinks the study's populations); real studies, errors forced on a CPU."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

import storage
from tests.tuner.device_faults import Cleanup, device_assert, failing, oom
from tuner.errors import DeviceLost
from tuner.population import StackedOptimizer, _fused
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.tasks import DataSplit
from tuner.worker import Worker, WorkerConfig


def _study(db: storage.Database, name: str, n_trials: int, **search: Any) -> None:
    spec = {
        "name": name,
        "task": {"hidden": [8], "dataset": "synthetic"},
        "search": {"initializer": ["xavier_uniform"], "lr": 0.05, "batch_size": 32, **search},
        "budget": {"n_trials": n_trials, "max_epochs": 2, "max_retries": 0},
        "pruner": "none",
    }
    submit_study(db, parse_spec(spec))


def _worker(db: storage.Database, name: str, population: int) -> Worker:
    config = WorkerConfig(device="cpu", studies=[name], exit_when_idle=True, poll_interval=0.01,
                          deadline=time.monotonic() + 120, population=population)  # fmt: skip
    return Worker(db, config)


def _state(db: storage.Database, name: str) -> tuple[str, dict[str, int], list[str | None]]:
    with db.session() as session:
        record = storage.get_study_record(session, name)
        runs = storage.count_runs_by_state(session, name)
        rows = storage.list_trial_results(session, name, order_by="trial_number")
    assert record is not None
    return record.status, runs, [r.error for r in rows]


@pytest.mark.parametrize("population", [1, 3])
def test_a_cuda_error_hands_the_trials_back_and_ends_the_worker(
    population: int, database: storage.Database, monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    _study(database, "lost", 3)
    step = (StackedOptimizer, "step") if population > 1 else (torch.optim.SGD, "step")
    original = getattr(*step)
    monkeypatch.setattr(*step, failing(device_assert, cleanup))
    with pytest.raises(DeviceLost, match="device-side assert"):
        _worker(database, "lost", population).run()
    status, runs, errors = _state(database, "lost")
    assert status != "failed" and cleanup.calls == []
    # every claimed trial handed back (no retry spent, max_retries is 0), queued again
    assert runs == {"retried": population, "pending": population}
    lost = DeviceLost("cpu", "AcceleratorError: CUDA error: device-side assert triggered")
    assert errors == [f"handed back: {lost}"] * population
    monkeypatch.setattr(*step, original)  # a fresh worker (a new process: a new context)
    assert _worker(database, "lost", population).run() == 3
    status, runs, _ = _state(database, "lost")
    assert status == "completed" and runs == {"retried": population, "done": 3}


def test_data_that_does_not_fit_fails_each_trial_not_the_study(
    database: storage.Database, monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    _study(database, "big", 2)
    monkeypatch.setattr(DataSplit, "to", failing(oom, cleanup))
    assert _worker(database, "big", 1).run() == 2
    status, runs, errors = _state(database, "big")
    assert status == "completed" and runs == {"done": 2}
    assert all(e is not None and e.startswith("out of memory") for e in errors)
    assert len(cleanup.calls) == 3 and all(cleanup.calls)  # the study's move, each trial's


def test_after_a_population_ran_out_of_memory_the_worker_claims_smaller_ones(
    database: storage.Database, monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    _study(database, "shrink", 8, lr={"low": 0.01, "high": 0.1})
    builds: list[int] = []
    real = _fused.StackedMLP

    def stack(models: list[torch.nn.Module]) -> object:
        builds.append(len(models))
        if len(models) > 2:
            raise oom()
        return real(models)

    monkeypatch.setattr(_fused, "StackedMLP", stack)
    worker = _worker(database, "shrink", 4)
    assert worker.run() == 8
    status, runs, errors = _state(database, "shrink")
    assert status == "completed" and runs == {"done": 8} and errors == [None] * 8
    assert builds == [4, 2, 2, 2, 2]  # one population of 4 ran out; then pairs were claimed
    assert worker._claims._contexts["shrink"].population == 2
