"""Service commands: a worker joining a database, and the API server."""

from __future__ import annotations

from typing import Annotated

import typer

import storage
from tuner.cli._common import DatabaseUrl, FastMath, Population, Slots, Threads, app, err
from tuner.cli._common import fmt as _fmt
from tuner.worker import RunObserver, Worker, WorkerConfig


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
    runner = Worker(db, config, observer=_LogObserver())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    err.print(f"worker {runner.name} on {runner.device} ({slots} slot(s)) joined {db.url}")
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
    """
    import os
    import signal
    import threading

    import uvicorn

    if not os.environ.get("TUNER_API_TOKENS", "").strip() and not _loopback(host):
        raise typer.BadParameter(
            f"refusing to serve on {host} without authentication: set TUNER_API_TOKENS "
            "(e.g. 'admin:<secret>,read:<secret>') or bind a loopback address",
            param_hint="--host",
        )
    url = storage.resolve_database_url(database_url)
    # The app is loaded by uvicorn from its import path and reads these settings.
    os.environ["TUNER_DATABASE_URL"] = url
    os.environ["TUNER_DASHBOARD"] = "true" if dashboard else "false"
    db = storage.Database(url)
    db.optuna_storage()
    db.upgrade()
    embedded: Worker | None = None
    thread: threading.Thread | None = None
    if workers:
        embedded = Worker(db, WorkerConfig(device=device, slots=workers), observer=_LogObserver())
        thread = threading.Thread(target=embedded.run, name="embedded-worker", daemon=True)
        thread.start()
    err.print(
        f"serving {url} on http://{host}:{port} (API /v1, docs /docs"
        f"{', dashboard /dashboard' if dashboard else ''}; {workers} worker slot(s))"
    )
    # uvicorn re-raises the signal that stopped it once it has shut down: with these
    # handlers in place that lands here, and the worker hands its trials back below.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: embedded.stop() if embedded else None)
    try:
        uvicorn.Server(
            uvicorn.Config("api:create_app", factory=True, host=host, port=port)
        ).run()  # returns on SIGINT/SIGTERM
    finally:
        if embedded is not None and thread is not None:
            embedded.stop()  # running trials are handed back at their next epoch
            thread.join()
        db.dispose()


class _LogObserver(RunObserver):
    """One line per finished trial, for worker logs."""

    def trial_finished(self, row: storage.TrialResultData) -> None:
        err.print(
            f"{row.study_name} #{row.trial_number}: {row.state} ({row.stop_reason}) "
            f"value={_fmt(row.value)} epochs={row.epochs_run} {row.duration_s:.1f}s",
            highlight=False,
        )
