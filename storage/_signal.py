"""A trial's signal propagation at initialization: one ``tuner_trial_signal`` row per trial."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage._errors import translate_errors
from storage._models import TrialSignal


@dataclasses.dataclass(frozen=True)
class TrialSignalData:
    """How a signal crosses the model at t=0 (``to_json`` is its JSON; every value finite).

    The Jacobian figures are those of dynamical isometry (Saxe et al. 2014; Pennington,
    Schoenholz & Ganguli 2017): the squared singular values of the input-output Jacobian of
    each calibration sample, pooled; ``jacobian_spread`` is their variance over their squared
    mean (0: an isometry). The mean-field figures are Schoenholz et al.'s (2017) for a fully
    connected tanh/sigmoid net: ``sigma_w2 = fan_in Var(W)`` and ``sigma_b2 = Var(b)`` of the
    hidden layers (about zero: the mean squares, as they enter the recursions), the length
    fixed point ``q_star``, ``chi_1``, the correlation fixed point ``c_star`` and its slope
    ``chi_c``; the depth scale ``xi_c`` follows from ``chi_c``. None: not measured, and the
    ``*_skipped`` sentence says why.
    """

    jacobian_mean_sq: float | None = None
    jacobian_spread: float | None = None
    jacobian_samples: int | None = None
    jacobian_skipped: str | None = None
    depth: int | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    q_star: float | None = None
    chi_1: float | None = None
    c_star: float | None = None
    chi_c: float | None = None
    mean_field_skipped: str | None = None
    warning: str | None = None  # "signal cannot cross the network: ..."

    @property
    def xi_c(self) -> float | None:
        """The correlation depth scale ``-1 / ln(chi_c)``: infinite at ``chi_c = 1``."""
        if self.chi_c is None:
            return None
        if self.chi_c >= 1.0:
            return math.inf
        return 0.0 if self.chi_c <= 0.0 else -1.0 / math.log(self.chi_c)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = tuple(f.name for f in dataclasses.fields(TrialSignalData))


def as_signal(data: TrialSignalData | Mapping[str, Any] | None) -> TrialSignalData | None:
    if data is None or isinstance(data, TrialSignalData):
        return data
    return TrialSignalData(**{k: v for k, v in data.items() if k in _FIELDS})


def write_trial_signal(
    session: Session, study_name: str, trial_number: int, signal: TrialSignalData
) -> None:
    """Replace a trial's signal row (its results row must exist); part of the caller's txn."""
    key = {"study_name": study_name, "trial_number": trial_number}
    session.execute(
        sa.delete(TrialSignal).where(
            TrialSignal.study_name == study_name, TrialSignal.trial_number == trial_number
        )
    )
    session.execute(sa.insert(TrialSignal), [{**key, **signal.to_json(), "xi_c": signal.xi_c}])


def _data(row: TrialSignal) -> TrialSignalData:
    return TrialSignalData(**{name: getattr(row, name) for name in _FIELDS})


@translate_errors
def get_trial_signal(
    session: Session, study_name: str, trial_number: int
) -> TrialSignalData | None:
    """A trial's signal at t=0, or None if it was not measured."""
    row = session.scalar(
        sa.select(TrialSignal).where(
            TrialSignal.study_name == study_name, TrialSignal.trial_number == trial_number
        )
    )
    return None if row is None else _data(row)


@translate_errors
def signal_by_trial(session: Session, study_name: str) -> dict[int, TrialSignalData]:
    """Every measured trial's signal at t=0 in a study, by trial number (one query)."""
    rows = session.scalars(
        sa.select(TrialSignal)
        .where(TrialSignal.study_name == study_name)
        .order_by(TrialSignal.trial_number)
    )
    return {row.trial_number: _data(row) for row in rows}
