"""Trial details: t=0 layer diagnostics, seed replicates, and a replay manifest per trial.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 00:00:00+00:00

Adds ``tuner_layer_diagnostics`` and ``tuner_trial_replicates`` (children of a results row,
deleted with it) and the ``manifest_json``, ``n_replicates`` and ``value_std`` columns of
``tuner_trial_results``. Contract columns are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESULTS = "tuner_trial_results"
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _child(name: str, *columns: sa.Column[object], unique: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_name", sa.String(255), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["study_name", "trial_number"],
            [f"{RESULTS}.study_name", f"{RESULTS}.trial_number"],
            name=f"fk_{name}_study_name_{RESULTS}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.UniqueConstraint(
            "study_name", "trial_number", unique, name=f"uq_{name}_study_name_trial_number_{unique}"
        ),
    )


def upgrade() -> None:
    op.add_column(RESULTS, sa.Column("manifest_json", _JSON, nullable=True))
    op.add_column(
        RESULTS, sa.Column("n_replicates", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column(RESULTS, sa.Column("value_std", sa.Double(), nullable=True))
    _child(
        "tuner_layer_diagnostics",
        sa.Column("layer_index", sa.Integer(), nullable=False),
        sa.Column("layer_name", sa.String(255), nullable=False),
        sa.Column("layer_kind", sa.String(64), nullable=False),
        sa.Column("fan_in", sa.Integer(), nullable=False),
        sa.Column("fan_out", sa.Integer(), nullable=False),
        sa.Column("act_mean", sa.Double(), nullable=False),
        sa.Column("act_std", sa.Double(), nullable=False),
        sa.Column("preact_std", sa.Double(), nullable=False),
        sa.Column("dead_frac", sa.Double(), nullable=True),
        sa.Column("saturated_frac", sa.Double(), nullable=True),
        sa.Column("weight_std", sa.Double(), nullable=False),
        sa.Column("grad_std", sa.Double(), nullable=False),
        unique="layer_index",
    )
    _child(
        "tuner_trial_replicates",
        sa.Column("replicate", sa.Integer(), nullable=False),
        sa.Column("init_seed", sa.BigInteger(), nullable=False),
        sa.Column("data_seed", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("best_value", sa.Double(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("epochs_run", sa.Integer(), nullable=False),
        unique="replicate",
    )


def downgrade() -> None:
    op.drop_table("tuner_trial_replicates")
    op.drop_table("tuner_layer_diagnostics")
    for column in ("value_std", "n_replicates", "manifest_json"):
        op.drop_column(RESULTS, column)
