"""Epoch reports without a database round trip per epoch.

Optuna's ``trial.report`` writes every intermediate value and ``should_prune`` reads the
whole study back, each epoch: tens of milliseconds a trial on PostgreSQL. Here values are
kept in memory and pruning is decided against a snapshot of the study's trials (refreshed
every ``refresh_s``); the values are written in one go whenever ``refresh_s`` has passed,
so dashboards see progress, and at the end in the transaction that finishes the trial
(or by ``flush()`` when a trial is handed back). Pruners see
exactly what they would see otherwise, minus other workers' trials completed since the
last refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

import storage
from tuner.search import history_window
from tuner.spec import SamplerHistory
from tuner.worker._outage import is_outage

log = logging.getLogger("tuner.worker")


@dataclass(frozen=True)
class AskedTrial:
    """What a worker needs of an Optuna trial it runs."""

    number: int
    trial_id: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]


class _StudyReads:
    """What Optuna's samplers and pruners read of a Study, served from memory: the trials
    (``get_trials``, defined by each kind) and everything else from ``_source``."""

    _source: Any

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        raise NotImplementedError

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Sequence[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:  # what samplers read (TPE)
        return self.get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:  # direction, study_name, ... from the study
        return getattr(self._source, name)


class Snapshot(_StudyReads):
    """The study as a pruner sees it: its trials as of the last refresh."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = self._source = study
        self._trials: list[FrozenTrial] = []
        self._at = -float("inf")
        self.version = 0  # changes whenever the trials do
        self._views: dict[SamplerHistory, SamplerView] = {}

    def refresh(self, older_than: float = 0.0) -> None:
        """Re-read the trials if the copy is older than ``older_than`` seconds."""
        if time.monotonic() - self._at >= older_than:
            self._trials = self._study.get_trials(deepcopy=False)
            self._at = time.monotonic()
            self.version += 1

    def record(self, trial: FrozenTrial) -> None:
        """Put a trial we just finished in the copy, as the next refresh will read it: the
        pruner and sampler see it at once, without a read of the study."""
        self._trials = [t for t in self._trials if t.number != trial.number] + [trial]
        self.version += 1

    def for_sampler(self, history: SamplerHistory | Literal["all"]) -> Snapshot | SamplerView:
        """What a sampler reads: the trials in ``history``'s window, or all of them (one
        view per window, kept: a population's asks share its work)."""
        if history == "all":
            return self
        if history not in self._views:
            self._views[history] = SamplerView(self, history)
        return self._views[history]

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]


class SamplerView(_StudyReads):
    """A snapshot as a sampler sees it: the trials it may learn from (complete, pruned,
    running) in ``history``'s window (:func:`tuner.search.history_window`), worked out once
    per version of the snapshot; failed and waiting trials, which no sampler learns from,
    are left out of the count."""

    _LEARNED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)

    def __init__(self, snapshot: Snapshot, history: SamplerHistory) -> None:
        self._snapshot = self._source = snapshot
        self._history = history
        self._version = -1
        self._by_states: dict[tuple[TrialState, ...] | None, list[FrozenTrial]] = {}

    def get_trials(
        self, deepcopy: bool = True, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if self._version != self._snapshot.version:
            window = history_window(
                self._snapshot.get_trials(states=self._LEARNED),
                self._snapshot.direction,
                best=self._history.best,
                recent=self._history.recent,
            )
            self._version, self._by_states = self._snapshot.version, {None: window}
        key = None if states is None else tuple(states)
        if key not in self._by_states:
            wanted = set(key or ())
            self._by_states[key] = [t for t in self._by_states[None] if t.state in wanted]
        return self._by_states[key]


class EpochReporter:
    def __init__(
        self,
        db: storage.Database,
        study: optuna.Study,
        trial: AskedTrial,
        snapshot: Snapshot,
        refresh_s: float,
    ) -> None:
        self.db, self.study, self.trial, self.refresh_s = db, study, trial, refresh_s
        self._snapshot = snapshot
        snapshot.refresh(older_than=refresh_s)
        self._pending: dict[int, float] = {}
        self._flushed_at = time.monotonic()
        # The trial as the pruner sees it: its own values, live from memory.
        self._frozen = FrozenTrial(
            number=trial.number,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=trial.trial_id,
        )

    def report(self, step: int, value: float) -> bool:
        """Record one epoch's metric; True when the study's pruner says stop."""
        self._frozen.intermediate_values[step] = value
        self._pending[step] = value
        if time.monotonic() - self._flushed_at > self.refresh_s:
            self._refresh()
        return bool(self.study.pruner.prune(self._snapshot, self._frozen))  # type: ignore[arg-type]

    def _refresh(self) -> None:
        """Store the pending values and re-read the study; while the database is away, train
        on (values kept for the next write, pruning against the last snapshot)."""
        pending = self.take_pending()
        try:
            if pending:
                with self.db.session() as session:
                    storage.write_intermediate_values(session, self.trial.trial_id, pending)
            self._snapshot.refresh()
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._pending = {**pending, **self._pending}
            log.warning("trial %d: epoch reports wait for the database: %s", self.trial.number, exc)

    def flush(self) -> None:
        """Write the values not yet stored (one transaction)."""
        pending = self.take_pending()
        if pending:
            with self.db.session() as session:
                storage.write_intermediate_values(session, self.trial.trial_id, pending)

    def take_pending(self) -> dict[int, float]:
        """The values not yet stored, for the caller to write (e.g. with the trial's end)."""
        pending, self._pending = self._pending, {}
        self._flushed_at = time.monotonic()
        return pending

    @property
    def intermediate_values(self) -> dict[int, float]:
        """Every value reported so far, by step."""
        return self._frozen.intermediate_values
