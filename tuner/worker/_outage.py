"""Riding out a database that goes away and comes back: wait with backoff, never exit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import optuna
import sqlalchemy.exc

import storage

log = logging.getLogger("tuner.worker")
T = TypeVar("T")

FIRST_WAIT_S = 0.25
LONGEST_WAIT_S = 30.0


def is_outage(exc: BaseException) -> bool:
    """The database is away: ours (translated) or Optuna's storage (its own error, or a
    driver error that escaped it)."""
    return isinstance(
        exc,
        storage.DatabaseUnavailable
        | optuna.exceptions.StorageInternalError
        | sqlalchemy.exc.OperationalError
        | sqlalchemy.exc.InterfaceError
        | sqlalchemy.exc.TimeoutError,  # the process's pool full for its whole timeout
    )


def while_unavailable(fn: Callable[[], T], *, stop: threading.Event, what: str) -> T | None:
    """``fn()``, tried again with exponential backoff while the database is unavailable.

    None when the worker is told to stop first: what ``fn`` would have written is then left
    to the lease logic (the run is reaped and retried once its heartbeat is stale).
    """
    wait = FIRST_WAIT_S
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("%s: %s; trying again in %.2fs", what, exc, wait)
            if stop.wait(wait):
                return None
            wait = min(wait * 2, LONGEST_WAIT_S)
