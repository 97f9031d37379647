"""Bulk writes into Optuna's own tables, where its API takes one transaction per value.

Uses Optuna's own table definition and value encoding (``TrialIntermediateValueModel``),
so the rows are exactly those ``trial.report`` would write.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from optuna.storages._rdb.models import TrialIntermediateValueModel
from sqlalchemy.orm import Session

from storage._errors import translate_errors

_TABLE = TrialIntermediateValueModel.__table__


@translate_errors
def write_intermediate_values(session: Session, trial_id: int, values: Mapping[int, float]) -> None:
    """Insert (or replace) a running trial's intermediate values in one round trip."""
    steps = list(values)
    session.execute(
        sa.delete(_TABLE).where(_TABLE.c.trial_id == trial_id, _TABLE.c.step.in_(steps))
    )
    rows = []
    for step in steps:
        stored, kind = TrialIntermediateValueModel.intermediate_value_to_stored_repr(values[step])
        rows.append(
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    session.execute(sa.insert(_TABLE), rows)
