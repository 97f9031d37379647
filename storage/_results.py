"""Queries on ``tuner_trial_results``: one flat row per finished trial."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage._details import (
    LayerDiagnosticsData,
    ReplicateData,
    as_layer,
    as_replicate,
    write_trial_details,
)
from storage._errors import translate_errors
from storage._models import TrialResult
from storage._runs import lock_study
from storage._signal import TrialSignalData, as_signal, write_trial_signal
from storage._studies import study_direction

#: Columns ``list_trial_results(order_by=...)`` accepts.
ORDERABLE_COLUMNS: tuple[str, ...] = (
    "value",
    "trial_number",
    "started_at",
    "finished_at",
    "duration_s",
    "epochs_run",
    "best_epoch",
    "lr",
    "weight_decay",
    "batch_size",
    "patience",
    "initializer",
)
_KEY_COLUMNS = ("study_name", "trial_number")
#: Fields stored in child tables, not columns.
_CHILDREN = ("diagnostics", "replicates", "signal")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialResultData:
    """Everything known about one finished trial; :func:`upsert_trial_result` writes it.

    ``state`` is complete, pruned or fail; ``stop_reason`` one of patience, pruned,
    diverged, max_epochs, timeout, error (both CHECK-enforced). ``value`` is the objective
    (None when there is none; a non-finite value, e.g. from a diverged run, is stored as
    None so every backend reads the same). Timestamps must be timezone-aware.
    """

    study_name: str
    trial_number: int
    state: str
    stop_reason: str
    initializer: str
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    epochs_run: int
    duration_s: float
    started_at: datetime.datetime
    finished_at: datetime.datetime
    value: float | None = None
    best_epoch: int | None = None
    worker: str | None = None
    device: str | None = None
    params_json: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    manifest_json: Mapping[str, Any] | None = None
    n_replicates: int = 1
    value_std: float | None = None
    diagnostics: Sequence[LayerDiagnosticsData] = ()
    replicates: Sequence[ReplicateData] = ()
    signal: TrialSignalData | None = None  # t=0 signal propagation (``tuner_trial_signal``)

    def __post_init__(self) -> None:
        for name in ("started_at", "finished_at"):
            moment: datetime.datetime = getattr(self, name)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
        for name in ("value", "value_std"):
            number = getattr(self, name)
            if number is not None and not math.isfinite(number):
                object.__setattr__(self, name, None)
        object.__setattr__(self, "diagnostics", tuple(map(as_layer, self.diagnostics)))
        object.__setattr__(self, "replicates", tuple(map(as_replicate, self.replicates)))
        object.__setattr__(self, "signal", as_signal(self.signal))

    def to_row(self) -> dict[str, Any]:
        """The column values of this trial's ``tuner_trial_results`` row."""
        row = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if field.name not in _CHILDREN
        }
        row["params_json"] = dict(self.params_json)
        if self.manifest_json is not None:
            row["manifest_json"] = dict(self.manifest_json)
        return row

    def to_json(self) -> dict[str, Any]:
        """A JSON-able copy (timestamps as ISO 8601) that :meth:`from_json` reads back."""
        row = self.to_row()
        row["started_at"] = self.started_at.isoformat()
        row["finished_at"] = self.finished_at.isoformat()
        row["diagnostics"] = [d.to_json() for d in self.diagnostics]
        row["replicates"] = [r.to_json() for r in self.replicates]
        row["signal"] = None if self.signal is None else self.signal.to_json()
        return row

    @classmethod
    def from_row(cls, row: TrialResult) -> TrialResultData:
        """The data of a stored row (its child rows are read separately)."""
        return cls(
            **{
                f.name: getattr(row, f.name)
                for f in dataclasses.fields(cls)
                if f.name not in _CHILDREN
            }
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialResultData:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        for name in ("started_at", "finished_at"):
            values[name] = datetime.datetime.fromisoformat(values[name])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class InitializerSummary:
    """Aggregates of one initializer's trials in a study (value stats over complete trials)."""

    initializer: str
    n_trials: int
    n_complete: int
    best_value: float | None
    mean_value: float | None


@translate_errors
def upsert_trial_result(session: Session, data: TrialResultData, *, lock: bool = True) -> None:
    """Write a trial's row (and the child rows it carries); writing it again replaces them.

    First takes the study row's lock (:func:`storage.lock_study`): writers of one study's
    results take turns, and the study row's new version tells readers that cache per study
    (:class:`storage.TrialPages`) that its results changed. ``lock=False``: the caller takes
    it itself, later in the same transaction (it must), to hold it for less of the
    transaction.
    """
    if lock:
        lock_study(session, data.study_name)
    _upsert_row(session, data)
    if data.diagnostics or data.replicates:
        write_trial_details(
            session, data.study_name, data.trial_number, data.diagnostics, data.replicates
        )
    if data.signal is not None:
        write_trial_signal(session, data.study_name, data.trial_number, data.signal)


def _upsert_row(session: Session, data: TrialResultData) -> None:
    row = data.to_row()
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        session.execute(_upsert(dialect, tuple(row)), row)
        return
    # Other backends: read-modify-write (the unique constraint still guards duplicates).
    existing = session.scalar(
        sa.select(TrialResult).where(
            TrialResult.study_name == data.study_name,
            TrialResult.trial_number == data.trial_number,
        )
    )
    if existing is None:
        session.add(TrialResult(**row))
    else:
        for name, value in row.items():
            setattr(existing, name, value)
    session.flush()


@functools.cache
def _upsert(dialect: str, columns: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (study_name, trial_number) DO UPDATE, built once per column set."""
    table = cast(sa.Table, TrialResult.__table__)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    replace = {name: insert.excluded[name] for name in columns if name not in _KEY_COLUMNS}
    return insert.on_conflict_do_update(index_elements=list(_KEY_COLUMNS), set_=replace)


@translate_errors
def get_trial_result(session: Session, study_name: str, trial_number: int) -> TrialResult | None:
    """One trial's row, or None."""
    return session.scalar(
        sa.select(TrialResult).where(
            TrialResult.study_name == study_name, TrialResult.trial_number == trial_number
        )
    )


def filtered(
    stmt: sa.Select[Any], study_name: str, state: str | None, initializer: str | None
) -> sa.Select[Any]:
    stmt = stmt.where(TrialResult.study_name == study_name)
    if state is not None:
        stmt = stmt.where(TrialResult.state == state)
    if initializer is not None:
        stmt = stmt.where(TrialResult.initializer == initializer)
    return stmt


def ordered(
    session: Session,
    stmt: sa.Select[Any],
    study_name: str,
    state: str | None,
    initializer: str | None,
    order_by: str,
    descending: bool | None,
    limit: int | None,
    offset: int,
) -> sa.Select[Any]:
    """``stmt`` filtered, ordered (missing values last, ties by trial number) and paged.

    ``descending=None`` is best first for ``value`` (per the study's direction), else
    ascending. :class:`~storage.StudyNotFoundError` if the study does not exist.
    """
    if order_by not in ORDERABLE_COLUMNS:
        raise ValueError(
            f"order_by must be one of {', '.join(ORDERABLE_COLUMNS)}; got {order_by!r}"
        )
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    maximize = study_direction(session, study_name) == "maximize"
    if descending is None:
        descending = order_by == "value" and maximize
    column = TrialResult.__table__.c[order_by]
    key = (column.desc() if descending else column.asc()).nulls_last()
    stmt = filtered(stmt, study_name, state, initializer)
    return stmt.order_by(key, TrialResult.trial_number.asc()).limit(limit).offset(offset)


@translate_errors
def list_trial_results(
    session: Session,
    study_name: str,
    *,
    state: str | None = None,
    initializer: str | None = None,
    order_by: str = "value",
    descending: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[TrialResult]:
    """A study's trial rows, filtered and ordered; rows without the column's value go last.

    ``descending=None`` means best first for ``order_by="value"`` (per the study's
    direction) and ascending for any other column; ties break on ``trial_number``.
    :class:`~storage.StudyNotFoundError` if the study does not exist.
    """
    stmt = ordered(
        session,
        sa.select(TrialResult),
        study_name,
        state,
        initializer,
        order_by,
        descending,
        limit,
        offset,
    )
    return list(session.scalars(stmt))


@translate_errors
def count_trial_results(
    session: Session,
    study_name: str,
    *,
    state: str | None = None,
    initializer: str | None = None,
) -> int:
    """How many trial rows match; :class:`~storage.StudyNotFoundError` for an unknown study."""
    study_direction(session, study_name)
    stmt = filtered(sa.select(sa.func.count()), study_name, state, initializer)
    return int(session.scalar(stmt) or 0)


@translate_errors
def trial_counts(session: Session) -> dict[tuple[str, str], int]:
    """(study, state) -> trials, over every study: result states and running/pending runs."""
    from storage._models import TrialRun

    counts: dict[tuple[str, str], int] = {}
    results = sa.select(TrialResult.study_name, TrialResult.state, sa.func.count()).group_by(
        TrialResult.study_name, TrialResult.state
    )
    runs = (
        sa.select(TrialRun.study_name, TrialRun.state, sa.func.count())
        .where(TrialRun.state.in_(("running", "pending")))
        .group_by(TrialRun.study_name, TrialRun.state)
    )
    for stmt in (results, runs):
        for study, state, n in session.execute(stmt).all():
            counts[(study, state)] = int(n)
    return counts


@translate_errors
def duration_histogram(session: Session, bounds: Sequence[float]) -> tuple[list[int], float, int]:
    """Cumulative counts of trial durations <= each bound, their sum, and the total count."""
    duration = TrialResult.duration_s
    columns = [sa.func.count(sa.case((duration <= b, 1))) for b in bounds]
    row = session.execute(
        sa.select(*columns, sa.func.coalesce(sa.func.sum(duration), 0.0), sa.func.count())
    ).one()
    return [int(n) for n in row[: len(bounds)]], float(row[-2]), int(row[-1])


@translate_errors
def summarize_by_initializer(session: Session, study_name: str) -> list[InitializerSummary]:
    """Per-initializer counts and value stats (over complete trials), best initializer first.

    "Best" follows the study's direction. One GROUP BY query; no rows are loaded.
    """
    maximize = study_direction(session, study_name) == "maximize"
    complete = TrialResult.state == "complete"
    complete_value = sa.case((complete, TrialResult.value), else_=sa.null())
    best = (sa.func.max if maximize else sa.func.min)(complete_value).label("best_value")
    stmt = (
        sa.select(
            TrialResult.initializer,
            sa.func.count(TrialResult.id).label("n_trials"),
            sa.func.count(sa.case((complete, TrialResult.id), else_=sa.null())).label("n_complete"),
            best,
            sa.func.avg(complete_value).label("mean_value"),
        )
        .where(TrialResult.study_name == study_name)
        .group_by(TrialResult.initializer)
        .order_by((best.desc() if maximize else best.asc()).nulls_last(), TrialResult.initializer)
    )
    return [
        InitializerSummary(
            initializer=row.initializer,
            n_trials=int(row.n_trials),
            n_complete=int(row.n_complete),
            best_value=None if row.best_value is None else float(row.best_value),
            mean_value=None if row.mean_value is None else float(row.mean_value),
        )
        for row in session.execute(stmt)
    ]
