"""Service commands: a worker joining a database, and the API server.

torch, the worker, storage, uvicorn and the API are imported inside the commands, so that
``tuner --help`` does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tuner.cli._common import DatabaseUrl, FastMath, Population, Slots, Threads, app, err

if TYPE_CHECKING:
    from api import Settings


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    slots: Slots = 1,
    heartbeat_interval: Annotated[
        float, typer.Option(min=0.05, envvar="TUNER_HEARTBEAT_INTERVAL", help="seconds")
    ] = 10.0,
    grace: Annotated[
        float,
        typer.Option(min=0.1, envvar="TUNER_GRACE", help="seconds without heartbeat = lost"),
    ] = 60.0,
    study: Annotated[list[str] | None, typer.Option(help="only these studies (repeatable)")] = None,
    exit_when_idle: Annotated[
        bool, typer.Option(help="stop once nothing is left to claim or running")
    ] = False,
    population: Population = 0,
    fast: FastMath = None,
    threads: Threads = None,
) -> None:
    """Join a database and run trials of any study with budget left, until stopped.

    SIGTERM or Ctrl-C stops claiming and hands running trials back at their next epoch.
    """
    import signal

    import storage
    from tuner.cli._progress import LogObserver
    from tuner.worker import Worker, WorkerConfig

    if exit_when_idle and not study:
        raise typer.BadParameter("--exit-when-idle needs --study", param_hint="--exit-when-idle")
    db = storage.Database(storage.resolve_database_url(database_url))
    db.upgrade()
    config = WorkerConfig(
        device=device,
        slots=slots,
        heartbeat_interval=heartbeat_interval,
        grace=grace,
        poll_interval=min(2.0, heartbeat_interval),
        studies=tuple(study) if study else None,
        exit_when_idle=exit_when_idle,
        population=population,
        fast=fast,
        threads=threads,
    )
    runner = Worker(db, config, observer=LogObserver())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    err.print(f"worker {runner.name} on {runner.device} ({slots} slot(s)) joined {db.shown_url}")
    try:
        ran = runner.run()
    finally:
        db.dispose()
    err.print(f"worker {runner.name} stopped after {ran} trial(s)")


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option(min=0, help="embedded worker slots (0: run `tuner worker`s instead)")
    ] = 1,
    device: Annotated[str, typer.Option(help="device of the embedded worker")] = "auto",
    dashboard: Annotated[
        bool, typer.Option(help="serve the Optuna dashboard at /dashboard")
    ] = True,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the REST API (and the Optuna dashboard) with embedded workers on one database.

    Without TUNER_API_TOKENS everything is open, so only a loopback address may be bound.
    The other TUNER_* settings of the API (TUNER_DATA_DIR, TUNER_STALE_AFTER_S, ...) apply too.
    """
    import signal
    import threading

    import uvicorn

    import storage
    from api import create_app
    from tuner.cli._progress import LogObserver
    from tuner.worker import Worker, WorkerConfig

    url = storage.resolve_database_url(database_url)
    settings = serve_settings(url, dashboard=dashboard)
    if not settings.auth_enabled and not _loopback(host):
        raise typer.BadParameter(
            f"refusing to serve on {host} without authentication: set TUNER_API_TOKENS "
            "(e.g. 'admin:<secret>,read:<secret>') or bind a loopback address",
            param_hint="--host",
        )
    db = storage.Database(url)
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

    from api import Settings

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
