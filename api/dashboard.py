"""The Optuna dashboard on the same database, behind the API's tokens.

optuna-dashboard is a WSGI app with hard-coded URLs (``/dashboard``, ``/api/...``,
``/static/...``), so it is mounted at the root, after the API's own routes. This pure-ASGI
wrapper guards it: with tokens configured, reading needs any token and writing (any method
but GET/HEAD) an admin token. Browsers cannot send bearer headers, so the token may also come
in the ``tuner_token`` cookie, set by visiting ``/dashboard?token=...`` once.
"""

import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any, cast

import optuna_dashboard
from a2wsgi import WSGIMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

import storage
from api.auth import CHALLENGE, TOKEN_COOKIE, Denied, bearer_token, check_access, cookie_value
from api.config import Settings

#: The path prefixes optuna-dashboard serves; anything else under the root is a 404.
_PREFIXES = ("/dashboard", "/api/", "/static/", "/csv/")
_PATHS = ("/", "/favicon.ico")


#: The dashboard's own "delete this study" (and its trials) routes.
_STUDY_DELETE = re.compile(r"^/api/studies/\d+/?$")


class DashboardApp:
    """ASGI app serving optuna-dashboard (built on first use) with token checks."""

    def __init__(self, settings: Settings, get_db: Callable[[], storage.Database]) -> None:
        self._settings = settings
        self._get_db = get_db
        self._app: ASGIApp | None = None
        self._lock = threading.Lock()

    def _dashboard(self) -> ASGIApp:
        with self._lock:
            if self._app is None:
                wsgi = optuna_dashboard.wsgi(self._get_db().optuna_storage())
                self._app = cast(ASGIApp, WSGIMiddleware(wsgi))
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"][len(scope.get("root_path", "")) :] or "/"
        if path not in _PATHS and not path.startswith(_PREFIXES):
            await _json(send, 404, {"detail": "Not Found"})
            return
        if self._settings.auth_enabled:
            headers = _headers(scope)
            query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if path.rstrip("/") == "/dashboard" and "token" in query:
                await self._login(scope, send, query["token"][0])
                return
            token = bearer_token(_first(headers, "authorization")) or cookie_value(
                headers.get("cookie", []), TOKEN_COOKIE
            )
            try:
                check_access(self._settings, scope["method"], token)
            except Denied as exc:
                detail = exc.detail
                if exc.status == 401:
                    detail += "; in a browser, open /dashboard?token=YOUR_TOKEN once"
                extra = CHALLENGE if exc.status == 401 else {}
                await _json(send, exc.status, {"detail": detail}, extra)
                return
        if scope["method"] == "DELETE" and _STUDY_DELETE.match(path):
            # Optuna's tables alone would lose the study under the tuner's feet (its runs,
            # results and workers are in the tuner_ tables): refused, not half-done.
            detail = "delete studies with the tuner, not the dashboard: its runs live elsewhere"
            await _json(send, 405, {"detail": detail}, {"allow": "GET, POST, PUT, PATCH"})
            return
        try:
            app = self._app if self._app is not None else await run_in_threadpool(self._dashboard)
        except storage.StorageError:
            await _json(send, 503, {"detail": "the database is unavailable; try again later"})
            return
        await app(scope, receive, send)

    async def _login(self, scope: Scope, send: Send, token: str) -> None:
        """``/dashboard?token=T``: remember a valid token in a cookie, then show the page."""
        try:
            check_access(self._settings, "GET", token)
        except Denied as exc:
            await _json(send, exc.status, {"detail": exc.detail}, CHALLENGE)
            return
        root = scope.get("root_path", "")
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        value = urllib.parse.quote(token, safe="")
        cookie = f"{TOKEN_COOKIE}={value}; Path={root or '/'}; HttpOnly; SameSite=Strict{secure}"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", f"{root}/dashboard".encode()),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _headers(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in scope.get("headers", []):
        out.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


async def _json(send: Send, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
