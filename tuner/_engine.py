"""The embedded engine: create or resume a study and run its trials in this process.

Every finished trial is told to Optuna (so its dashboard and CLI see it) and
written as one flat ``tuner_trial_results`` row (see ``_rows``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import optuna
import torch

import storage
from tuner._errors import SpecError, SpecIssue, TunerError
from tuner._initializers import applicability_error
from tuner._rows import (
    FINISHED,
    PARAMS_ATTR,
    RESULT_ATTR,
    record_failure,
    recover,
    result_row,
    worker_id,
)
from tuner._search import grid_space, suggest
from tuner._spec import StudySpec, parse_spec
from tuner._study_options import make_pruner, make_sampler
from tuner._tasks import Task, build_task
from tuner._train import EpochStats, StopReason, TrainConfig
from tuner._trial import describe_error, execute_trial, tell


class RunObserver:
    """Progress hooks for a caller that shows a run (the CLI). The engine never prints."""

    def study_started(self, name: str, finished: int, target: int) -> None: ...
    def trial_started(self, number: int, params: dict[str, Any]) -> None: ...
    def epoch_finished(self, number: int, stats: EpochStats) -> None: ...
    def trial_finished(self, row: storage.TrialResultData) -> None: ...


@dataclass(frozen=True)
class RunSummary:
    study_name: str
    database_url: str
    target: int  # finished trials the study should end with
    finished: int  # finished trials it has now
    ran: int  # trials this call ran
    timed_out: bool

    @property
    def complete(self) -> bool:
        return self.finished >= self.target


def resolve_device(name: str | None = None) -> torch.device:
    """``auto``/None picks CUDA when present, else CPU."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise TunerError(f"unknown device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TunerError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def check_task(spec: StudySpec, task: Task) -> None:
    """Checks that need the built model (plugin tasks): every initializer must apply."""
    model = task.build_model()
    issues = [
        SpecIssue(("search", "initializer", i), reason)
        for i, entry in enumerate(spec.search.initializer)
        if (reason := applicability_error(model, entry.name))
    ]
    if issues:
        raise SpecError(issues)


def open_study(db: storage.Database, spec: StudySpec, target: int) -> optuna.Study:
    """Create the study (Optuna's and ours), or resume it if the definition matches."""
    spec_json = spec.to_json()
    with db.session() as session:
        record = storage.get_study_record(session, spec.name)
        if record is not None:
            stored = parse_spec(record.spec_json).to_json()
            changed = sorted(
                k
                for k in spec_json.keys() | stored.keys()
                if k != "budget" and spec_json.get(k) != stored.get(k)
            )
            if changed:
                raise TunerError(
                    f"study {spec.name!r} already exists with a different definition "
                    f"(differs in: {', '.join(changed)}); give the new one another name"
                )
            storage.set_study_budget(session, spec.name, target)
    if record is None:
        optuna.create_study(
            study_name=spec.name,
            storage=db.optuna_storage(),
            direction=spec.resolved_direction,
            load_if_exists=True,
        ).set_user_attr("metric", spec.metric)
        try:
            with db.session() as session:
                storage.create_study_record(
                    session,
                    name=spec.name,
                    spec_json=spec_json,
                    metric=spec.metric,
                    direction=spec.resolved_direction,
                    n_trials=target,
                )
        except storage.StudyExistsError:
            pass  # another process created it between our read and write: same outcome
    backend = db.optuna_storage()
    asked = len(backend.get_all_trials(backend.get_study_id_from_name(spec.name), deepcopy=False))
    # The sampler seed moves on with the trials already asked, so a resumed run
    # does not replay the first run's random start-up suggestions.
    sampler = make_sampler(spec.sampler, seed=spec.seed + asked, grid=grid_space(spec.search))
    return optuna.load_study(
        study_name=spec.name, storage=backend, sampler=sampler, pruner=make_pruner(spec.pruner)
    )


class _Runner:
    """Runs trials of one study in this process, one at a time."""

    def __init__(
        self,
        db: storage.Database,
        study: optuna.Study,
        spec: StudySpec,
        task: Task,
        device: torch.device,
        observer: RunObserver,
    ) -> None:
        self.db, self.study, self.spec, self.task = db, study, spec, task
        self.device, self.observer = device, observer
        self.data = task.data.to(device)
        self.worker = worker_id()
        self.deadline = time.monotonic() + (spec.budget.timeout_s or math.inf)

    def config(self, params: Any) -> TrainConfig:
        spec = self.spec
        return TrainConfig(
            lr=params.lr,
            weight_decay=params.weight_decay,
            batch_size=params.batch_size,
            patience=params.patience,
            max_epochs=spec.budget.max_epochs,
            optimizer=self.task.optimizer,
            momentum=self.task.momentum,
            min_delta=spec.budget.min_delta,
            metric=spec.metric,
            direction=spec.resolved_direction,
        )

    def run_one(self) -> storage.TrialResultData:
        trial = self.study.ask()
        params = suggest(trial, self.spec.search)
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("device", str(self.device))
        trial.set_user_attr(PARAMS_ATTR, params.to_json())
        self.observer.trial_started(trial.number, params.to_json())

        def on_epoch(stats: EpochStats) -> StopReason | None:
            self.observer.epoch_finished(trial.number, stats)
            trial.report(stats.metric(self.spec.metric), stats.epoch)
            if trial.should_prune():
                return "pruned"
            return "timeout" if time.monotonic() > self.deadline else None

        try:
            outcome = execute_trial(
                number=trial.number,
                params=params,
                task=self.task,
                data=self.data,
                config=self.config(params),
                study_seed=self.spec.seed,
                device=self.device,
                on_epoch=on_epoch,
            )
        except BaseException as exc:  # an interrupt: record the trial as failed, then stop
            record_failure(self.db, self.study, trial.number, error=describe_error(exc))
            raise
        row = result_row(self.spec.name, outcome, self.worker)
        trial.set_user_attr(RESULT_ATTR, row.to_json())
        tell(self.study, trial, outcome)
        with self.db.session() as session:
            storage.upsert_trial_result(session, row)
        self.observer.trial_finished(row)
        return row

    def set_status(self, status: str) -> None:
        with self.db.session() as session:
            storage.set_study_status(session, self.spec.name, status)


def run_study(
    spec: StudySpec,
    *,
    database_url: str | None = None,
    n_trials: int | None = None,
    device: str | None = None,
    observer: RunObserver | None = None,
) -> RunSummary:
    """Run the study in this process until it has ``n_trials`` finished trials."""
    target = n_trials if n_trials is not None else spec.budget.n_trials
    if target < 1:
        raise SpecError([SpecIssue(("budget", "n_trials"), f"must be >= 1, got {target}")])
    dev = resolve_device(device)
    task = build_task(spec.task)  # data and model problems surface before anything is written
    check_task(spec, task)
    db = storage.Database(storage.resolve_database_url(database_url))
    try:
        db.upgrade()
        study = open_study(db, spec, target)
        recover(db, study)
        runner = _Runner(db, study, spec, task, dev, observer or RunObserver())
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        runner.observer.study_started(spec.name, finished, target)
        ran, timed_out = 0, False
        if finished < target:
            runner.set_status("running")
        while finished < target and not timed_out:
            row = runner.run_one()
            ran, finished = ran + 1, finished + 1
            timed_out = row.stop_reason == "timeout" or time.monotonic() > runner.deadline
        runner.set_status("completed" if finished >= target else "queued")
        return RunSummary(spec.name, db.url, target, finished, ran, timed_out)
    finally:
        db.dispose()
