"""SQLAlchemy 2 typed models for the service's own tables (all prefixed ``tuner_``).

Optuna's tables live in the same database but belong to Optuna; nothing here touches them.
The column set of ``tuner_trial_results`` is public contract (the README lists it): rename nothing.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Prefix of every table this package owns.
TABLE_PREFIX = "tuner_"

#: Values of ``tuner_studies.direction``.
DIRECTIONS: tuple[str, ...] = ("maximize", "minimize")
#: Values of ``tuner_studies.status``; a new study is ``queued``.
STUDY_STATUSES: tuple[str, ...] = ("queued", "running", "completed", "cancelled", "failed")
#: The study statuses whose trials may still be claimed, run and retried.
ACTIVE_STATUSES: tuple[str, ...] = ("queued", "running")
#: Values of ``tuner_trial_results.state`` (terminal trial states only).
TRIAL_STATES: tuple[str, ...] = ("complete", "pruned", "fail")
#: Values of ``tuner_trial_results.stop_reason``: the six of the contract, plus ``cancelled`` for a
#: trial ended early because its study was cancelled.
STOP_REASONS: tuple[str, ...] = (
    "patience",
    "pruned",
    "diverged",
    "max_epochs",
    "timeout",
    "error",
    "cancelled",
)
#: Values of ``tuner_trial_runs.state`` (one run is one attempt at a trial):
#: pending (a retry waiting for a worker), running (claimed, heartbeating), done (ended with
#: its final outcome), retried (failed, and a newer attempt replaces it), cancelled.
RUN_STATES: tuple[str, ...] = ("pending", "running", "done", "retried", "cancelled")

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime.datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.datetime.now(datetime.UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime.datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC
    and get ``tzinfo=UTC`` back on load. Naive datetimes are refused: their zone is a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware one (UTC)")
        value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime.datetime | None, dialect: Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


class Base(DeclarativeBase):
    """Declarative base of the ``tuner_`` tables; ``Base.metadata`` is Alembic's target."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime.datetime: UTCDateTime(),
        dict[str, Any]: _JSON,
        float: sa.Double(),
    }


class StudyRecord(Base):
    """One study: its definition, objective and lifecycle status."""

    __tablename__ = "tuner_studies"
    __table_args__ = (
        sa.CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        sa.CheckConstraint(_in("status", STUDY_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    spec_json: Mapped[dict[str, Any]]
    metric: Mapped[str] = mapped_column(sa.String(64))
    direction: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16), default="queued", server_default="queued")
    n_trials: Mapped[int]
    #: Trials handed to workers so far; a claim succeeds only while n_claimed < n_trials,
    #: in one conditional UPDATE, so no race can start more than n_trials trials.
    n_claimed: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Why a ``failed`` study could not run (its definition, its task, its Optuna study).
    error: Mapped[str | None] = mapped_column(sa.Text(), default=None)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    trial_results: Mapped[list[TrialResult]] = relationship(
        back_populates="study", lazy="raise", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"StudyRecord(name={self.name!r}, status={self.status!r})"


class TrialResult(Base):
    """One finished trial as a flat, plain-SQL-friendly row (public contract)."""

    __tablename__ = "tuner_trial_results"
    __table_args__ = (
        sa.UniqueConstraint("study_name", "trial_number"),
        sa.CheckConstraint(_in("state", TRIAL_STATES), name="state"),
        sa.CheckConstraint(_in("stop_reason", STOP_REASONS), name="stop_reason"),
        # Best-first pages without a sort: ascending serves minimized studies; the
        # descending twin (below the class) serves maximized ones.
        sa.Index("ix_tuner_trial_results_study_name_value", "study_name", "value", "trial_number"),
        sa.Index("ix_tuner_trial_results_study_name_initializer", "study_name", "initializer"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("tuner_studies.name", ondelete="CASCADE")
    )
    trial_number: Mapped[int]
    state: Mapped[str] = mapped_column(sa.String(16))
    stop_reason: Mapped[str] = mapped_column(sa.String(16))
    initializer: Mapped[str] = mapped_column(sa.String(255))  # the label, groups included
    lr: Mapped[float]
    weight_decay: Mapped[float]
    batch_size: Mapped[int]
    patience: Mapped[int]
    value: Mapped[float | None]
    best_epoch: Mapped[int | None]
    epochs_run: Mapped[int]
    duration_s: Mapped[float]
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    device: Mapped[str | None] = mapped_column(sa.String(64))
    started_at: Mapped[datetime.datetime]
    finished_at: Mapped[datetime.datetime]
    params_json: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: Seeds, package versions, device, deterministic flags, the initializer per layer.
    manifest_json: Mapped[dict[str, Any] | None]
    n_replicates: Mapped[int] = mapped_column(default=1, server_default="1")
    value_std: Mapped[float | None]  # across replicates (``value`` is their mean)

    study: Mapped[StudyRecord] = relationship(back_populates="trial_results", lazy="raise")

    def __repr__(self) -> str:
        return (
            f"TrialResult(study_name={self.study_name!r}, trial_number={self.trial_number}, "
            f"state={self.state!r}, value={self.value!r})"
        )


sa.Index(
    "ix_tuner_trial_results_best_first_max",
    TrialResult.study_name,
    TrialResult.value.desc().nulls_last(),
    TrialResult.trial_number,
).ddl_if(dialect="postgresql")  # SQLite takes no NULLS LAST in an index


def _trial_key() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["study_name", "trial_number"],
        ["tuner_trial_results.study_name", "tuner_trial_results.trial_number"],
        ondelete="CASCADE",
    )


class LayerDiagnostic(Base):
    """One layer's signal at initialization, measured before the trial's first update."""

    __tablename__ = "tuner_layer_diagnostics"
    __table_args__ = (
        sa.UniqueConstraint("study_name", "trial_number", "layer_index"),
        _trial_key(),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(sa.String(255))
    trial_number: Mapped[int]
    layer_index: Mapped[int]  # depth: 0 is the first layer the input reaches
    layer_name: Mapped[str] = mapped_column(sa.String(255))
    layer_kind: Mapped[str] = mapped_column(sa.String(64))
    fan_in: Mapped[int]
    fan_out: Mapped[int]
    act_mean: Mapped[float]
    act_std: Mapped[float]
    preact_std: Mapped[float]
    dead_frac: Mapped[float | None]
    saturated_frac: Mapped[float | None]
    weight_std: Mapped[float]
    grad_std: Mapped[float]


class TrialReplicate(Base):
    """One seed of a replicated trial: its seeds and its own figures."""

    __tablename__ = "tuner_trial_replicates"
    __table_args__ = (sa.UniqueConstraint("study_name", "trial_number", "replicate"), _trial_key())

    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(sa.String(255))
    trial_number: Mapped[int]
    replicate: Mapped[int]
    init_seed: Mapped[int] = mapped_column(sa.BigInteger)
    data_seed: Mapped[int] = mapped_column(sa.BigInteger)
    value: Mapped[float | None]  # at the trial's best epoch (of the mean curve)
    best_value: Mapped[float | None]  # this seed's own best epoch
    best_epoch: Mapped[int | None]
    epochs_run: Mapped[int]


class TrialSignal(Base):
    """A trial's signal propagation at t=0: the input-output Jacobian's spectrum, and the
    mean-field figures of a fully connected tanh/sigmoid net. NULL: not measured (the
    ``*_skipped`` column says why); ``xi_c`` is +infinity at criticality."""

    __tablename__ = "tuner_trial_signal"
    __table_args__ = (sa.UniqueConstraint("study_name", "trial_number"), _trial_key())

    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(sa.String(255))
    trial_number: Mapped[int]
    jacobian_mean_sq: Mapped[float | None]  # m_JJT: mean squared singular value
    jacobian_spread: Mapped[float | None]  # sigma^2_JJT / m_JJT^2, pooled over the samples
    jacobian_samples: Mapped[int | None]
    jacobian_skipped: Mapped[str | None] = mapped_column(sa.Text)
    depth: Mapped[int | None]  # Linear layers of the fully connected net
    sigma_w2: Mapped[float | None]
    sigma_b2: Mapped[float | None]
    q_star: Mapped[float | None]
    chi_1: Mapped[float | None]
    c_star: Mapped[float | None]
    chi_c: Mapped[float | None]
    xi_c: Mapped[float | None]
    mean_field_skipped: Mapped[str | None] = mapped_column(sa.Text)
    warning: Mapped[str | None] = mapped_column(sa.Text)


class TrialRun(Base):
    """One attempt at a trial: who runs it, its heartbeat, and how it ended.

    A trial's first attempt is claimed against the study budget; a retry (after its worker
    was lost) is a new ``pending`` run with the same parameters, claimed by any worker.
    """

    __tablename__ = "tuner_trial_runs"
    __table_args__ = (
        sa.CheckConstraint(_in("state", RUN_STATES), name="state"),
        sa.Index("ix_tuner_trial_runs_state_heartbeat_at", "state", "heartbeat_at"),
        sa.Index("ix_tuner_trial_runs_study_name_state", "study_name", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_name: Mapped[str] = mapped_column(
        sa.String(255), sa.ForeignKey("tuner_studies.name", ondelete="CASCADE")
    )
    trial_number: Mapped[int | None]  # Optuna's number, once the attempt has asked for it
    attempt: Mapped[int] = mapped_column(default=0)
    retry_of: Mapped[int | None]  # trial number of the failed attempt this one repeats
    state: Mapped[str] = mapped_column(sa.String(16))
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    device: Mapped[str | None] = mapped_column(sa.String(64))
    params_json: Mapped[dict[str, Any] | None]  # a retry's parameters (Optuna's names)
    created_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime.datetime | None]
    finished_at: Mapped[datetime.datetime | None]

    def __repr__(self) -> str:
        return (
            f"TrialRun(study_name={self.study_name!r}, trial_number={self.trial_number}, "
            f"attempt={self.attempt}, state={self.state!r})"
        )


class WorkerRecord(Base):
    """A worker process: where it runs, on what device, and when it last said it is alive."""

    __tablename__ = "tuner_workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    device: Mapped[str] = mapped_column(sa.String(64))
    slots: Mapped[int]
    started_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime.datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime.datetime | None]

    def __repr__(self) -> str:
        return f"WorkerRecord(name={self.name!r}, device={self.device!r})"
