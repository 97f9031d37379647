"""Dependencies the routes declare: the database, a session, the settings, authorization.

The cheap ones are ``async`` so FastAPI resolves them without a thread-pool hop.
"""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

import storage
from api.auth import CHALLENGE, Denied, check_access
from api.config import Settings, TokenKind
from api.schemas import Message

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="`admin:` tokens may do everything, `read:` tokens only GET (TUNER_API_TOKENS)",
)


async def get_db(request: Request) -> storage.Database:
    """The application's one :class:`storage.Database` (opened by the lifespan handler)."""
    db: storage.Database = request.app.state.db
    return db


async def get_app_settings(request: Request) -> Settings:
    """The settings the application was created with (:func:`api.get_settings` by default).

    Read from the app rather than through ``dependency_overrides``: any override makes
    FastAPI re-analyse every dependency of every request (about 0.5 ms each).
    """
    settings: Settings = request.app.state.settings
    return settings


DatabaseDep = Annotated[storage.Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(db: DatabaseDep) -> Iterator[Session]:
    """A session for one request: committed when the route succeeds, else rolled back."""
    with db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


async def authorize(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TokenKind | None:
    """Any valid token may read; changing something needs an admin token (when auth is on)."""
    try:
        return check_access(
            settings, request.method, credentials.credentials if credentials else None
        )
    except Denied as exc:
        headers = CHALLENGE if exc.status == 401 else None
        raise HTTPException(exc.status, exc.detail, headers=headers) from None


Authorized = Depends(authorize)

#: What every authenticated route may answer besides its own (documented in the OpenAPI).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Message, "description": why, "content": {"application/json": {}}}
    for code, why in (
        (400, "the body is not JSON"),
        (401, "no token, or an unknown one (when auth is on)"),
        (403, "a read token asked to change something"),
        (413, "the request body is over the limit"),
        (503, "the database is unavailable; retry later"),
    )
}
