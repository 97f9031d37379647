"""Study records: creation, lookup, status; unique names."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage import (
    ConstraintViolationError,
    Database,
    StudyExistsError,
    StudyNotFoundError,
    StudyRecord,
    create_study_record,
    get_study_record,
    list_study_records,
    set_study_status,
)


def test_create_and_get_study(database: Database) -> None:
    spec = {"name": "s", "search": {"lr": {"low": 1e-4, "high": 1.0, "log": True}}}
    with database.session() as session:
        created = create_study_record(
            session, name="s", spec_json=spec, metric="val_loss", direction="minimize", n_trials=7
        )
        assert created.id is not None
    with database.session() as session:
        record = get_study_record(session, "s")
        assert get_study_record(session, "missing") is None
    assert record is not None
    assert (record.name, record.metric, record.direction, record.n_trials) == (
        "s",
        "val_loss",
        "minimize",
        7,
    )
    assert record.status == "queued"
    assert record.spec_json == spec


def test_duplicate_study_name_raises_study_exists(database: Database, study: str) -> None:
    with pytest.raises(StudyExistsError, match=study), database.session() as session:
        create_study_record(
            session, name=study, spec_json={}, metric="m", direction="minimize", n_trials=1
        )
    with database.session() as session:
        record = get_study_record(session, study)
    assert record is not None
    assert record.direction == "maximize"  # the original is untouched


def test_bad_direction_is_rejected(database: Database) -> None:
    with pytest.raises(ConstraintViolationError), database.session() as session:
        create_study_record(
            session, name="x", spec_json={}, metric="m", direction="sideways", n_trials=1
        )


def test_set_study_status(database: Database, study: str) -> None:
    with database.session() as session:
        before = get_study_record(session, study)
        assert before is not None
        updated_before = before.updated_at
    with database.session() as session:
        set_study_status(session, study, "running")
    with database.session() as session:
        record = get_study_record(session, study)
        assert record is not None
        assert record.status == "running"
        assert record.updated_at >= updated_before
        assert [r.name for r in list_study_records(session, status="running")] == [study]
        assert list_study_records(session, status="queued") == []
    with pytest.raises(StudyNotFoundError), database.session() as session:
        set_study_status(session, "missing", "running")
    with pytest.raises(ConstraintViolationError), database.session() as session:
        set_study_status(session, study, "exploded")


def test_unique_violations_are_told_apart_from_other_constraints(database: Database) -> None:
    """The fallback ``create_study_record`` relies on when it loses an insert race."""
    from storage._errors import is_unique_violation

    def flush_error(**fields: object) -> sa.exc.IntegrityError:
        values = {"spec_json": {}, "metric": "m", "direction": "minimize", "n_trials": 1}
        values.update(fields)
        with database.session() as session:
            session.add(StudyRecord(**values))
            try:
                session.flush()
            except sa.exc.IntegrityError as exc:
                session.rollback()
                return exc
        raise AssertionError("no IntegrityError")

    with database.session() as session:
        create_study_record(
            session, name="taken", spec_json={}, metric="m", direction="minimize", n_trials=1
        )
    assert is_unique_violation(flush_error(name="taken"))
    assert not is_unique_violation(flush_error(name="free", direction="sideways"))
