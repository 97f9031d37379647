"""Exception handlers: the engine's and storage's errors as HTTP answers.

Only :mod:`api` speaks HTTP; :mod:`tuner` and :mod:`storage` raise their own exceptions,
translated here once for every route.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import storage
from tuner.errors import SpecError, SpecIssue, StudyStateError, TaskError

log = logging.getLogger("api")


def validation_detail(issues: list[SpecIssue]) -> list[dict[str, Any]]:
    """Spec issues in FastAPI's validation-error shape, located in the request body."""
    return [
        {"loc": ["body", *issue.loc], "msg": issue.msg, "type": "value_error"} for issue in issues
    ]


async def _spec_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SpecError)
    return JSONResponse({"detail": validation_detail(exc.issues)}, status_code=422)


async def _task_error(request: Request, exc: Exception) -> JSONResponse:
    detail = [{"loc": ["body", "task"], "msg": str(exc), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The driver's text may name hosts and tables: it goes to the log, not to the client.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the database is unavailable; try again later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    # Not an outage: a bug to fix, not a reason for the client to retry.
    log.error("storage error on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "the database refused the request"}, status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    """Register the translations (the most specific exception class wins)."""
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(TaskError, _task_error)
    app.add_exception_handler(StudyStateError, _conflict)
    app.add_exception_handler(storage.StudyNotFoundError, _not_found)
    app.add_exception_handler(storage.StudyExistsError, _conflict)
    app.add_exception_handler(storage.DatabaseUnavailable, _unavailable)
    app.add_exception_handler(storage.StorageError, _storage_error)
