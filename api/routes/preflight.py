"""Preflight: check a study definition before submitting it (nothing is written)."""

import functools
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Body, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import SettingsDep
from api.preflight_schemas import Preflight
from tuner.preflight import run_preflight
from tuner.spec import parse_spec

router = APIRouter(prefix="/preflight", tags=["preflight"])


def _limiter(app: FastAPI) -> anyio.CapacityLimiter:
    """One preflight at a time per process: each one keeps the CPU busy for seconds."""
    limiter: anyio.CapacityLimiter | None = getattr(app.state, "preflight_limiter", None)
    if limiter is None:
        limiter = app.state.preflight_limiter = anyio.CapacityLimiter(1)
    return limiter


@router.post(
    "",
    response_model=Preflight,
    responses={422: {"description": "the definition is invalid: each problem with its field path"}},
)
async def preflight(
    request: Request,
    settings: SettingsDep,
    definition: Annotated[
        dict[str, Any],
        Body(description="a study definition, as `POST /v1/studies` takes it"),
    ],
    prune_inits: Annotated[
        bool, Query(description="also return the spec without the flagged initializers")
    ] = False,
) -> Preflight:
    """Run the preflight checks of a study definition on the server's CPU.

    Overfit one batch, an lr range test by decades with a proposed `search.lr` range, a
    generalization check against chance, and the t=0 diagnostics of every initializer. The
    verdict is `ok` or `problems`; an invalid definition is a 422 with its field paths.
    Nothing is written to the database.
    """
    # Paths in a definition from the network stay inside the configured data folder.
    parse = functools.partial(parse_spec, base_dir=settings.data_dir, confine=True)
    spec = await run_in_threadpool(parse, definition)
    run = functools.partial(run_preflight, spec, device="cpu", prune_inits=prune_inits)
    report = await anyio.to_thread.run_sync(run, limiter=_limiter(request.app))
    return Preflight.model_validate(report.to_json())
