"""The sampler's window of a study's history: the best trials always, then the most recent."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.samplers._tpe.sampler import _split_trials, default_gamma
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from tuner.search import history_window


def _history(n: int, seed: int = 0) -> list[FrozenTrial]:
    """``n`` finished trials, numbered, about a tenth pruned and a twentieth failed."""
    rng = random.Random(seed)
    trials = []
    for number in range(n):
        roll = rng.random()
        state = TrialState.FAIL if roll < 0.05 else TrialState.PRUNED if roll < 0.15 else None
        trial = create_trial(
            params={"x": rng.random()},
            distributions={"x": FloatDistribution(0, 1)},
            value=None if state is not None else rng.random(),
            state=state or TrialState.COMPLETE,
            intermediate_values={1: rng.random()},
        )
        trial.number = number
        trials.append(trial)
    return trials


def _top(trials: list[FrozenTrial], k: int, direction: StudyDirection) -> set[int]:
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    done.sort(key=lambda t: t.value if direction == StudyDirection.MINIMIZE else -t.value)  # type: ignore[operator]
    return {t.number for t in done[:k]}


def test_a_history_that_fits_is_seen_whole_in_its_order() -> None:
    trials = _history(70)
    window = history_window(trials, StudyDirection.MAXIMIZE, best=30, recent=40)
    assert window == trials and window is not trials


@pytest.mark.parametrize("direction", [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE])
def test_a_long_history_keeps_the_best_then_the_most_recent(direction: StudyDirection) -> None:
    trials = _history(2_000)
    window = history_window(trials, direction, best=100, recent=400)
    numbers = [t.number for t in window]
    assert len(window) == 500 and numbers == sorted(numbers)  # Optuna's order
    assert _top(trials, 100, direction) <= set(numbers)  # the best, wherever they are
    others = [n for n in numbers if n not in _top(trials, 100, direction)]
    assert (
        others
        == [t.number for t in trials if t.number not in _top(trials, 100, direction)][
            -len(others) :
        ]
    )  # the rest are the most recent others
    assert trials[-1].number in numbers


def test_tpe_sees_the_same_good_trials_as_with_the_whole_history() -> None:
    """TPE's model of good configurations (its 'below' set, at most 25 trials) is built from
    exactly the trials the whole history would give it."""
    study = optuna.create_study(direction="maximize")
    trials = [t for t in _history(5_000, seed=3) if t.state != TrialState.FAIL]
    window = history_window(trials, StudyDirection.MAXIMIZE, best=100, recent=400)
    below_all, _ = _split_trials(study, trials, default_gamma(len(trials)))
    below_window, _ = _split_trials(study, window, default_gamma(len(window)))
    assert [t.number for t in below_window] == [t.number for t in below_all]
    assert len(below_all) == 25
