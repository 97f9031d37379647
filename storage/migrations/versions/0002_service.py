"""Service tables: trial runs (claims, heartbeats, retries), workers; study claim counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 00:00:00+00:00

Also widens ``tuner_trial_results.stop_reason`` with ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)
RUN_STATES = ("pending", "running", "done", "retried", "cancelled")
OLD_STOP_REASONS = ("patience", "pruned", "diverged", "max_epochs", "timeout", "error")
NEW_STOP_REASONS = (*OLD_STOP_REASONS, "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _results_table(stop_reasons: tuple[str, ...]) -> sa.Table:
    """tuner_trial_results as 0001 made it: batch mode copies from this instead of reflecting,
    so offline (``--sql``) SQLite migrations work too."""
    return sa.Table(
        "tuner_trial_results",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_name", sa.String(255), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.String(16), nullable=False),
        sa.Column("initializer", sa.String(64), nullable=False),
        sa.Column("lr", sa.Double(), nullable=False),
        sa.Column("weight_decay", sa.Double(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("patience", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("epochs_run", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("finished_at", _TIMESTAMP, nullable=False),
        sa.Column("params_json", _JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_name"],
            ["tuner_studies.name"],
            name="fk_tuner_trial_results_study_name_tuner_studies",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "study_name", "trial_number", name="uq_tuner_trial_results_study_name_trial_number"
        ),
        sa.CheckConstraint(
            "state IN ('complete', 'pruned', 'fail')", name="ck_tuner_trial_results_state"
        ),
        sa.CheckConstraint(
            _in("stop_reason", stop_reasons), name="ck_tuner_trial_results_stop_reason"
        ),
        sa.Index("ix_tuner_trial_results_study_name_value", "study_name", "value"),
        sa.Index("ix_tuner_trial_results_study_name_initializer", "study_name", "initializer"),
    )


def _stop_reasons(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    with op.batch_alter_table("tuner_trial_results", copy_from=_results_table(old)) as batch:
        batch.drop_constraint(op.f("ck_tuner_trial_results_stop_reason"), type_="check")
        batch.create_check_constraint(
            op.f("ck_tuner_trial_results_stop_reason"), _in("stop_reason", new)
        )


def upgrade() -> None:
    with op.batch_alter_table("tuner_studies") as batch:
        batch.add_column(sa.Column("n_claimed", sa.Integer(), nullable=False, server_default="0"))
    _stop_reasons(OLD_STOP_REASONS, NEW_STOP_REASONS)
    op.create_table(
        "tuner_trial_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_name", sa.String(255), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_of", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("device", sa.String(64), nullable=True),
        sa.Column("params_json", _JSON, nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", _TIMESTAMP, nullable=True),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_trial_runs")),
        sa.ForeignKeyConstraint(
            ["study_name"],
            ["tuner_studies.name"],
            name=op.f("fk_tuner_trial_runs_study_name_tuner_studies"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(_in("state", RUN_STATES), name=op.f("ck_tuner_trial_runs_state")),
    )
    op.create_index(
        op.f("ix_tuner_trial_runs_state_heartbeat_at"),
        "tuner_trial_runs",
        ["state", "heartbeat_at"],
    )
    op.create_index(
        op.f("ix_tuner_trial_runs_study_name_state"), "tuner_trial_runs", ["study_name", "state"]
    )
    op.create_table(
        "tuner_workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", _TIMESTAMP, nullable=False),
        sa.Column("stopped_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_workers")),
        sa.UniqueConstraint("name", name=op.f("uq_tuner_workers_name")),
    )


def downgrade() -> None:
    op.drop_table("tuner_workers")
    op.drop_index(op.f("ix_tuner_trial_runs_study_name_state"), table_name="tuner_trial_runs")
    op.drop_index(op.f("ix_tuner_trial_runs_state_heartbeat_at"), table_name="tuner_trial_runs")
    op.drop_table("tuner_trial_runs")
    op.execute("DELETE FROM tuner_trial_results WHERE stop_reason = 'cancelled'")
    _stop_reasons(NEW_STOP_REASONS, OLD_STOP_REASONS)
    with op.batch_alter_table("tuner_studies") as batch:
        batch.drop_column("n_claimed")
