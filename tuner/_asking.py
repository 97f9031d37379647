"""Asking Optuna for a trial: in one transaction where the sampler allows it.

``study.ask()`` plus define-by-run suggestions cost one write per parameter and a read
of the study per call. For independent samplers (random, and TPE without its relative
options) the configuration can be sampled in memory against a snapshot of the study
and the trial created with its parameters and metadata in a single transaction. Other
samplers (grid, CMA-ES, GP, QMC, multivariate TPE) keep state in the trial or sample
jointly, so they go through Optuna's own ``ask``.
"""

from __future__ import annotations

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

from tuner._reporting import Snapshot
from tuner._rows import PARAMS_ATTR
from tuner._search import TrialParams, suggest
from tuner._spec import StudySpec

_RELATIVE_OPTIONS = ("multivariate", "group", "constant_liar")


@dataclass(frozen=True)
class AskedTrial:
    """What a worker needs of an Optuna trial it runs."""

    number: int
    trial_id: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]


def asks_in_memory(spec: StudySpec) -> bool:
    options = spec.sampler.options
    return spec.sampler.name in ("random", "tpe") and not any(
        options.get(k) for k in _RELATIVE_OPTIONS
    )


class _InMemoryTrial:
    """Collects a define-by-run configuration from the sampler, writing nothing."""

    def __init__(self, snapshot: Snapshot, sampler: optuna.samplers.BaseSampler) -> None:
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
    backend: Any,
    study_id: int,
    params: dict[str, Any],
    distributions: dict[str, BaseDistribution],
    user_attrs: dict[str, Any],
) -> AskedTrial:
    """A RUNNING trial with these parameters and attributes, in one transaction."""
    template = FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=datetime.now(),
        datetime_complete=None,
        params=params,
        distributions=distributions,
        user_attrs=user_attrs,
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    trial_id = backend.create_new_trial(study_id, template_trial=template)
    number = backend.get_trial_number_from_id(trial_id)
    return AskedTrial(number, trial_id, params, distributions)


def retry_trial(
    study: optuna.Study, backend: Any, study_id: int, payload: dict[str, Any]
) -> optuna.Trial:
    """A new RUNNING trial with exactly a retry payload's parameters, as an Optuna ``Trial``:
    define-by-run suggestions on it return those values."""
    distributions = {k: json_to_distribution(v) for k, v in payload["distributions"].items()}
    asked = create_trial(backend, study_id, payload["params"], distributions, {})
    return optuna.Trial(study, asked.trial_id)


def ask_in_memory(
    backend: Any,
    study_id: int,
    study: optuna.Study,
    snapshot: Snapshot,
    spec: StudySpec,
    meta: dict[str, Any],
) -> tuple[AskedTrial, TrialParams]:
    """Sample the configuration against the snapshot, then create the trial at once."""
    trial = _InMemoryTrial(snapshot, study.sampler)
    params = suggest(trial, spec.search)  # type: ignore[arg-type]
    attrs = {PARAMS_ATTR: {**meta, "params": params.to_json()}}
    return create_trial(backend, study_id, trial.params, trial.distributions, attrs), params
