"""The API's one settings object, read from ``TUNER_*`` environment variables."""

import functools
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

import storage

TokenKind = Literal["admin", "read"]
TOKEN_KINDS: tuple[TokenKind, ...] = ("admin", "read")


class Settings(BaseSettings):
    """Everything the API is configured with (``TUNER_DATABASE_URL``, ``TUNER_API_TOKENS``...).

    ``api_tokens`` is a comma-separated list of ``kind:token`` pairs, kind ``admin`` (may
    change things) or ``read`` (may only look); empty turns authentication off.
    """

    model_config = SettingsConfigDict(env_prefix="TUNER_", extra="ignore", frozen=True)

    database_url: str = Field(
        default_factory=storage.resolve_database_url,
        description="SQLAlchemy URL of the database shared with the workers",
    )
    api_tokens: str = Field(
        "",
        repr=False,
        description="comma-separated kind:token pairs (kind admin or read); empty = no auth",
    )
    stale_after_s: float = Field(
        60.0, gt=0, description="a worker without a heartbeat for this long is not alive"
    )
    dashboard: bool = Field(True, description="serve the Optuna dashboard at /dashboard")
    data_dir: Path | None = Field(
        None,
        description="folder that dataset and pretrained paths in submitted studies must stay "
        "in; unset: submissions over REST may name no files",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="the largest request body accepted (413 beyond)"
    )
    trials_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="threads per process serving GET /v1/studies/{name}/trials (the hot path)",
    )
    db_connections: int | None = Field(
        None,
        ge=2,
        le=1000,
        description="PostgreSQL connections an API process holds at most (Optuna's storage and "
        "the dashboard included), more than trials_threads (each keeps one); unset: "
        "10, or trials_threads + 4 if that is more",
    )

    @model_validator(mode="after")
    def _room_for_pages(self) -> Self:
        if self.db_connections is not None and self.db_connections <= self.trials_threads:
            raise ValueError(
                f"TUNER_DB_CONNECTIONS ({self.db_connections}) must exceed "
                f"TUNER_TRIALS_THREADS ({self.trials_threads}): each page thread keeps one"
            )
        return self

    @property
    def connections(self) -> int:
        """The most connections an API process holds (``db_connections``, else derived)."""
        if self.db_connections is not None:
            return self.db_connections
        return max(10, self.trials_threads + 4)

    @field_validator("api_tokens")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        if not parse_tokens(value) and value.strip():
            # "," or " , ": set, but no token in it; never read as "authentication off"
            raise ValueError("TUNER_API_TOKENS is set but holds no 'kind:token' pair")
        return value

    @property
    def tokens(self) -> tuple[tuple[TokenKind, str], ...]:
        """The configured ``(kind, token)`` pairs; empty when authentication is off."""
        return parse_tokens(self.api_tokens)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens)


def parse_tokens(text: str) -> tuple[tuple[TokenKind, str], ...]:
    """Parse ``"admin:tok1,read:tok2"``; a malformed entry is a ``ValueError`` naming it."""
    pairs: list[tuple[TokenKind, str]] = []
    for index, raw in enumerate(text.split(",")):
        entry = raw.strip()
        if not entry:
            continue
        kind, sep, token = entry.partition(":")
        kind = kind.strip().lower()
        token = token.strip()
        if not sep or not token:
            raise ValueError(f"api token #{index + 1} must look like 'admin:TOKEN' or 'read:TOKEN'")
        if kind == "admin":
            pairs.append(("admin", token))
        elif kind == "read":
            pairs.append(("read", token))
        else:
            raise ValueError(f"api token #{index + 1} has kind {kind!r}; use 'admin' or 'read'")
    return tuple(pairs)


@functools.lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
