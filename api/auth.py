"""Bearer-token authentication: admin tokens may change things, read tokens may look.

With no tokens configured every request is let through (``tuner serve`` then binds to
loopback only). Tokens are compared in constant time, against every configured token.
"""

import hmac
import urllib.parse
from collections.abc import Iterable

from api.config import Settings, TokenKind

#: Methods that change something; they need an admin token.
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The cookie the dashboard's browser pages carry the token in.
TOKEN_COOKIE = "tuner_token"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def token_kind(settings: Settings, token: str | None) -> TokenKind | None:
    """The kind of ``token`` (admin or read), or None when it is missing or unknown."""
    if not token:
        return None
    given = token.encode()
    found: TokenKind | None = None
    for kind, known in settings.tokens:
        # No early exit: every comparison runs, so timing tells nothing about which matched.
        if hmac.compare_digest(given, known.encode()) and (found is None or kind == "admin"):
            found = kind
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def cookie_value(cookie_headers: Iterable[str], name: str) -> str | None:
    """The value of cookie ``name`` in ``Cookie`` header values, else None."""
    for header in cookie_headers:
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return urllib.parse.unquote(value.strip().strip('"')) or None
    return None


class Denied(Exception):
    """A request is not allowed: ``status`` is 401 (who are you?) or 403 (not you)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def check_access(settings: Settings, method: str, token: str | None) -> TokenKind | None:
    """Allow or refuse a request (:class:`Denied`); returns the token's kind, None if no auth."""
    if not settings.auth_enabled:
        return None
    kind = token_kind(settings, token)
    if kind is None:
        detail = "an API token is required" if not token else "the API token is not valid"
        raise Denied(401, detail)
    if method.upper() in MUTATING_METHODS and kind != "admin":
        raise Denied(403, "this needs an admin token; a read token may only look")
    return kind
