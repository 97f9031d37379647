"""Populations inside the worker: K claims, one stack, every member recorded as a single trial."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import optuna
import pytest
import torch

import storage
from tuner.spec import parse_spec
from tuner.studies import replay_trial, run_study
from tuner.training import EpochStats
from tuner.worker import RunObserver, slot_threads

# Rows compared between a sequential and a population run: everything but who, when, how long.
SAME = "state stop_reason initializer lr weight_decay batch_size patience value best_epoch"
SAME += " epochs_run params_json error"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same BLAS calls either way: comparable to the last bit
    yield
    torch.set_num_threads(threads)


def _spec(name: str, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "name": name,
        "task": {"model": "mlp", "hidden": [32], "dataset": "digits"},
        "search": {
            "initializer": ["xavier_normal", "kaiming_normal", "orthogonal"],
            "lr": {"low": 0.01, "high": 0.3, "log": True},
            "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
            "batch_size": [64, 128],
            "patience": {"low": 1, "high": 3},
        },
        "budget": {"n_trials": 6, "max_epochs": 5},
        "sampler": "random",  # a trial's parameters depend on its claim only: comparable runs
        "pruner": "none",
    }
    data.update(overrides)
    return parse_spec(data)


def _rows(url: str, name: str) -> list[storage.TrialResult]:
    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, name, order_by="trial_number")
            session.expunge_all()
            return rows
    finally:
        db.dispose()


def _population_sizes(rows: list[storage.TrialResult]) -> list[int | None]:
    return [(r.manifest_json or {}).get("population", {}).get("size") for r in rows]


def test_a_population_records_every_member_as_a_single_trial_would(database_url: str) -> None:
    run_study(_spec("one"), database_url=database_url, population=1)
    run_study(_spec("pop"), database_url=database_url, population=8)
    one, pop = _rows(database_url, "one"), _rows(database_url, "pop")
    assert len(one) == len(pop) == 6  # the budget, exactly: 8 asked for, 6 left to claim
    assert _population_sizes(one) == [None] * 6
    by_batch = {b: sum(1 for r in pop if r.batch_size == b) for b in (64, 128)}
    # each batch size is one population
    assert _population_sizes(pop) == [by_batch[r.batch_size] for r in pop]
    assert {r.stop_reason for r in pop} >= {"patience"}
    for a, b in zip(one, pop, strict=True):
        assert {k: getattr(a, k) for k in SAME.split()} == {k: getattr(b, k) for k in SAME.split()}
    studies = [optuna.load_study(study_name=n, storage=database_url) for n in ("one", "pop")]
    for a, b in zip(*(s.trials for s in studies), strict=True):
        assert (a.state, a.value, a.intermediate_values) == (
            b.state,
            b.value,
            b.intermediate_values,
        )
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in studies[1].trials)


def test_an_interrupt_hands_back_every_member_still_training(database_url: str) -> None:
    seen: list[int] = []

    class CtrlC(RunObserver):
        def epoch_finished(self, number: int, stats: EpochStats) -> None:
            seen.append(number)
            if len(seen) == 2:  # the second member's first epoch: both are mid-training
                raise KeyboardInterrupt

    spec = _spec("int", search={"initializer": ["xavier_normal"], "lr": 0.05, "batch_size": 64})
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, database_url=database_url, observer=CtrlC(), population=3)
    rows = _rows(database_url, "int")
    assert [(r.state, r.stop_reason, r.error) for r in rows] == [
        ("fail", "error", "interrupted")
    ] * 3
    db = storage.Database(database_url)
    try:
        with db.session() as session:
            counts = storage.count_runs_by_state(session, "int")
    finally:
        db.dispose()
    assert counts.get("pending") == 3  # each configuration queued again, no retry spent
    trials = optuna.load_study(study_name="int", storage=database_url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 3


@pytest.mark.parametrize(
    "overrides",
    [{"replicates": 2}, {"replicates": {"init": 2, "data": 2}}, {"sampler": "qmc"}],
    ids=["lockstep-replicates", "crossed-design", "sampler-that-asks-one-by-one"],
)
def test_no_population_where_trials_must_be_asked_or_trained_one_by_one(
    database_url: str, overrides: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec("solo", budget={"n_trials": 3, "max_epochs": 2}, **overrides)
    run_study(spec, database_url=database_url, population=8)
    rows = _rows(database_url, "solo")
    assert len(rows) == 3 and _population_sizes(rows) == [None] * 3
    said = "replicates train in lockstep, one trial at a time (not in populations of 8)"
    assert (said in caplog.text) == ("replicates" in overrides)


# Known bug, open: after other tests in the same process, about one run in five replays one
# population member off in the second decimal (reproduced at 0.2.0 too, so not a regression);
# the single-trial case stays exact. Not strict, so the case still runs and reports XPASS/XFAIL.
_POPULATION_REPLAY = pytest.mark.xfail(
    strict=False, reason="intermittent: a population member's replay can differ (open bug)"
)


@pytest.mark.parametrize(
    "population",
    [1, pytest.param(2, marks=_POPULATION_REPLAY)],
    ids=["single-trials", "populations"],
)
def test_cpu_slots_share_the_threads_and_each_trial_replays_exactly(
    database_url: str, population: int
) -> None:
    search = dict(_spec("x").model_dump(mode="json")["search"])
    # torch's own reset_parameters() draws from the global RNG: the slots' builds must not mix
    search["initializer"] = ["default", "kaiming_normal"]
    spec = _spec("par", budget={"n_trials": 6, "max_epochs": 3}, search=search)
    torch.set_num_threads(2)  # the process's threads: two slots get one each
    run_study(spec, database_url=database_url, slots=2, population=population)
    assert torch.get_num_threads() == 2  # restored once the slots are done
    rows = _rows(database_url, "par")
    assert sorted(r.trial_number for r in rows) == list(range(6))
    assert all((r.manifest_json or {})["deterministic"]["num_threads"] == 1 for r in rows)
    # Builds are serialized and each slot computes on one thread: every trial gives the
    # numbers it gives alone, whichever slot ran it and whatever ran beside it.
    db = storage.Database(database_url)
    try:
        replays = [replay_trial(db, "par", r.trial_number) for r in rows]
    finally:
        db.dispose()
    assert all(replay.matches for replay in replays), [
        (r.trial_number, r.stored_value, r.outcome.value) for r in replays if not r.matches
    ]


def test_threads_per_slot() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    threads = torch.get_num_threads()
    assert slot_threads(cpu, 1, None) is None  # one slot: torch's own setting
    assert slot_threads(cpu, 2, None) == max(1, threads // 2)
    assert slot_threads(cpu, 4 * threads, None) == 1
    assert slot_threads(cpu, 2, 3) == 3  # asked for
    assert slot_threads(cuda, 2, None) is None  # the GPU computes; threads only feed it
