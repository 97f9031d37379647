"""The client: :class:`TunerClient`, one method per REST route."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tuner.client._errors import (
    WaitTimeout,
)
from tuner.client._http import Retry, Transport
from tuner.client._models import (
    Leaderboard,
    Study,
    StudyPage,
    Summary,
    Trial,
    TrialDetail,
    TrialPage,
    WorkerList,
)
from tuner.spec import StudySpec, read_definition


def _definition(spec: Mapping[str, Any] | StudySpec | str | Path) -> dict[str, Any]:
    if isinstance(spec, StudySpec):
        return spec.to_json()
    if isinstance(spec, str | Path):
        return read_definition(spec)
    return dict(spec)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class TunerClient:
    """A connection to one service. Use it as a context manager, or call :meth:`close`.

    ``token`` is sent as ``Authorization: Bearer <token>``; ``timeout`` bounds each HTTP
    request (seconds); ``retries`` is how often an idempotent request is tried again, after
    ``backoff * 2**n`` seconds (plus jitter, at most ``max_backoff``, or the server's
    ``Retry-After``). ``on_retry`` is told about each retry before its wait.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        on_retry: Callable[[Retry], None] | None = None,
    ) -> None:
        self._transport = Transport(
            url,
            token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            on_retry=on_retry,
        )
        self._call = self._transport.call
        self.url = self._transport.url

    def __enter__(self) -> TunerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.http.close()

    def __repr__(self) -> str:
        return f"TunerClient({self.url!r})"

    # -- studies -------------------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any] | StudySpec | str | Path) -> Study:
        """Queue a study: a definition as a mapping, a :class:`StudySpec`, or a file path.

        The service validates it (:class:`InvalidRequest` names each bad field) and refuses
        a taken name (:class:`Conflict`).
        """
        body = _definition(spec)
        return self._call("POST", "/v1/studies", Study, body=body, idempotent=False)

    def get(self, name: str) -> Study:
        """A study's status, trial counts, best trial so far and definition."""
        return self._call("GET", f"/v1/studies/{_quote(name)}", Study)

    def studies(self, *, status: str | None = None, limit: int = 100, offset: int = 0) -> StudyPage:
        """Studies, newest first (optionally only those with ``status``)."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return self._call("GET", "/v1/studies", StudyPage, params=params)

    def cancel(self, name: str) -> Study:
        """Stop a study (no new trials; running ones end at their next epoch).

        Idempotent, so retried like a read; :class:`Conflict` if it has already finished.
        """
        return self._call("POST", f"/v1/studies/{_quote(name)}/cancel", Study)

    def wait(
        self,
        name: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        on_progress: Callable[[Study], None] | None = None,
    ) -> Study:
        """Poll the study until it is completed, cancelled or failed, and return it.

        ``on_progress`` gets the study after every poll. After ``timeout`` seconds (None:
        no limit) :class:`WaitTimeout` is raised, carrying the last state seen.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            study = self.get(name)
            if on_progress is not None:
                on_progress(study)
            if study.done:
                return study
            pause = poll_interval
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(
                        f"study {name!r} is still {study.status} after {timeout:g} s "
                        f"({study.counts.finished}/{study.n_trials} trials)",
                        study,
                    )
                pause = min(pause, left)
            time.sleep(pause)

    # -- trials --------------------------------------------------------------------------------

    def trials(
        self,
        name: str,
        *,
        state: str | None = None,
        initializer: str | None = None,
        order_by: str = "value",
        descending: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> TrialPage:
        """One page of a study's finished trials (``order_by="value"``: best first)."""
        params: dict[str, Any] = {"order_by": order_by, "limit": limit, "offset": offset}
        for key, value in (("state", state), ("initializer", initializer)):
            if value is not None:
                params[key] = value
        if descending is not None:
            params["descending"] = "true" if descending else "false"
        path = f"/v1/studies/{_quote(name)}/trials"
        return self._call("GET", path, TrialPage, params=params)

    def iter_trials(
        self,
        name: str,
        *,
        state: str | None = None,
        initializer: str | None = None,
        order_by: str = "trial_number",
        descending: bool | None = None,
        page_size: int = 500,
    ) -> Iterator[Trial]:
        """Every matching trial, page by page. Ordered by trial number by default; while a
        study runs, a value order shifts between pages, so prefer this one then."""
        offset = 0
        while True:
            page = self.trials(
                name,
                state=state,
                initializer=initializer,
                order_by=order_by,
                descending=descending,
                limit=page_size,
                offset=offset,
            )
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def trial(self, name: str, number: int) -> TrialDetail:
        """One finished trial with its manifest, t=0 diagnostics and replicates
        (:class:`NotFound` if it has not finished)."""
        return self._call("GET", f"/v1/studies/{_quote(name)}/trials/{number}", TrialDetail)

    def best(self, name: str) -> Trial:
        """The best complete trial so far (:class:`NotFound` when there is none yet)."""
        return self._call("GET", f"/v1/studies/{_quote(name)}/best", Trial)

    def summary(self, name: str) -> Summary:
        """Per-initializer counts, best, mean and median value, and parameter importances."""
        return self._call("GET", f"/v1/studies/{_quote(name)}/summary", Summary)

    def leaderboard(self, name: str, top: int = 10) -> Leaderboard:
        """The study, its ``top`` best trials and its per-initializer results."""
        study = self.get(name)
        page = self.trials(name, limit=top)
        summary = self.summary(name)
        return Leaderboard(
            study, page.items, page.total, summary.initializers, summary.seed_variance
        )

    def workers(self) -> WorkerList:
        """Live workers, their devices and the trials they run."""
        return self._call("GET", "/v1/workers", WorkerList)
