"""Room for a per-group initializer label: ``tuner_trial_results.initializer`` 64 -> 255.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:00:00+00:00

A study that gives layer groups their own initializer stores the trial's choices as one
readable label (``xavier_uniform; recurrent=orthogonal; output=zeros``), which can be longer
than a single name. The column keeps its name and meaning.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _resize(old: int, new: int) -> None:
    if op.get_context().dialect.name == "sqlite" and context.is_offline_mode():
        # SQLite enforces no VARCHAR length, and its batch mode needs a live table to copy
        op.execute(f"-- tuner_trial_results.initializer: VARCHAR({old}) -> VARCHAR({new})")
        return
    with op.batch_alter_table("tuner_trial_results") as batch:
        batch.alter_column(
            "initializer",
            existing_type=sa.String(old),
            type_=sa.String(new),
            existing_nullable=False,
        )


def upgrade() -> None:
    _resize(64, 255)


def downgrade() -> None:
    _resize(255, 64)
