"""Pages of a study's trial results as the REST API serves them: JSON bytes.

The API's hot read path. On PostgreSQL the server finds the page and builds its items'
JSON (``storage._pages_pg``); other databases read rows, serialized here to the same JSON.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.orm import Session

from storage._database import Database
from storage._errors import translate_errors
from storage._models import TrialResult
from storage._pages_pg import STABLE_S, PostgresPages
from storage._results import ORDERABLE_COLUMNS, filtered, ordered

#: The public columns of ``tuner_trial_results`` (the public contract), plus ``error``: a page item.
CONTRACT_COLUMNS: tuple[str, ...] = (
    "study_name",
    "trial_number",
    "state",
    "stop_reason",
    "initializer",
    "lr",
    "weight_decay",
    "batch_size",
    "patience",
    "value",
    "best_epoch",
    "epochs_run",
    "duration_s",
    "worker",
    "device",
    "started_at",
    "finished_at",
    "params_json",
    "error",
)


@translate_errors
def page_trial_results(
    session: Session,
    study_name: str,
    *,
    state: str | None = None,
    initializer: str | None = None,
    order_by: str = "value",
    descending: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of rows as plain dicts of the contract columns, and the total that match.

    Core rows, no ORM objects, and no COUNT on a last page.
    """
    table = TrialResult.__table__
    columns = sa.select(*(table.c[name] for name in CONTRACT_COLUMNS))
    stmt = ordered(
        session, columns, study_name, state, initializer, order_by, descending, limit, offset
    )
    items = [dict(row) for row in session.execute(stmt).mappings()]
    if len(items) < limit and (items or offset == 0):
        return items, offset + len(items)
    count = filtered(sa.select(sa.func.count()), study_name, state, initializer)
    return items, int(session.scalar(count) or 0)


class TrialPages:
    """Serves pages of trial results as JSON; one per :class:`Database`, thread-safe.

    The JSON is ``{"items": [...], "total": n, "limit": l, "offset": o}`` with the items'
    fields in :data:`CONTRACT_COLUMNS` order and timestamps as pydantic writes them. On
    PostgreSQL the server builds the items (see ``storage._pages_pg``: one index walk a page,
    items and totals kept while their rows and the study row stay as they were).
    """

    def __init__(self, db: Database, *, stable_s: float = STABLE_S) -> None:
        """``stable_s``: on PostgreSQL, how long a study must stay unchanged before a listing
        read on it is kept whole (see ``storage._pages_pg``)."""
        self.db = db
        postgres = db.engine.dialect.name == "postgresql"
        self._postgres = (
            PostgresPages(db, CONTRACT_COLUMNS, stable_s=stable_s) if postgres else None
        )

    @translate_errors
    def page(
        self,
        study_name: str,
        *,
        state: str | None = None,
        initializer: str | None = None,
        order_by: str = "value",
        descending: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> bytes:
        """One page; :class:`~storage.StudyNotFoundError` if the study does not exist.

        Rows without the ordering column's value go last; ties break on the trial number;
        ``descending=None`` is best first for ``value`` and ascending for other columns.
        """
        if self._postgres is None:
            with self.db.session() as session:
                rows, total = page_trial_results(
                    session,
                    study_name,
                    state=state,
                    initializer=initializer,
                    order_by=order_by,
                    descending=descending,
                    limit=limit,
                    offset=offset,
                )
            body = {"items": rows, "total": total, "limit": limit, "offset": offset}
            return pydantic_core.to_json(body)
        _check_page(order_by, limit, offset)
        items, total = self._postgres.page(
            study_name, state, initializer, order_by, descending, limit, offset
        )
        return (
            b'{"items":' + items + f',"total":{total},"limit":{limit},"offset":{offset}}}'.encode()
        )


def _check_page(order_by: str, limit: int, offset: int) -> None:
    if order_by not in ORDERABLE_COLUMNS:
        raise ValueError(
            f"order_by must be one of {', '.join(ORDERABLE_COLUMNS)}; got {order_by!r}"
        )
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
