"""The client's exceptions: one root, :class:`ClientError`, under the engine's ``TunerError``.

Every error answer of the service becomes one of these, carrying the HTTP status and the
server's ``detail``; a request that never got an answer is :class:`ConnectionFailed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from tuner.errors import SpecError, SpecIssue, TunerError

if TYPE_CHECKING:
    from tuner.client._models import Study


class ClientError(TunerError):
    """Root of the client's errors. ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ConnectionFailed(ClientError):
    """No answer: the service is unreachable, or the connection dropped or timed out."""


class RequestRejected(ClientError):
    """A 4xx answer: the request itself is wrong; sending it again will not help."""


class AuthError(RequestRejected):
    """401 (no or unknown token) or 403 (a read token on a route that changes things)."""


class NotFound(RequestRejected):
    """404: no such study (or trial, or no complete trial yet for ``best``)."""


class Conflict(RequestRejected):
    """409: the name is taken, or the study's state forbids the change."""


class InvalidRequest(RequestRejected, SpecError):
    """422: the service refused the content; ``issues`` names every field (``search.lr``)."""

    def __init__(self, issues: Sequence[SpecIssue], *, detail: Any = None) -> None:
        SpecError.__init__(self, issues)
        self.status, self.detail = 422, detail


class ServerError(ClientError):
    """A 5xx answer: the service (or its database) failed; the request may be retried."""


class WaitTimeout(ClientError):
    """``wait`` ran out of time; ``study`` is the last state seen."""

    def __init__(self, message: str, study: Study) -> None:
        super().__init__(message)
        self.study = study


_BY_STATUS: dict[int, type[RequestRejected]] = {
    401: AuthError,
    403: AuthError,
    404: NotFound,
    409: Conflict,
}


def _issues(detail: list[Any]) -> list[SpecIssue]:
    issues = []
    for item in detail:
        loc = list(item.get("loc") or []) if isinstance(item, dict) else []
        if loc[:1] == ["body"]:
            loc = loc[1:]  # the definition is the whole body: name its fields as a spec does
        msg = str(item.get("msg", item)) if isinstance(item, dict) else str(item)
        issues.append(SpecIssue(tuple(loc), msg.removeprefix("Value error, ")))
    return issues


def error_from_response(response: httpx.Response) -> ClientError:
    """The exception for an error answer, with the server's detail in its message."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if status == 422 and isinstance(detail, list):
        return InvalidRequest(_issues(detail), detail=detail)
    text = detail if isinstance(detail, str) else (response.text.strip()[:300] or None)
    request = response.request
    message = f"{request.method} {request.url.path}: {status} {response.reason_phrase}"
    if text:
        message += f": {text}"
    if status >= 500:
        return ServerError(message, status=status, detail=detail)
    kind = _BY_STATUS.get(status, RequestRejected)
    return kind(message, status=status, detail=detail)
