"""Asking in memory through the sampler's window of the study: deterministic given the
seed, the same as the whole history while it fits, and up to date after every trial."""

from __future__ import annotations

import random
from typing import Any, Literal

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from tuner.search import TrialParams, suggest
from tuner.spec import SamplerHistory, parse_spec
from tuner.worker._asking import _InMemoryTrial
from tuner.worker._reporting import Snapshot

SEARCH = parse_spec(
    {
        "name": "window",
        "task": {"model": "mlp", "hidden": [4], "dataset": "synthetic"},
        "search": {
            "initializer": ["xavier_uniform", "kaiming_normal"],
            "lr": {"low": 1e-4, "high": 1.0, "log": True},
        },
    }
).search
WINDOW = SamplerHistory(best=30, recent=40)


def _study(n: int) -> optuna.Study:
    """A study (in memory) with ``n`` complete trials of the search space above."""
    rng = random.Random(n)
    study = optuna.create_study(direction="maximize")
    inits = CategoricalDistribution(["xavier_uniform", "kaiming_normal"])
    lrs = FloatDistribution(1e-4, 1.0, log=True)
    study.add_trials(
        create_trial(
            params={"initializer": rng.choice(inits.choices), "lr": 10 ** rng.uniform(-4, 0)},
            distributions={"initializer": inits, "lr": lrs},
            value=rng.random(),
        )
        for _ in range(n)
    )
    return study


def _ask(
    snapshot: Snapshot, history: SamplerHistory | Literal["all"], seed: int = 7
) -> TrialParams:
    sampler = optuna.samplers.TPESampler(seed=seed)
    trial: Any = _InMemoryTrial(snapshot.for_sampler(history), sampler)
    return suggest(trial, SEARCH)


def test_while_the_history_fits_the_window_changes_nothing() -> None:
    snapshot = Snapshot(_study(60))  # 60 <= 30 + 40
    snapshot.refresh()
    assert _ask(snapshot, WINDOW) == _ask(snapshot, "all")


def test_asking_through_the_window_is_deterministic_given_the_seed() -> None:
    snapshot = Snapshot(_study(300))
    snapshot.refresh()
    first = _ask(snapshot, WINDOW)
    assert _ask(snapshot, WINDOW) == first
    view = snapshot.for_sampler(WINDOW)
    assert snapshot.for_sampler(SamplerHistory(best=30, recent=40)) is view  # kept
    complete = view._get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 70


def test_the_window_follows_every_trial_recorded() -> None:
    study = _study(300)
    snapshot = Snapshot(study)
    snapshot.refresh()
    view = snapshot.for_sampler(WINDOW)
    before = view._get_trials(states=(TrialState.COMPLETE,))
    best = max(before, key=lambda t: t.value or 0.0)
    finished = create_trial(
        params=best.params, distributions=best.distributions, value=(best.value or 0.0) + 1
    )
    finished.number = 300
    snapshot.record(finished)
    after = view._get_trials(states=(TrialState.COMPLETE,))
    assert after[-1].number == 300 and len(after) == 70  # the newest, and the best now
