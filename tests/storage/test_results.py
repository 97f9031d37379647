"""Study records and trial results: writes, constraints, filters, ordering, aggregates."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from storage import (
    ConstraintViolationError,
    Database,
    InitializerSummary,
    StorageError,
    StudyNotFoundError,
    StudyRecord,
    TrialResult,
    TrialResultData,
    count_trial_results,
    get_study_record,
    get_trial_result,
    list_trial_results,
    set_study_status,
    summarize_by_initializer,
    upsert_trial_result,
)

MakeResult = Callable[..., TrialResultData]
AddStudy = Callable[..., str]


def _write(database: Database, *results: TrialResultData) -> None:
    with database.session() as session:
        for result in results:
            upsert_trial_result(session, result)


def _rounded(summary: InitializerSummary) -> InitializerSummary:
    """The summary with its mean rounded (an AVG is not exact in binary floating point)."""
    mean = summary.mean_value
    return dataclasses.replace(summary, mean_value=None if mean is None else round(mean, 9))


def _numbers(rows: list[TrialResult]) -> list[int]:
    return [row.trial_number for row in rows]


# --- writing results ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "stop_reason", "value", "error"),
    [
        ("complete", "patience", 0.93, None),
        ("complete", "max_epochs", 0.91, None),
        ("complete", "timeout", 0.5, None),
        ("pruned", "pruned", 0.42, None),
        ("fail", "diverged", None, None),
        ("fail", "error", None, "RuntimeError: CUDA out of memory"),
    ],
)
def test_round_trip_each_terminal_state(
    database: Database,
    study: str,
    make_result: MakeResult,
    state: str,
    stop_reason: str,
    value: float | None,
    error: str | None,
) -> None:
    written = make_result(
        3, state=state, stop_reason=stop_reason, value=value, error=error, best_epoch=None
    )
    _write(database, written)
    with database.session() as session:
        row = get_trial_result(session, study, 3)
        assert get_trial_result(session, study, 4) is None
    assert row is not None
    assert TrialResultData(**{name: getattr(row, name) for name in written.to_row()}) == written
    assert row.value is None if value is None else row.value == pytest.approx(value)
    assert row.error == error
    assert row.best_epoch is None


def test_non_finite_value_is_stored_as_null(
    database: Database, study: str, make_result: MakeResult
) -> None:
    data = make_result(0, state="fail", stop_reason="diverged", value=math.nan)
    assert data.value is None
    _write(database, data, make_result(1, state="fail", stop_reason="diverged", value=math.inf))
    with database.session() as session:
        assert [row.value for row in list_trial_results(session, study)] == [None, None]


def test_upsert_is_idempotent_and_last_write_wins(
    database: Database, study: str, make_result: MakeResult
) -> None:
    _write(database, make_result(0, value=0.1, worker="w1", params_json={"a": 1}))
    _write(database, make_result(0, value=0.9, worker="w2", params_json={"b": 2}, error="x"))
    _write(database, make_result(0, value=0.9, worker="w2", params_json={"b": 2}, error="x"))
    with database.session() as session:
        rows = list_trial_results(session, study)
    assert len(rows) == 1
    assert (rows[0].value, rows[0].worker, rows[0].params_json, rows[0].error) == (
        0.9,
        "w2",
        {"b": 2},
        "x",
    )


def test_unknown_stop_reason_is_rejected_and_nothing_is_half_written(
    database: Database, study: str, make_result: MakeResult
) -> None:
    with pytest.raises(StorageError, match="stop_reason") as info, database.session() as session:
        upsert_trial_result(session, make_result(0))
        set_study_status(session, study, "running")
        upsert_trial_result(session, make_result(1, stop_reason="bored"))
    assert isinstance(info.value, ConstraintViolationError)
    with database.session() as session:
        assert count_trial_results(session, study) == 0
        record = get_study_record(session, study)
        assert record is not None
        assert record.status == "queued"


def test_unknown_state_and_unknown_study_are_rejected(
    database: Database, study: str, make_result: MakeResult
) -> None:
    with pytest.raises(ConstraintViolationError), database.session() as session:
        upsert_trial_result(session, make_result(0, state="running"))
    with pytest.raises(ConstraintViolationError), database.session() as session:
        upsert_trial_result(session, make_result(0, study_name="no-such-study"))


# --- reading results ---------------------------------------------------------------------


@pytest.fixture
def populated(database: Database, add_study: AddStudy, make_result: MakeResult) -> Database:
    """Two studies with the same trials: ``acc`` maximizes, ``loss`` minimizes."""
    trials = [
        # number, initializer, state, stop_reason, value
        (0, "xavier_uniform", "complete", "patience", 0.80),
        (1, "kaiming_normal", "complete", "max_epochs", 0.95),
        (2, "xavier_uniform", "pruned", "pruned", 0.99),
        (3, "kaiming_normal", "fail", "error", None),
        (4, "orthogonal", "complete", "patience", 0.70),
        (5, "xavier_uniform", "complete", "timeout", 0.90),
        (6, "orthogonal", "fail", "diverged", None),
    ]
    for name, direction in (("acc", "maximize"), ("loss", "minimize")):
        add_study(name, direction)
        _write(
            database,
            *(
                make_result(n, study_name=name, initializer=i, state=s, stop_reason=r, value=v)
                for n, i, s, r, v in trials
            ),
        )
    return database


def test_list_is_best_first_for_the_study_direction(populated: Database) -> None:
    with populated.session() as session:
        assert _numbers(list_trial_results(session, "acc")) == [2, 1, 5, 0, 4, 3, 6]
        assert _numbers(list_trial_results(session, "loss")) == [4, 0, 5, 1, 2, 3, 6]
        best = list_trial_results(session, "loss", state="complete", limit=1)
        assert [(r.trial_number, r.value) for r in best] == [(4, 0.70)]
        assert _numbers(list_trial_results(session, "acc", descending=False)) == [
            4,
            0,
            5,
            1,
            2,
            3,
            6,
        ]


def test_list_filters_order_limit_offset(populated: Database) -> None:
    with populated.session() as session:
        assert _numbers(list_trial_results(session, "acc", state="complete")) == [1, 5, 0, 4]
        assert _numbers(list_trial_results(session, "acc", initializer="orthogonal")) == [4, 6]
        assert _numbers(
            list_trial_results(session, "acc", state="complete", initializer="xavier_uniform")
        ) == [5, 0]
        assert _numbers(list_trial_results(session, "acc", order_by="trial_number")) == list(
            range(7)
        )
        assert _numbers(
            list_trial_results(session, "acc", order_by="trial_number", descending=True)
        ) == list(range(6, -1, -1))
        page = list_trial_results(session, "acc", order_by="trial_number", limit=3, offset=2)
        assert _numbers(page) == [2, 3, 4]
        assert list_trial_results(session, "acc", state="complete", offset=10) == []
        assert _numbers(list_trial_results(session, "acc", order_by="initializer")) == [
            1,
            3,
            4,
            6,
            0,
            2,
            5,
        ]


def test_list_rejects_bad_arguments_and_unknown_study(populated: Database) -> None:
    with populated.session() as session:
        with pytest.raises(ValueError, match="order_by"):
            list_trial_results(session, "acc", order_by="value; DROP TABLE x")
        with pytest.raises(ValueError, match="limit"):
            list_trial_results(session, "acc", limit=-1)
        with pytest.raises(StudyNotFoundError):
            list_trial_results(session, "missing")
        with pytest.raises(StudyNotFoundError):
            count_trial_results(session, "missing")
        with pytest.raises(StudyNotFoundError):
            summarize_by_initializer(session, "missing")


def test_count(populated: Database) -> None:
    with populated.session() as session:
        assert count_trial_results(session, "acc") == 7
        assert count_trial_results(session, "acc", state="fail") == 2
        assert count_trial_results(session, "acc", initializer="xavier_uniform") == 3
        assert count_trial_results(session, "acc", state="complete", initializer="orthogonal") == 1


def test_summarize_by_initializer(populated: Database) -> None:
    with populated.session() as session:
        acc = summarize_by_initializer(session, "acc")
        loss = summarize_by_initializer(session, "loss")
    # Values of complete trials only: the pruned 0.99 counts in n_trials, not in best/mean.
    assert [_rounded(s) for s in acc] == [
        InitializerSummary("kaiming_normal", 2, 1, 0.95, 0.95),
        InitializerSummary("xavier_uniform", 3, 2, 0.90, 0.85),
        InitializerSummary("orthogonal", 2, 1, 0.70, 0.70),
    ]
    assert [(s.initializer, s.best_value) for s in loss] == [
        ("orthogonal", 0.70),
        ("xavier_uniform", 0.80),
        ("kaiming_normal", 0.95),
    ]


def test_summary_of_initializer_without_complete_trials(
    database: Database, study: str, make_result: MakeResult
) -> None:
    _write(
        database,
        make_result(0, initializer="zeros", state="fail", stop_reason="diverged", value=None),
        make_result(1, initializer="he_normal", value=0.3),
    )
    with database.session() as session:
        summary = summarize_by_initializer(session, study)
    assert [_rounded(s) for s in summary] == [
        InitializerSummary("he_normal", 1, 1, 0.3, 0.3),
        InitializerSummary("zeros", 1, 0, None, None),
    ]


def test_plain_sql_reads_the_results(populated: Database) -> None:
    with populated.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select initializer, max(value) from tuner_trial_results "
                "where study_name = 'acc' group by initializer order by initializer"
            )
        ).all()
        everything = conn.execute(
            sa.text("select initializer, max(value) from tuner_trial_results group by initializer")
        ).all()
    assert [tuple(row) for row in rows] == [
        ("kaiming_normal", 0.95),
        ("orthogonal", 0.70),
        ("xavier_uniform", 0.99),
    ]
    assert len(everything) == 3


def test_results_are_plain_orm_rows(populated: Database) -> None:
    with populated.session() as session:
        n = session.scalar(sa.select(sa.func.count()).select_from(StudyRecord))
    assert n == 2
