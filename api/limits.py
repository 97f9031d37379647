"""A bound on what one request may send: bodies over ``max_body_bytes`` answer 413."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Pure ASGI middleware: refuse a body larger than ``limit`` bytes, from its
    Content-Length when it gives one, else while it streams in (nothing larger is read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        seen, exceeded, refused = 0, False, False

        async def counted() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # read no further: the app sees the client gone
                exceeded = True
                return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal refused
            if not exceeded:
                await send(message)
            elif not refused:  # whatever the app answers a cut-off body, the answer is 413
                refused = True
                await self._refuse(send)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not refused:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        detail: dict[str, Any] = {"detail": f"the request body is over {self.limit:,} bytes"}
        body = json.dumps(detail).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
