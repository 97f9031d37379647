"""Trial pages on PostgreSQL: the page's rows found on an index, their JSON built once.

One statement checks the study, walks the ordering index to the page (the offset walk reads
the index only) and returns the page's trial numbers, each with its row version (``xmin``:
any write of a row gives it a new one); it counts the matching rows only when the study row
has changed since the count was cached (every results write marks the study row, see
:func:`storage.upsert_trial_result`). The items' JSON is built by the server, for rows this
process has not served in that version yet, in a second statement, and kept: a study's pages
cost one index walk each once its rows have been seen.

A listing read again on a study version that has not changed for ``STABLE_S`` seconds (a
finished study: dashboards, CI queries, clients paging through) is kept whole: every
matching row's JSON in order. Its pages then cost one primary-key read of the study row (is
the version still the same?) and a slice. Any results write gives the study row a new
version, and the listing is dropped. A study written to more often than that (workers
recording results) is never kept whole: building a listing costs as much as dozens of
pages, so its pages keep walking the index.
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from storage._database import Database
from storage._errors import StudyNotFoundError
from storage._models import TrialResult

FRAGMENT_BUDGET = 64 << 20  # bytes of item JSON kept per process (least recently used go)
STABLE_S = 2.0  # a study version this old (seconds since first served) gets its listing kept
LISTING_BUDGET = 100_000  # rows in kept listings per process (least recently used go)
_CACHE_LIMIT = 4096  # cached totals and directions; past it, the caches start over
_TIMESTAMPS = ("started_at", "finished_at")


class PostgresPages:
    """Pages as JSON item lists; thread-safe.

    A page is served on a connection kept here between pages (no pool checkout, no ping):
    taken while the page is served, given back after. So at most as many are kept as pages
    were ever served at once (the API's ``trials_threads``), each one of the pool's.
    """

    def __init__(
        self, db: Database, columns: tuple[str, ...], *, stable_s: float = STABLE_S
    ) -> None:
        self.db, self.columns, self.stable_s = db, columns, stable_s
        self._directions: dict[str, str] = {}
        self._totals: dict[tuple[str, str | None, str | None], tuple[str, int]] = {}
        self._fragments: collections.OrderedDict[tuple[str, int], tuple[str, bytes]]
        self._fragments, self._bytes = collections.OrderedDict(), 0
        self._listings: collections.OrderedDict[_ListingKey, _Listing] = collections.OrderedDict()
        self._listed_rows = 0
        self._stable: dict[_ListingKey, tuple[str, float]] = {}  # version, when first served
        self._building: set[_ListingKey] = set()
        self._lock = threading.Lock()
        self._local = threading.local()  # the connection this thread's page is served on
        self._idle: list[sa.Connection] = []  # kept connections no page is using

    def page(
        self,
        name: str,
        state: str | None,
        initializer: str | None,
        order_by: str,
        descending: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[bytes, int]:
        """The page's items as a JSON array, and the total that match."""
        with self._lock:
            self._local.connection = self._idle.pop() if self._idle else None
        try:
            return self._page(name, state, initializer, order_by, descending, limit, offset)
        finally:
            connection, self._local.connection = self._local.connection, None
            if connection is not None and not (connection.invalidated or connection.closed):
                with self._lock:
                    self._idle.append(connection)

    def _page(
        self,
        name: str,
        state: str | None,
        initializer: str | None,
        order_by: str,
        descending: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[bytes, int]:
        listing_key = (name, state, initializer, order_by, descending)
        kept = self._from_listing(listing_key, limit, offset)
        if kept is not None:
            return kept
        key = (name, state, initializer)
        cached = self._totals.get(key)
        params = {
            "name": name,
            "state": state,
            "initializer": initializer,
            "version": None if cached is None else cached[0],
            "limit": limit,
            "offset": offset,
        }
        # Best first needs the study's direction: guess the one seen last, and ask again in
        # the rare case the statement says otherwise (a study deleted and made anew).
        guess = self._directions.get(name, "maximize")
        for _ in range(3):  # again only if a row changed between the two statements
            row = self._page_keys(params, order_by, descending, guess)
            if row[0] != guess and descending is None and order_by == "value":
                guess = row[0]
                row = self._page_keys(params, order_by, descending, guess)
            direction, version, counted, listed = row
            keys = [_split(item) for item in listed.split(",")] if listed else []
            fragments = self._items(name, keys)
            if fragments is not None:
                break
        else:  # rows keep changing under us: serve them as they are now
            fragments = self._items(name, keys, as_they_are=True)
            assert fragments is not None
        items = b"[" + b",".join(fragments) + b"]"
        _remember(self._directions, name, direction)
        self._note_stable(listing_key, version, direction)
        if counted is None:  # the study row has not changed: the cached total holds
            assert cached is not None
            return items, cached[1]
        _remember(self._totals, key, (version, int(counted)))
        return items, int(counted)

    def _from_listing(self, key: _ListingKey, limit: int, offset: int) -> tuple[bytes, int] | None:
        """The page from a kept listing, if the study row is still the version it was made on."""
        listing = self._listings.get(key)
        if listing is None:
            return None
        rows = self._execute(_VERSION_SQL, {"name": key[0]})
        if rows and rows[0][0] == listing.version:
            with self._lock:
                if key in self._listings:
                    self._listings.move_to_end(key)
            page = listing.items[offset : offset + limit]
            return b"[" + b",".join(page) + b"]", len(listing.items)
        with self._lock:  # the study changed (or is gone): the page path decides
            if self._listings.get(key) is listing:
                del self._listings[key]
                self._listed_rows -= len(listing.items)
        return None

    def _note_stable(self, key: _ListingKey, version: str, direction: str) -> None:
        """Keep the whole listing once a page is served on a version ``stable_s`` old."""
        now = time.monotonic()
        with self._lock:
            seen = self._stable.get(key)
            if seen is None or seen[0] != version:
                _remember(self._stable, key, (version, now))
                return
            if now - seen[1] < self.stable_s or key in self._building:
                return
            self._building.add(key)
        try:
            self._keep_listing(key, direction)
        finally:
            with self._lock:
                self._building.discard(key)

    def _keep_listing(self, key: _ListingKey, direction: str) -> None:
        name, state, initializer, order_by, descending = key
        if descending is None:
            descending = order_by == "value" and direction == "maximize"
        params = {"name": name, "state": state, "initializer": initializer}
        filters = (state is not None, initializer is not None)
        rows = self._execute(_listing_sql(order_by, descending, *filters), params)
        if not rows:
            return
        version, listed = rows[0]
        keys = [_split(item) for item in listed.split(",")] if listed else []
        if len(keys) > LISTING_BUDGET // 2:  # too large to keep: pages walk the index
            with self._lock:  # and nobody reads it whole again on this version
                _remember(self._stable, key, (version, float("inf")))
            return
        items = self._items(name, keys)
        if items is None:
            return  # a row changed meanwhile: the next stable version will do
        with self._lock:
            old = self._listings.pop(key, None)
            self._listed_rows += len(items) - (0 if old is None else len(old.items))
            self._listings[key] = _Listing(version, items)
            while self._listed_rows > LISTING_BUDGET:
                self._listed_rows -= len(self._listings.popitem(last=False)[1].items)

    def _items(
        self, name: str, keys: list[tuple[int, str]], as_they_are: bool = False
    ) -> list[bytes] | None:
        """The items' JSON, in order; None when a row changed since ``keys`` were read."""
        with self._lock:
            found = {n: self._cached(name, n, xmin) for n, xmin in keys}
        missing = [n for n, fragment in found.items() if fragment is None]
        if missing:
            params = {"name": name, "numbers": missing}
            rows = self._execute(_items_sql(self.columns), params)
            versions = dict(keys)
            if not as_they_are and any(xmin != versions[n] for n, xmin, _ in rows):
                return None
            with self._lock:
                for n, xmin, fragment in rows:
                    found[n] = self._keep(name, n, xmin, fragment.encode())
        return [found[n] or b"" for n, _ in keys]

    def _cached(self, name: str, number: int, xmin: str) -> bytes | None:
        entry = self._fragments.get((name, number))
        if entry is None or entry[0] != xmin:
            return None
        self._fragments.move_to_end((name, number))
        return entry[1]

    def _keep(self, name: str, number: int, xmin: str, fragment: bytes) -> bytes:
        old = self._fragments.pop((name, number), None)
        self._bytes += len(fragment) - (0 if old is None else len(old[1]))
        self._fragments[(name, number)] = (xmin, fragment)
        while self._bytes > FRAGMENT_BUDGET:
            self._bytes -= len(self._fragments.popitem(last=False)[1][1])
        return fragment

    def _page_keys(
        self, params: dict[str, Any], order_by: str, descending: bool | None, direction: str
    ) -> tuple[str, str, int | None, str | None]:
        if descending is None:
            descending = order_by == "value" and direction == "maximize"
        filters = (params["state"] is not None, params["initializer"] is not None)
        rows = self._execute(_keys_sql(order_by, descending, *filters), params)
        if not rows:
            raise StudyNotFoundError(f"study {params['name']!r} does not exist")
        direction, version, counted, listed = rows[0]
        return direction, version, counted, listed

    def _execute(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """The statement's rows (read-only, so a dropped connection just means once more)."""
        try:
            return list(self._connection().exec_driver_sql(sql, params).all())
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The server dropped the connection (a restart, an idle timeout): once more.
            return list(self._connection().exec_driver_sql(sql, params).all())

    def _connection(self) -> sa.Connection:
        """The connection this page is served on: a kept one, else a new one to keep."""
        connection: sa.Connection | None = self._local.connection
        if connection is None or connection.invalidated or connection.closed:
            if connection is not None:
                connection.close()
            connection = self.db.engine.connect()
            connection.execution_options(isolation_level="AUTOCOMMIT")
            self._local.connection = connection
        return connection


_ListingKey = tuple[str, str | None, str | None, str, bool | None]


@dataclass(frozen=True)
class _Listing:
    version: str  # the study row's, when it was read
    items: list[bytes]  # every matching row's JSON, in the listing's order


_VERSION_SQL = "SELECT xmin::text FROM tuner_studies WHERE name = %(name)s"


def _split(item: str) -> tuple[int, str]:
    number, _, xmin = item.partition(":")
    return int(number), xmin


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _where(by_state: bool, by_initializer: bool) -> str:
    where = "study_name = %(name)s"
    where += " AND state = %(state)s" if by_state else ""
    return where + (" AND initializer = %(initializer)s" if by_initializer else "")


def _order(order_by: str, descending: bool) -> str:
    return f"{order_by} {'DESC' if descending else 'ASC'} NULLS LAST"


@functools.cache
def _keys_sql(order_by: str, descending: bool, by_state: bool, by_initializer: bool) -> str:
    """The study's direction and row version, the total unless ``version`` is current, and
    the page's ``number:xmin`` list in order; no row when the study does not exist."""
    where, key = _where(by_state, by_initializer), _order(order_by, descending)
    return f"""
SELECT s.direction, s.version,
    CASE WHEN s.version = %(version)s THEN NULL
        ELSE (SELECT count(*) FROM tuner_trial_results WHERE {where}) END,
    (SELECT string_agg(r.trial_number || ':' || r.xmin, ',' ORDER BY r.{key}, r.trial_number)
        FROM tuner_trial_results AS r
        WHERE r.study_name = %(name)s AND r.trial_number = ANY (ARRAY(
            SELECT trial_number FROM tuner_trial_results WHERE {where}
            ORDER BY {key}, trial_number LIMIT %(limit)s OFFSET %(offset)s)))
FROM (SELECT direction, xmin::text AS version FROM tuner_studies WHERE name = %(name)s) AS s
"""


@functools.cache
def _listing_sql(order_by: str, descending: bool, by_state: bool, by_initializer: bool) -> str:
    """The study row's version and every matching ``number:xmin`` in order, read together."""
    where, key = _where(by_state, by_initializer), _order(order_by, descending)
    return f"""
SELECT s.version,
    (SELECT string_agg(trial_number || ':' || xmin, ',' ORDER BY {key}, trial_number)
        FROM tuner_trial_results WHERE {where})
FROM (SELECT xmin::text AS version FROM tuner_studies WHERE name = %(name)s) AS s
"""


@functools.cache
def _items_sql(columns: tuple[str, ...]) -> str:
    """Rows by trial number: number, xmin and the item's JSON (fields in ``columns`` order)."""
    fields = [
        f"""'{"," if i else "{"}"{column}":' || coalesce({_json_value(column)}, 'null')"""
        for i, column in enumerate(columns)
    ]
    return f"""
SELECT r.trial_number, r.xmin::text, {" || ".join(fields)} || '}}'
FROM tuner_trial_results AS r
WHERE r.study_name = %(name)s AND r.trial_number = ANY (%(numbers)s)
"""


def _json_value(column: str) -> str:
    """SQL for one item field's JSON text (NULL for null): string concatenation costs the
    server about a third less than json_build_object over 19 fields."""
    kind = TrialResult.__table__.c[column].type.python_type
    if column in _TIMESTAMPS:  # as pydantic writes aware UTC datetimes
        utc = f"(r.{column} AT TIME ZONE 'UTC')"
        whole = f"date_part('microseconds', {utc})::bigint %% 1000000 = 0"
        return (
            f"""'"' || to_char({utc}, CASE WHEN {whole} THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"'"""
            """ ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END) || '"'"""
        )
    if kind is int or column == "params_json":  # digits; JSONB's own text
        return f"r.{column}::text"
    return f"to_json(r.{column})::text"  # strings escaped; floats (NaN quoted, as before)
