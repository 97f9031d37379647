"""Operations: liveness, readiness, Prometheus metrics (outside /v1)."""

import logging

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

import storage
from api.deps import COMMON_RESPONSES, Authorized, DatabaseDep
from api.schemas import Health, Readiness
from tuner.spec import INITIALIZERS

log = logging.getLogger("api")

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process is up and the engine imports (no database, no token)."""
    return Health(status="ok", initializers=len(INITIALIZERS))


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database is not usable yet"}},
)
def readyz(request: Request, db: DatabaseDep) -> Response:
    """Readiness: the database answers and its ``tuner_`` tables are migrated (no token)."""
    try:
        revision = db.current_revision()
        if revision is None:
            # The startup migration failed (e.g. the database was down): try it again here,
            # so a replica that started before its database becomes ready without a restart.
            request.app.state.migrate()
            revision = db.current_revision()
    except storage.StorageError as exc:
        log.warning("not ready: %s", exc)
        body = Readiness(status="unavailable", detail="the database is not reachable")
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    if revision is None:
        body = Readiness(status="unavailable", detail="the tuner_ tables are not migrated")
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(Readiness(status="ready", revision=revision).model_dump())


@router.get(
    "/metrics",
    dependencies=[Authorized],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **COMMON_RESPONSES,
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: trials by study and state, queue depth, durations, workers."""
    body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
