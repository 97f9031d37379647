"""Trial signal: a trial's signal propagation at t=0, one row per trial.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 00:00:00+00:00

Adds ``tuner_trial_signal`` (a child of a results row, deleted with it): the input-output
Jacobian's squared singular values on the calibration batch (mean and normalized variance) and
the mean-field figures of a fully connected tanh/sigmoid net (sigma_w^2, sigma_b^2, q*, chi_1,
c*, chi_c, the depth scale xi_c, the depth), with why either was not measured and the warning
when the signal cannot cross the network. Contract columns are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESULTS = "tuner_trial_results"
TABLE = "tuner_trial_signal"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_name", sa.String(255), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("jacobian_mean_sq", sa.Double(), nullable=True),
        sa.Column("jacobian_spread", sa.Double(), nullable=True),
        sa.Column("jacobian_samples", sa.Integer(), nullable=True),
        sa.Column("jacobian_skipped", sa.Text(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=True),
        *(
            sa.Column(name, sa.Double(), nullable=True)
            for name in ("sigma_w2", "sigma_b2", "q_star", "chi_1", "c_star", "chi_c", "xi_c")
        ),
        sa.Column("mean_field_skipped", sa.Text(), nullable=True),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_name", "trial_number"],
            [f"{RESULTS}.study_name", f"{RESULTS}.trial_number"],
            name=f"fk_{TABLE}_study_name_{RESULTS}",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{TABLE}"),
        sa.UniqueConstraint(
            "study_name", "trial_number", name=f"uq_{TABLE}_study_name_trial_number"
        ),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
