"""A trial's t=0 signal row (``tuner_trial_signal``), on every storage."""

from __future__ import annotations

import math
from collections.abc import Callable

import sqlalchemy as sa

from storage import (
    Database,
    TrialResultData,
    TrialSignal,
    TrialSignalData,
    get_trial_signal,
    signal_by_trial,
    upsert_trial_result,
)
from storage._models import StudyRecord

MakeResult = Callable[..., TrialResultData]

CRITICAL = TrialSignalData(
    jacobian_mean_sq=1.02,
    jacobian_spread=0.31,
    jacobian_samples=32,
    depth=21,
    sigma_w2=1.0,
    sigma_b2=0.0,
    q_star=0.0,
    chi_1=1.0,
    c_star=1.0,
    chi_c=1.0,
)
ORDERED = TrialSignalData(
    jacobian_skipped="the Jacobian has 1792 outputs per sample",
    depth=41,
    sigma_w2=0.5,
    sigma_b2=0.0,
    q_star=0.0,
    chi_1=0.5,
    c_star=1.0,
    chi_c=0.5,
    warning="signal cannot cross the network: depth 41 > 6 xi_c = 8.66",
)


def test_signal_round_trips_with_its_trial(
    database: Database, study: str, make_result: MakeResult
) -> None:
    skipped = TrialSignalData(jacobian_skipped="x", mean_field_skipped="an LSTM")
    with database.session() as session:
        upsert_trial_result(session, make_result(0, signal=CRITICAL))
        upsert_trial_result(session, make_result(1, signal=ORDERED))
        upsert_trial_result(session, make_result(2, signal=skipped))
        upsert_trial_result(session, make_result(3))  # measured nothing: no row
    with database.session() as session:
        assert get_trial_signal(session, study, 0) == CRITICAL
        assert get_trial_signal(session, study, 1) == ORDERED
        assert get_trial_signal(session, study, 3) is None
        assert signal_by_trial(session, study) == {0: CRITICAL, 1: ORDERED, 2: skipped}
        # xi_c is stored for plain SQL: +infinity at criticality, -1/ln(chi_c) else, NULL
        # where there is no mean field.
        stored = dict(session.execute(sa.select(TrialSignal.trial_number, TrialSignal.xi_c)).all())
    assert stored[0] == math.inf
    assert math.isclose(stored[1], 1 / math.log(2))
    assert stored[2] is None
    assert CRITICAL.xi_c == math.inf and ORDERED.xi_c == stored[1]
    # The user-attribute copy (JSON) carries it too, and JSON holds no infinity.
    data = make_result(0, signal=CRITICAL)
    assert "Infinity" not in str(data.to_json())
    assert TrialResultData.from_json(data.to_json()) == data


def test_rewriting_replaces_the_signal_and_it_goes_with_its_study(
    database: Database, study: str, make_result: MakeResult
) -> None:
    with database.session() as session:
        upsert_trial_result(session, make_result(0, signal=CRITICAL))
    with database.session() as session:
        upsert_trial_result(session, make_result(0, signal=ORDERED))
    with database.session() as session:
        assert get_trial_signal(session, study, 0) == ORDERED
        session.execute(sa.delete(StudyRecord).where(StudyRecord.name == study))
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count(TrialSignal.id))) == 0
