"""How many trials a population takes by default: what fits in a slot's share of the
device's memory, and no more than leaves a learning sampler results to learn from."""

from __future__ import annotations

import pytest
import torch

import storage
from tuner.population import MEMORY_SHARE, PopulationConfig, population_size, sampler_cap
from tuner.spec import parse_spec
from tuner.studies import submit_study
from tuner.tasks import build_task
from tuner.worker import Worker, WorkerConfig
from tuner.worker._claims import Claims

GPU = torch.device("cuda", 0)


def _task() -> object:
    spec = parse_spec({"name": "s", "task": {"model": "mlp", "hidden": [32], "dataset": "digits"}})
    return build_task(spec.task)


@pytest.mark.parametrize(
    ("sampler", "n_trials", "cap"),
    [("tpe", 40, 10), ("tpe", 3, 1), ("cmaes", 100, 25), ("random", 40, None), ("grid", 9, None)],
)
def test_a_learning_sampler_sees_the_study_in_four_rounds(
    sampler: str, n_trials: int, cap: int | None
) -> None:
    assert sampler_cap(sampler, n_trials) == cap


def test_populations_on_a_gpu_take_their_slots_share_of_free_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = _task()
    free = 10 * 2**20  # 10 MiB free: a few dozen members of this small MLP
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 8 * free))
    whole = population_size(task, 64, GPU, PopulationConfig())  # type: ignore[arg-type]
    halves = population_size(task, 64, GPU, PopulationConfig(share=MEMORY_SHARE / 2))  # type: ignore[arg-type]
    assert 4 <= whole < 64 and halves == whole // 2


def test_a_worker_claims_populations_its_sampler_can_learn_from(database_url: str) -> None:
    db = storage.Database(database_url)
    db.upgrade()
    spec = parse_spec(
        {
            "name": "rounds",
            "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
            "search": {"initializer": ["xavier_uniform"], "lr": {"low": 0.01, "high": 0.3}},
            "budget": {"n_trials": 8, "max_epochs": 1},
            "sampler": "tpe",
        }
    )
    try:
        submit_study(db, spec)
        record_spec = spec.model_dump(mode="json")
        auto = Claims(db, "w", torch.device("cpu"), WorkerConfig(device="cpu", population=None))
        assert auto.population(auto.context("rounds", record_spec)) == 2  # 8 trials / 4 rounds
        asked = Claims(db, "w", torch.device("cpu"), WorkerConfig(device="cpu", population=6))
        assert asked.population(asked.context("rounds", record_spec)) == 6  # asked for: kept
        worker = Worker(db, WorkerConfig(device="cpu", studies=["rounds"], exit_when_idle=True))
        assert worker.run() == 8
    finally:
        db.dispose()
