"""Asking Optuna for a trial (in one transaction where the sampler allows it), and telling
it the trial's end inside the transaction that records the trial.

``study.ask()`` plus define-by-run suggestions cost one write per parameter and a read
of the study per call. For independent samplers (random, and TPE without its relative
options) the configuration can be sampled in memory against a snapshot of the study
and the trial created with its parameters and metadata, and the run row pointed at it,
in a single transaction (:func:`storage.create_optuna_trial`). Other
samplers (grid, CMA-ES, GP, QMC, multivariate TPE) keep state in the trial or sample
jointly, so they go through Optuna's own ``ask``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    json_to_distribution,
)
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

import storage
from tuner.search import TrialParams, suggest
from tuner.spec import StudySpec
from tuner.training import TrialOutcome
from tuner.worker._reporting import AskedTrial, EpochReporter, SamplerView, Snapshot
from tuner.worker._rows import PARAMS_ATTR

_RELATIVE_OPTIONS = ("multivariate", "group", "constant_liar")


def asks_in_memory(spec: StudySpec) -> bool:
    options = spec.sampler.options
    return spec.sampler.name in ("random", "tpe") and not any(
        options.get(k) for k in _RELATIVE_OPTIONS
    )


class _InMemoryTrial:
    """Collects a define-by-run configuration from the sampler, writing nothing."""

    def __init__(
        self, snapshot: Snapshot | SamplerView, sampler: optuna.samplers.BaseSampler
    ) -> None:
        self.snapshot, self.sampler = snapshot, sampler
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}
        self._frozen = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params=self.params,
            distributions=self.distributions,
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )

    def _suggest(self, name: str, distribution: BaseDistribution) -> Any:
        if distribution.single():
            value = optuna.distributions._get_single_value(distribution)
        else:
            study: Any = self.snapshot
            value = self.sampler.sample_independent(study, self._frozen, name, distribution)
        self.params[name], self.distributions[name] = value, distribution
        return value

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._suggest(name, FloatDistribution(low, high, step=step, log=log)))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._suggest(name, IntDistribution(low, high, step=step, log=log)))

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType:
        value: CategoricalChoiceType = self._suggest(name, CategoricalDistribution(choices))
        return value


def create_trial(
    db: storage.Database,
    study_id: int,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    user_attrs: dict[str, Any],
    run_id: int,
) -> AskedTrial:
    """A RUNNING trial with these parameters and attributes, and the run ``run_id`` pointed at
    it, in one transaction."""
    with db.session() as session:
        trial_id, number = storage.create_optuna_trial(
            session, study_id, params, distributions, user_attrs
        )
        storage.set_run_trial(session, run_id, number)
    return AskedTrial(number, trial_id, params, distributions)


def retry_trial(
    study: optuna.Study, db: storage.Database, study_id: int, payload: dict[str, Any], run_id: int
) -> optuna.Trial:
    """A new RUNNING trial with exactly a retry payload's parameters, as an Optuna ``Trial``:
    define-by-run suggestions on it return those values."""
    distributions = {k: json_to_distribution(v) for k, v in payload["distributions"].items()}
    asked = create_trial(db, study_id, payload["params"], distributions, {}, run_id)
    return optuna.Trial(study, asked.trial_id)


def ask_in_memory(
    db: storage.Database,
    study_id: int,
    study: optuna.Study,
    snapshot: Snapshot,
    spec: StudySpec,
    meta: dict[str, Any],
    run_id: int,
) -> tuple[AskedTrial, TrialParams]:
    """Sample the configuration against the snapshot (the sampler's window of it), then
    create the trial at once."""
    trial = _InMemoryTrial(snapshot.for_sampler(spec.sampler.history), study.sampler)
    params = suggest(trial, spec.search)  # type: ignore[arg-type]
    attrs = {PARAMS_ATTR: {**meta, "params": params.to_json()}}
    asked = create_trial(db, study_id, trial.params, trial.distributions, attrs, run_id)
    return asked, params


_STATELESS_SAMPLERS = (optuna.samplers.RandomSampler, optuna.samplers.TPESampler)


@dataclass
class Ending:
    """A trial at its end as ``study.tell`` hands it to the sampler: RUNNING, with its
    values; the state and value it is recorded with, and the attributes it gets."""

    trial: FrozenTrial
    state: TrialState
    value: float | None
    attrs: dict[str, Any]


def trial_ending(
    study: optuna.Study, trial: AskedTrial, outcome: TrialOutcome, reporter: EpochReporter
) -> Ending:
    """What ``study.tell`` would record for ``outcome``, the sampler told (``after_trial``).

    Complete with its value (a missing or NaN value fails it, as tell does), pruned with its
    last intermediate value, else failed. Called before the transaction that records the
    trial opens: a sampler's ``after_trial`` may read the study (grid), and a slot never
    holds two connections at once.
    """
    reports = dict(reporter.intermediate_values)
    state, value = TrialState.FAIL, None
    if outcome.state == "complete" and outcome.value is not None:
        if not math.isnan(outcome.value):
            state, value = TrialState.COMPLETE, float(outcome.value)
    elif outcome.state == "pruned":
        state = TrialState.PRUNED
        if reports and not math.isnan(reports[max(reports)]):
            value = float(reports[max(reports)])
    running = FrozenTrial(
        number=trial.number,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=outcome.started_at.astimezone().replace(tzinfo=None),
        datetime_complete=None,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs={},
        # Samplers that keep state in a trial (grid_id, CMA-ES generations) read it back
        # from finished trials; random and TPE keep none, so they skip the read.
        system_attrs={}
        if isinstance(study.sampler, _STATELESS_SAMPLERS)
        else study._storage.get_trial_system_attrs(trial.trial_id),
        intermediate_values=reports,
        trial_id=trial.trial_id,
    )
    # GridSampler calls study.stop() once its grid is walked, which raises outside
    # optimize(); here the study's budget, not the sampler, decides when the study ends.
    local = study._thread_local
    in_loop, local.in_optimize_loop = local.in_optimize_loop, True
    try:
        study.sampler.after_trial(study, running, state, None if value is None else [value])
    finally:
        local.in_optimize_loop = in_loop
    attrs = {"initializer": outcome.params.initializer, "stop_reason": outcome.stop_reason}
    return Ending(running, state, value, attrs)


def tell_in_session(
    session: Session, ending: Ending, reporter: EpochReporter
) -> FrozenTrial | None:
    """End the trial as ``study.tell`` would, in the caller's transaction, with the
    intermediate values not yet stored. The finished trial (for the snapshot), or None when
    it was no longer running (a reaper took it over); then nothing was written.
    """
    pending = reporter.take_pending()
    trial = ending.trial
    written = storage.finish_optuna_trial(
        session, trial._trial_id, ending.state, ending.value, pending, ending.attrs
    )
    if not written:
        return None
    finished = copy.copy(trial)
    finished.state, finished.value = ending.state, ending.value
    finished.datetime_complete = datetime.now()
    return finished
