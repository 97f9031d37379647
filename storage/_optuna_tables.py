"""Writes into Optuna's own tables, a few statements where its API takes one transaction per
value and reads the trial back between them.

Uses Optuna's own table definitions and encodings (its models' ``__table__``, value and
distribution encodings, naive UTC timestamps), so the rows are exactly those ``study.ask``,
``trial.report`` and ``study.tell`` write, and Optuna, its dashboard and CLI read them as
theirs. The caller's session holds the transaction: a trial can be created with the worker's
run row, and finished with its results row, in one commit.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Mapping
from typing import Any, cast

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.storages._rdb.models import (
    StudyModel,
    TrialIntermediateValueModel,
    TrialModel,
    TrialParamModel,
    TrialUserAttributeModel,
    TrialValueModel,
)
from optuna.trial import TrialState
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage._errors import StorageError, translate_errors

_STUDIES = StudyModel.__table__
_TRIALS = TrialModel.__table__
_PARAMS = TrialParamModel.__table__
_USER_ATTRS = TrialUserAttributeModel.__table__
_VALUES = TrialValueModel.__table__
_INTERMEDIATE = TrialIntermediateValueModel.__table__
# Built once, with bound parameters (building a statement costs more than running it).
_LOCK_STUDY = (
    sa.select(_STUDIES.c.study_id)
    .where(_STUDIES.c.study_id == sa.bindparam("sid"))
    .with_for_update()
)
_EARLIER = (
    sa.select(sa.func.count()).select_from(_TRIALS).where(_TRIALS.c.study_id == sa.bindparam("sid"))
)
_NEW_TRIAL = (
    sa.insert(_TRIALS)
    .values(
        number=_EARLIER.scalar_subquery(),
        study_id=sa.bindparam("sid"),
        state=TrialState.RUNNING,
        datetime_start=sa.bindparam("now"),
    )
    .returning(_TRIALS.c.trial_id, _TRIALS.c.number)
)
_END_TRIAL = (
    sa.update(_TRIALS)
    .where(_TRIALS.c.trial_id == sa.bindparam("tid"), _TRIALS.c.state == TrialState.RUNNING)
    .values(state=sa.bindparam("to"), datetime_complete=sa.bindparam("now"))
)


def _utcnow() -> datetime.datetime:
    """Now as Optuna's RDB storage keeps it: naive UTC."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@translate_errors
def create_optuna_trial(
    session: Session,
    study_id: int,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    user_attrs: Mapping[str, Any],
) -> tuple[int, int]:
    """A RUNNING trial with these parameters and user attributes; its (trial id, number).

    As Optuna's ``create_new_trial`` does, the study's row is locked first, so the number (the
    count of the study's earlier trials) is unique; then three inserts.
    """
    if session.execute(_LOCK_STUDY, {"sid": study_id}).first() is None:
        raise StorageError(f"no Optuna study with id {study_id}")
    row = session.execute(_NEW_TRIAL, {"sid": study_id, "now": _utcnow()}).one()
    trial_id, number = int(row[0]), int(row[1])
    if params:
        session.execute(
            sa.insert(_PARAMS),
            [
                {
                    "trial_id": trial_id,
                    "param_name": name,
                    "param_value": distributions[name].to_internal_repr(value),
                    "distribution_json": distribution_to_json(distributions[name]),
                }
                for name, value in params.items()
            ],
        )
    if user_attrs:
        session.execute(
            sa.insert(_USER_ATTRS),
            [
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                for key, value in user_attrs.items()
            ],
        )
    return trial_id, number


@translate_errors
def finish_optuna_trial(
    session: Session,
    trial_id: int,
    state: TrialState,
    value: float | None,
    intermediate_values: Mapping[int, float],
    user_attrs: Mapping[str, Any] | None = None,
) -> bool:
    """End a RUNNING trial as ``study.tell`` does, with the intermediate values not yet written
    and ``user_attrs`` (what people filter trials on in Optuna's tools).

    ``value`` is what Optuna records (for a pruned trial, tell's caller passes its last
    intermediate value). False, and nothing written, if the trial is no longer running.
    """
    ended = session.execute(_END_TRIAL, {"tid": trial_id, "to": state, "now": _utcnow()})
    if cast("sa.CursorResult[Any]", ended).rowcount != 1:
        return False
    if value is not None:
        stored, kind = TrialValueModel.value_to_stored_repr(value)
        row = {"trial_id": trial_id, "objective": 0, "value": stored, "value_type": kind}
        session.execute(sa.insert(_VALUES), row)
    write_intermediate_values(session, trial_id, intermediate_values)
    if user_attrs:
        session.execute(
            sa.insert(_USER_ATTRS),
            [
                {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                for key, value in user_attrs.items()
            ],
        )
    return True


@translate_errors
def write_intermediate_values(session: Session, trial_id: int, values: Mapping[int, float]) -> None:
    """Insert (or replace) a running trial's intermediate values in one round trip."""
    if not values:
        return
    rows = []
    for step, value in values.items():
        stored, kind = TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
        rows.append(
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # no upsert: delete, then insert
        session.execute(
            sa.delete(_INTERMEDIATE).where(
                _INTERMEDIATE.c.trial_id == trial_id, _INTERMEDIATE.c.step.in_(list(values))
            )
        )
        session.execute(sa.insert(_INTERMEDIATE), rows)
        return
    session.execute(_upsert_intermediate(dialect), rows)


@functools.cache
def _upsert_intermediate(dialect: str) -> Any:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_INTERMEDIATE)
    replace = {c: insert.excluded[c] for c in ("intermediate_value", "intermediate_value_type")}
    return insert.on_conflict_do_update(index_elements=["trial_id", "step"], set_=replace)
