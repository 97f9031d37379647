"""A study's trials: the list (the hot path), one trial, the best, the summary."""

import functools
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

import storage
from api.deps import DatabaseDep, SessionDep
from api.schemas import Message, OrderBy, Summary, Trial, TrialDetail, TrialPage, TrialState
from api.summary import summarize
from api.views import trial, trial_detail
from tuner.errors import InitializerError
from tuner.spec import canonical_name

router = APIRouter(prefix="/studies/{name}", tags=["trials"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "not found"}}


def _canonical(initializer: str | None) -> str | None:
    """Accept Keras spellings (``he_normal``) in filters; unknown names simply match nothing."""
    if initializer is None:
        return None
    try:
        return canonical_name(initializer)
    except InitializerError:
        return initializer


@router.get("/trials", response_model=TrialPage, responses=_NOT_FOUND)
async def list_trials(
    request: Request,
    name: str,
    state: TrialState | None = None,
    initializer: Annotated[
        str | None, Query(description="canonical name or alias, e.g. kaiming_normal / he_normal")
    ] = None,
    order_by: Annotated[
        OrderBy, Query(description="column to order by; `value` puts the best first")
    ] = "value",
    descending: Annotated[
        bool | None,
        Query(description="default: best first for `value`, ascending for other columns"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """A study's finished trials, filtered, ordered and paged (rows without a value last)."""
    # The hot path: one statement on PostgreSQL, whose JSON goes out as it comes (the
    # schema is still TrialPage, see OpenAPI). Its database work runs on a few threads of
    # its own (Settings.trials_threads): many threads doing short queries contend for the
    # GIL and each waits its switch interval after every round trip.
    page = functools.partial(
        _pages(request).page,
        name,
        state=state,
        initializer=_canonical(initializer),
        order_by=order_by,
        descending=descending,
        limit=limit,
        offset=offset,
    )
    body = await anyio.to_thread.run_sync(page, limiter=request.app.state.trials_limiter)
    return Response(body, media_type="application/json")


def _pages(request: Request) -> storage.TrialPages:
    """The app's page reader, made on first use (it caches per study; one per database)."""
    state = request.app.state
    pages: storage.TrialPages | None = getattr(state, "trial_pages", None)
    if pages is None or pages.db is not state.db:
        pages = state.trial_pages = storage.TrialPages(state.db)
    return pages


@router.get("/trials/{number}", response_model=TrialDetail, responses=_NOT_FOUND)
def get_trial(
    session: SessionDep, name: str, number: Annotated[int, Path(ge=0, le=2**31 - 1)]
) -> TrialDetail:
    """One finished trial of a study, with its t=0 diagnostics, replicates and manifest."""
    row = storage.get_trial_result(session, name, number)
    if row is None:
        if storage.get_study_record(session, name) is None:
            raise storage.StudyNotFoundError(f"study {name!r} does not exist")
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"study {name!r} has no finished trial {number}"
        )
    return trial_detail(session, row)


@router.get("/best", response_model=Trial, responses=_NOT_FOUND)
def get_best_trial(session: SessionDep, name: str) -> Trial:
    """The best complete trial so far, by the study's direction."""
    rows = storage.list_trial_results(session, name, state="complete", limit=1)
    if not rows or rows[0].value is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"study {name!r} has no complete trial yet")
    return trial(rows[0])


@router.get("/summary", response_model=Summary, responses=_NOT_FOUND)
def get_summary(request: Request, db: DatabaseDep, name: str) -> Summary:
    """Per-initializer counts, best, mean and median value, and Optuna's importances."""
    return summarize(db, name, cache=request.app.state.importance_cache)
