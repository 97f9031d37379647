"""Indexes that serve best-first pages of trial results without sorting.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 00:00:00+00:00

``(study_name, value, trial_number)`` replaces ``(study_name, value)`` and serves minimized
studies; ``(study_name, value DESC NULLS LAST, trial_number)`` serves maximized ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "tuner_trial_results"


def upgrade() -> None:
    op.drop_index("ix_tuner_trial_results_study_name_value", table_name=TABLE)
    op.create_index(
        "ix_tuner_trial_results_study_name_value", TABLE, ["study_name", "value", "trial_number"]
    )
    if op.get_context().dialect.name == "postgresql":  # SQLite takes no NULLS LAST here
        op.create_index(
            "ix_tuner_trial_results_best_first_max",
            TABLE,
            ["study_name", sa.text("value DESC NULLS LAST"), "trial_number"],
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_index("ix_tuner_trial_results_best_first_max", table_name=TABLE)
    op.drop_index("ix_tuner_trial_results_study_name_value", table_name=TABLE)
    op.create_index("ix_tuner_trial_results_study_name_value", TABLE, ["study_name", "value"])
