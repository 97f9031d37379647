"""A study's failure reason: ``tuner_studies.error``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 00:00:00+00:00

A study whose definition cannot run (its task cannot be built, its Optuna study was deleted)
is marked ``failed`` by the worker that meets the problem, with the reason here; the worker
goes on with other studies. Contract columns are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tuner_studies") as batch:
        batch.add_column(sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tuner_studies") as batch:
        batch.drop_column("error")
