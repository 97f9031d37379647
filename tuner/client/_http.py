"""The client's HTTP transport: one httpx connection pool, retries with backoff, error mapping.

Idempotent requests (reads, and ``cancel``) are tried again on connection errors and 5xx
answers. Others are tried again only when the connection could not be opened, so the request
never left this machine; once sent, a lost answer is reported, never guessed at.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pydantic

from tuner.client._errors import ClientError, ConnectionFailed, error_from_response

M = TypeVar("M", bound=pydantic.BaseModel)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class Retry:
    """One retry about to happen: what failed, and how long the client waits first."""

    method: str
    path: str
    attempt: int  # 1 for the first retry
    delay_s: float
    reason: str


class Transport:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_backoff: float,
        on_retry: Callable[[Retry], None] | None,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url.rstrip("/")
        headers = {"User-Agent": "init-tuner-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.on_retry = on_retry
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        idempotent: bool = True,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> M:
        """A 2xx answer read as ``model``; a :class:`ClientError` for anything else."""
        response = self._send(method, path, idempotent, params, body)
        try:
            return model.model_validate_json(response.content)
        except pydantic.ValidationError as exc:  # not this API (a proxy page, another service)
            raise ClientError(
                f"{method} {self.url}{path}: the answer is not a {model.__name__}: "
                f"{exc.errors()[0]['msg']} ({response.text[:100]!r})",
                status=response.status_code,
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        idempotent: bool,
        params: dict[str, Any] | None,
        body: Any,
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.http.request(method, path, params=params, json=body)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                retryable = idempotent or isinstance(exc, _NOT_SENT)
                if attempt >= self.retries or not retryable:
                    message = self._lost(method, path, reason, attempt, retryable)
                    raise ConnectionFailed(message) from exc
                delay = self._delay(attempt)
            else:
                if response.is_success:
                    return response
                if response.status_code < 500 or not idempotent or attempt >= self.retries:
                    raise error_from_response(response)
                reason = f"{response.status_code} {response.reason_phrase}"
                delay = self._delay(attempt, response.headers.get("Retry-After"))
            attempt += 1
            if self.on_retry is not None:
                self.on_retry(Retry(method, path, attempt, delay, reason))
            time.sleep(delay)

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        delay = self.backoff * 2**attempt * (1 + random.random() / 4)  # jitter: no herds
        if retry_after is not None and retry_after.strip().isdigit():
            delay = max(delay, float(retry_after))
        return min(delay, self.max_backoff)

    def _lost(self, method: str, path: str, reason: str, retried: int, retryable: bool) -> str:
        message = f"{method} {self.url}{path} failed: {reason}"
        if not retryable:  # sent, but no answer: it might have been applied
            return f"{message}; it may or may not have been applied: look before sending it again"
        return f"{message} (after {retried} retries)" if retried else message
