"""``tuner serve``'s runner: the REST API, the dashboard and embedded workers on one database.

Registered under the ``tuner.service`` entry point, so the command line finds it without
``tuner`` importing ``api`` (the service depends on the engine, never the other way).
"""

from __future__ import annotations

import typer

from api.config import Settings
from tuner.cli._common import err


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    *,
    host: str,
    port: int,
    workers: int,
    device: str,
    dashboard: bool,
    database_url: str | None,
) -> None:
    """Serve until stopped; embedded workers hand their trials back on the way out."""
    import signal
    import threading

    import uvicorn

    import storage
    from api._app import create_app
    from tuner.cli._progress import LogObserver
    from tuner.worker import Worker, WorkerConfig, worker_database

    url = storage.resolve_database_url(database_url)
    settings = serve_settings(url, dashboard=dashboard)
    if not settings.auth_enabled and not _loopback(host):
        raise typer.BadParameter(
            f"refusing to serve on {host} without authentication: set TUNER_API_TOKENS "
            "(e.g. 'admin:<secret>,read:<secret>') or bind a loopback address",
            param_hint="--host",
        )
    db = worker_database(url, workers)  # the embedded worker's; the app opens its own
    db.optuna_storage()
    db.upgrade()
    embedded: Worker | None = None
    thread: threading.Thread | None = None
    if workers:
        config = WorkerConfig(device=device, slots=workers)
        embedded = Worker(db, config, observer=LogObserver())
        thread = threading.Thread(target=embedded.run, name="embedded-worker", daemon=True)
        thread.start()
    err.print(
        f"serving {db.shown_url} on http://{host}:{port} (API /v1, docs /docs"
        f"{', dashboard /dashboard' if dashboard else ''}; {workers} worker slot(s))"
    )
    # uvicorn re-raises the signal that stopped it once it has shut down: with these
    # handlers in place that lands here, and the worker hands its trials back below.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: embedded.stop() if embedded else None)
    try:
        # One process serves: uvicorn takes the app object, built from these settings (no
        # import string, so nothing travels through the environment).
        uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port)).run()
    finally:
        if embedded is not None and thread is not None:
            embedded.stop()  # running trials are handed back at their next epoch
            thread.join()
        db.dispose()


def serve_settings(database_url: str, *, dashboard: bool) -> Settings:
    """The API's settings for ``tuner serve``: the command's database and dashboard choice,
    everything else from the ``TUNER_*`` environment (read, never written)."""
    from pydantic import ValidationError

    try:
        return Settings(database_url=database_url, dashboard=dashboard)
    except ValidationError as exc:
        problems = "; ".join(
            f"TUNER_{'_'.join(map(str, e['loc'])).upper()}: "
            + str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        )
        err.print(
            f"[red]error:[/] invalid API settings: {problems}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
