"""Trials written into Optuna's tables directly read back exactly as Optuna's own writes."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from storage import Database, create_optuna_trial, finish_optuna_trial, write_intermediate_values

PARAMS: dict[str, Any] = {"initializer": "lsuv", "lr": 0.0123, "patience": 4}
DISTRIBUTIONS = {
    "initializer": CategoricalDistribution(["xavier_uniform", "lsuv"]),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "patience": IntDistribution(2, 10),
}
ATTRS: dict[str, Any] = {"tuner": {"worker": "w", "params": {"lr": 0.0123}}, "n": 3}
REPORTS = {1: 0.5, 2: 0.75, 3: float("inf")}


def _by_optuna(study: optuna.Study, state: TrialState, value: float | None) -> None:
    trial = study.ask()
    trial.suggest_categorical("initializer", ["xavier_uniform", "lsuv"])
    trial.suggest_float("lr", 1e-4, 1.0, log=True)
    trial.suggest_int("patience", 2, 10)
    for key, attr in ATTRS.items():
        trial.set_user_attr(key, attr)
    for step, report in REPORTS.items():
        trial.report(report, step)
    study.tell(trial, value, state=None if state == TrialState.COMPLETE else state)


def _by_us(database: Database, study_id: int, state: TrialState, value: float | None) -> int:
    with database.session() as session:
        trial_id, number = create_optuna_trial(session, study_id, PARAMS, DISTRIBUTIONS, ATTRS)
    with database.session() as session:  # one value early (a flush), the rest with the end
        write_intermediate_values(session, trial_id, {1: REPORTS[1]})
    with database.session() as session:
        rest = {step: v for step, v in REPORTS.items() if step != 1}
        assert finish_optuna_trial(session, trial_id, state, value, rest)
    with database.session() as session:  # a finished trial is not finished twice
        assert not finish_optuna_trial(session, trial_id, TrialState.FAIL, None, {})
    return number


def _seen(trial: FrozenTrial) -> tuple[Any, ...]:
    return (
        trial.state,
        trial.value,
        trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.intermediate_values,
        trial.system_attrs,
    )


@pytest.mark.parametrize(
    ("state", "value"),
    [
        (TrialState.COMPLETE, 0.875),
        (TrialState.COMPLETE, -math.inf),
        (TrialState.PRUNED, None),
        (TrialState.FAIL, None),
    ],
)
def test_a_trial_we_write_reads_as_one_optuna_wrote(
    database: Database, state: TrialState, value: float | None
) -> None:
    backend = database.optuna_storage()
    fixed = optuna.samplers.PartialFixedSampler(PARAMS, optuna.samplers.RandomSampler())
    study = optuna.create_study(
        storage=backend, study_name="s", direction="maximize", sampler=fixed
    )
    study_id = backend.get_study_id_from_name("s")
    _by_optuna(study, state, value)
    # Optuna's tell records a pruned trial's last report as its value; our caller passes it.
    ours_value = REPORTS[3] if state == TrialState.PRUNED else value
    assert _by_us(database, study_id, state, ours_value) == 1
    _by_optuna(study, state, value)  # numbers go on from ours

    fresh = optuna.load_study(study_name="s", storage=database.url)
    theirs, ours, after = fresh.get_trials()
    assert [t.number for t in (theirs, ours, after)] == [0, 1, 2]
    assert _seen(ours) == _seen(theirs)
    assert ours.datetime_start is not None and ours.datetime_complete is not None
    assert theirs.datetime_start is not None
    assert abs((ours.datetime_start - theirs.datetime_start).total_seconds()) < 60
    if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
        assert fresh.best_trial.number == 0  # ties: the first
