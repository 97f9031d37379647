"""Initial schema: tuner_studies and tuner_trial_results.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00

Hand-written and explicit (no imports from the models), so it stays valid as models evolve.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)

DIRECTIONS = ("maximize", "minimize")
STUDY_STATUSES = ("queued", "running", "completed", "cancelled", "failed")
TRIAL_STATES = ("complete", "pruned", "fail")
STOP_REASONS = ("patience", "pruned", "diverged", "max_epochs", "timeout", "error")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "tuner_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("spec_json", _JSON, nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("n_trials", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_tuner_studies_name")),
        sa.CheckConstraint(_in("direction", DIRECTIONS), name=op.f("ck_tuner_studies_direction")),
        sa.CheckConstraint(_in("status", STUDY_STATUSES), name=op.f("ck_tuner_studies_status")),
    )
    op.create_table(
        "tuner_trial_results",
        sa.Column("id", sa.Integer(), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_trial_results")),
        sa.ForeignKeyConstraint(
            ["study_name"],
            ["tuner_studies.name"],
            name=op.f("fk_tuner_trial_results_study_name_tuner_studies"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "study_name",
            "trial_number",
            name=op.f("uq_tuner_trial_results_study_name_trial_number"),
        ),
        sa.CheckConstraint(_in("state", TRIAL_STATES), name=op.f("ck_tuner_trial_results_state")),
        sa.CheckConstraint(
            _in("stop_reason", STOP_REASONS), name=op.f("ck_tuner_trial_results_stop_reason")
        ),
    )
    op.create_index(
        op.f("ix_tuner_trial_results_study_name_value"),
        "tuner_trial_results",
        ["study_name", "value"],
    )
    op.create_index(
        op.f("ix_tuner_trial_results_study_name_initializer"),
        "tuner_trial_results",
        ["study_name", "initializer"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_tuner_trial_results_study_name_initializer"), table_name="tuner_trial_results"
    )
    op.drop_index(op.f("ix_tuner_trial_results_study_name_value"), table_name="tuner_trial_results")
    op.drop_table("tuner_trial_results")
    op.drop_table("tuner_studies")
