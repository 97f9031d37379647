"""Trial pages as JSON bytes: one statement on PostgreSQL, rows serialized elsewhere; the same
JSON either way, and totals that follow every results write."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pydantic_core
import pytest
import sqlalchemy as sa

from storage import (
    ORDERABLE_COLUMNS,
    Database,
    StudyNotFoundError,
    StudyRecord,
    TrialPages,
    TrialResultData,
    page_trial_results,
    upsert_trial_result,
)
from tests.storage.conftest import T0, MakeResult
from tests.storage.test_results import AddStudy


def _write(database: Database, *results: TrialResultData) -> None:
    with database.session() as session:
        for result in results:
            upsert_trial_result(session, result)


def _reference(database: Database, name: str, **query: Any) -> dict[str, Any]:
    """The page as rows serialized by pydantic-core: what the API's schema writes."""
    with database.session() as session:
        items, total = page_trial_results(session, name, **query)
    limit, offset = query.get("limit", 100), query.get("offset", 0)
    body = {"items": items, "total": total, "limit": limit, "offset": offset}
    parsed: dict[str, Any] = json.loads(pydantic_core.to_json(body))
    return parsed


@pytest.fixture
def awkward(database: Database, add_study: AddStudy, make_result: MakeResult) -> Database:
    """Rows whose JSON is easy to get wrong: escapes, nulls, whole seconds, 0.0, tiny floats."""
    add_study("acc", "maximize")
    second = datetime.timedelta(seconds=1)
    _write(
        database,
        make_result(0, study_name="acc", error='say "hi"\n\\ ünïcode\t', worker=None, value=0.9),
        make_result(1, study_name="acc", value=None, state="fail", stop_reason="error"),
        make_result(2, study_name="acc", started_at=T0.replace(microsecond=0), value=0.7),
        make_result(3, study_name="acc", finished_at=T0.replace(microsecond=120000) + second),
        make_result(4, study_name="acc", lr=1e-05, weight_decay=0.0, best_epoch=None),
        make_result(5, study_name="acc", params_json={"ü": [1, 2.5, None], "a": {"b": "\\"}}),
        make_result(6, study_name="acc", initializer="orthogonal", state="pruned", value=0.99),
    )
    return database


def _kept_listings(pages: TrialPages) -> int:
    """Listings kept whole (PostgreSQL): pages served by a version check and a slice."""
    return len(pages._postgres._listings) if pages._postgres is not None else 0


def test_every_order_and_filter_gives_the_reference_json(awkward: Database) -> None:
    pages = TrialPages(awkward, stable_s=0.0)
    windows = [(100, 0), (3, 2), (2, 6), (5, 9)]  # after the second, from kept listings
    for order_by in ORDERABLE_COLUMNS:
        for descending in (None, True, False):
            for filters in ({}, {"state": "complete"}, {"initializer": "orthogonal"}):
                for limit, offset in windows:
                    query = dict(order_by=order_by, descending=descending, **filters)
                    query.update(limit=limit, offset=offset)
                    body = pages.page("acc", **query)  # type: ignore[arg-type]
                    assert json.loads(body) == _reference(awkward, "acc", **query), query
    if awkward.engine.dialect.name == "postgresql":
        assert _kept_listings(pages) == len(ORDERABLE_COLUMNS) * 3 * 3


def test_timestamps_and_escapes_are_written_exactly(awkward: Database) -> None:
    items = json.loads(TrialPages(awkward, stable_s=0.0).page("acc", order_by="trial_number"))[
        "items"
    ]
    assert items[0]["error"] == 'say "hi"\n\\ ünïcode\t' and items[0]["worker"] is None
    assert items[0]["started_at"] == "2025-01-02T03:04:05.123456Z"
    assert items[2]["started_at"] == "2025-01-02T03:04:05Z"  # no fraction on whole seconds
    assert items[3]["finished_at"] == "2025-01-02T03:04:06.120000Z"
    assert items[4]["lr"] == 1e-05 and items[4]["best_epoch"] is None
    assert items[5]["params_json"] == {"ü": [1, 2.5, None], "a": {"b": "\\"}}
    assert list(items[0]) == [
        "study_name", "trial_number", "state", "stop_reason", "initializer", "lr",
        "weight_decay", "batch_size", "patience", "value", "best_epoch", "epochs_run",
        "duration_s", "worker", "device", "started_at", "finished_at", "params_json", "error",
    ]  # fmt: skip


def test_totals_follow_every_results_write(awkward: Database, make_result: MakeResult) -> None:
    pages = TrialPages(awkward, stable_s=0.0)

    def total(**filters: Any) -> int:
        return int(json.loads(pages.page("acc", limit=1, **filters))["total"])

    for _ in range(3):  # again: from the cache, then from kept listings
        assert (total(), total(state="complete")) == (7, 5)
    _write(awkward, make_result(7, study_name="acc"))
    assert (total(), total(state="complete")) == (8, 6)
    _write(awkward, make_result(7, study_name="acc", state="fail", stop_reason="error"))
    assert (total(), total(state="complete")) == (8, 5)


def test_items_follow_every_results_write(awkward: Database, make_result: MakeResult) -> None:
    pages = TrialPages(awkward, stable_s=0.0)
    first = pages.page("acc", order_by="trial_number")
    for _ in range(3):
        assert pages.page("acc", order_by="trial_number") == first  # served again, from memory
    postgres = awkward.engine.dialect.name == "postgresql"
    assert _kept_listings(pages) == (1 if postgres else 0)
    _write(awkward, make_result(3, study_name="acc", error="rewritten", value=0.25))
    items = json.loads(pages.page("acc", order_by="trial_number"))["items"]
    assert (items[3]["error"], items[3]["value"]) == ("rewritten", 0.25)
    assert json.loads(pages.page("acc", order_by="trial_number")) == _reference(
        awkward, "acc", order_by="trial_number"
    )


def test_a_listing_is_kept_whole_only_once_its_study_has_stayed_unchanged(
    awkward: Database,
) -> None:
    busy = TrialPages(awkward, stable_s=3600.0)  # as if written to all the time
    for _ in range(5):
        body = json.loads(busy.page("acc", order_by="trial_number", limit=3, offset=2))
        assert body == _reference(awkward, "acc", order_by="trial_number", limit=3, offset=2)
    assert _kept_listings(busy) == 0


def test_a_listing_too_large_to_keep_is_not_read_whole_again(
    awkward: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("storage._pages_pg.LISTING_BUDGET", 4)  # the study has 7 rows
    pages = TrialPages(awkward, stable_s=0.0)
    reads: list[str] = []
    if pages._postgres is not None:  # count the statements that read a whole listing
        execute = pages._postgres._execute
        monkeypatch.setattr(
            pages._postgres,
            "_execute",
            lambda sql, params: reads.append(sql) or execute(sql, params),  # type: ignore[func-returns-value]
        )
    for _ in range(4):
        body = json.loads(pages.page("acc", limit=2))
        assert body == _reference(awkward, "acc", limit=2)
    assert _kept_listings(pages) == 0
    whole = [sql for sql in reads if "ARRAY(" not in sql and "string_agg" in sql]
    assert len(whole) == (1 if awkward.engine.dialect.name == "postgresql" else 0)


def test_unknown_study_and_a_study_made_anew(
    awkward: Database, add_study: AddStudy, make_result: MakeResult
) -> None:
    pages = TrialPages(awkward, stable_s=0.0)
    with pytest.raises(StudyNotFoundError, match="'nope' does not exist"):
        pages.page("nope")
    for _ in range(3):  # kept whole on PostgreSQL, then the study goes
        assert json.loads(pages.page("acc", limit=1))["items"][0]["trial_number"] == 6  # 0.99
    with awkward.session() as session:  # the same name again, minimizing, with no trials
        session.execute(sa.delete(StudyRecord).where(StudyRecord.name == "acc"))
    add_study("acc", "minimize")
    assert json.loads(pages.page("acc")) == {"items": [], "total": 0, "limit": 100, "offset": 0}
    _write(awkward, *(make_result(n, study_name="acc", value=v) for n, v in enumerate((5, 2, 9))))
    page = json.loads(pages.page("acc"))
    assert [item["trial_number"] for item in page["items"]] == [1, 0, 2] and page["total"] == 3


def test_bad_arguments_are_refused(awkward: Database) -> None:
    pages = TrialPages(awkward, stable_s=0.0)
    with pytest.raises(ValueError, match="order_by must be one of"):
        pages.page("acc", order_by="id")
    with pytest.raises(ValueError, match="offset must be >= 0"):
        pages.page("acc", offset=-1)
