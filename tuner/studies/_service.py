"""Study lifecycle on a database: submit, ensure (create or resume), cancel.

Creating a study writes two things, Optuna's study and the ``tuner_studies`` row; if the
second fails the first is removed, so a failed submission leaves nothing behind.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import optuna

import storage
from tuner.errors import SpecError, SpecIssue, StudyStateError, TunerError
from tuner.inits import applicability_error
from tuner.spec import (
    KNOBS,
    MODEL_KNOBS,
    IntRange,
    PluginTask,
    StudySpec,
    dim_values,
    parse_spec,
)
from tuner.tasks import Task, build_task


def check_task(spec: StudySpec, task: Task) -> None:
    """Checks that need the built task (plugins): every initializer must apply to the model
    (when the task has a model builder), and a task with its own training function trains
    one seed pair per trial."""
    if task.train is not None and spec.n_replicates > 1:
        message = "a task with its own training function trains one seed pair per trial"
        raise SpecError([SpecIssue(("replicates",), message)])
    if isinstance(spec.task, PluginTask) and task.train is None:
        unused = [n for n in spec.search.extras if n not in KNOBS or n in MODEL_KNOBS]
        if unused:
            why = (
                "a plugin's build_model() is not rebuilt per trial, so it cannot take a "
                "searched {}; give the plugin train(ctx) and read ctx.params"
            )
            raise SpecError([SpecIssue(("search", n), why.format(n)) for n in unused])
    if task.data is not None:
        batch = spec.search.batch_size
        largest = batch.high if isinstance(batch, IntRange) else max(dim_values(batch))
        if largest > len(task.data.x_train):
            rows = len(task.data.x_train)
            message = f"a batch of {largest} is larger than the {rows} training rows"
            raise SpecError([SpecIssue(("search", "batch_size"), message)])
    if task.build_model is None:
        return  # only its training function builds models: checked as its trials run
    model = task.build_model()
    issues = [
        SpecIssue(("search", "initializer", i), reason)
        for i, entry in enumerate(spec.search.initializer)
        if (reason := applicability_error(model, entry.name))
    ]
    if issues:
        raise SpecError(issues)


def _create(db: storage.Database, spec: StudySpec, n_trials: int) -> None:
    backend = db.optuna_storage()
    try:
        study = optuna.create_study(
            study_name=spec.name, storage=backend, direction=spec.resolved_direction
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise storage.StudyExistsError(f"study {spec.name!r} already exists") from None
    study.set_user_attr("metric", spec.metric)
    with warnings.catch_warnings():  # experimental in Optuna since 3.2, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([spec.metric])  # what the dashboard and `optuna` label the value
    try:
        with db.session() as session:
            storage.create_study_record(
                session,
                name=spec.name,
                spec_json=spec.to_json(),
                metric=spec.metric,
                direction=spec.resolved_direction,
                n_trials=n_trials,
            )
    except BaseException:
        optuna.delete_study(study_name=spec.name, storage=backend)
        raise


def submit_study(db: storage.Database, spec: StudySpec, *, task: Task | None = None) -> None:
    """Create a new study for workers to run; StudyExistsError if the name is taken.

    The task is built first (data loads, plugin models build, initializers fit), so a
    definition that cannot run is refused before anything is written.
    """
    check_task(spec, task or build_task(spec.task))
    with db.session() as session:
        if storage.get_study_record(session, spec.name) is not None:
            raise storage.StudyExistsError(f"study {spec.name!r} already exists")
    _create(db, spec, spec.budget.n_trials)


def changes(old: Any, new: Any, path: str = "") -> list[str]:
    """Every field where two definitions differ, as ``path: old -> new`` (leaves only)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(old.keys() | new.keys()):
            found += changes(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def ensure_study(
    db: storage.Database, spec: StudySpec, n_trials: int, *, accept_changes: bool = False
) -> None:
    """Create the study, or resume it. A definition that differs from the stored one (its
    trial budget aside, which a resume may raise) is refused naming each changed field,
    unless ``accept_changes``: then the new one is stored for the trials to come, and the
    change is recorded on the Optuna study (``tuner_changes``); trials already run keep
    what they ran under in their manifests."""
    spec_json = spec.to_json()
    changed: list[str] = []
    with db.session() as session:
        record = storage.get_study_record(session, spec.name)
        if record is not None:
            stored = parse_spec(record.spec_json).to_json()
            changed = [
                c for c in changes(stored, spec_json) if not c.startswith("budget.n_trials:")
            ]
            if changed and not accept_changes:
                raise TunerError(
                    f"study {spec.name!r} exists with another definition; changed: "
                    f"{'; '.join(changed)}. Give the new one another name, or resume with "
                    "--accept-changes to run the remaining trials under it"
                )
            if changed:
                storage.set_study_spec(session, spec.name, spec_json)
            storage.set_study_budget(session, spec.name, n_trials)
    if record is not None:
        if changed:
            _record_change(db, spec.name, changed)
        return
    try:
        _create(db, spec, n_trials)
    except storage.StudyExistsError:
        # created meanwhile by another process: resume it
        ensure_study(db, spec, n_trials, accept_changes=accept_changes)


def _record_change(db: storage.Database, name: str, changed: list[str]) -> None:
    study = optuna.load_study(study_name=name, storage=db.optuna_storage())
    history = list(study.user_attrs.get("tuner_changes", []))
    history.append({"at": datetime.now(UTC).isoformat(), "changed": changed})
    study.set_user_attr("tuner_changes", history)


def cancel_study(db: storage.Database, name: str) -> None:
    """Stop a study: no new trials start, running ones end at their next epoch."""
    with db.session() as session:
        record = storage.get_study_record(session, name)
        if record is None:
            raise storage.StudyNotFoundError(f"study {name!r} does not exist")
        if record.status in ("completed", "failed"):
            raise StudyStateError(f"study {name!r} is already {record.status}")
        storage.set_study_status(session, name, "cancelled")
        storage.cancel_pending_runs(session, name)
