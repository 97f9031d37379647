"""Service commands: a worker joining a database, and the API server.

torch, the worker, storage, uvicorn and the API are imported inside the commands, so that
``tuner --help`` does not pay for them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tuner.cli._common import (
    Compile,
    DatabaseUrl,
    FastMath,
    Population,
    Slots,
    Threads,
    app,
    err,
)
from tuner.cli._scale import (
    CpusPerWorker,
    GpusPerWorker,
    MaxRestarts,
    RayAddress,
    RayFlag,
    Replicas,
    Spread,
    ray_settings,
    run_on_ray,
)

#: The entry-point group where the service (the ``api`` package) registers its runner.
SERVICE_GROUP = "tuner.service"


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
        bool,
        typer.Option(
            help="stop once nothing is left to claim, running or to retry (in --study's "
            "studies, else in any study)"
        ),
    ] = False,
    population: Population = 0,
    fast: FastMath = None,
    compile: Compile = False,
    threads: Threads = None,
    ray: RayFlag = False,
    ray_address: RayAddress = None,
    replicas: Replicas = None,
    gpus_per_worker: GpusPerWorker = None,
    cpus_per_worker: CpusPerWorker = None,
    max_restarts: MaxRestarts = None,
    spread: Spread = None,
) -> None:
    """Join a database and run trials of any study with budget left, until stopped.

    SIGTERM or Ctrl-C stops claiming and hands running trials back at their next epoch.
    With --ray, --replicas such workers run as Ray actors, and this command waits for them.
    """
    import signal

    import storage
    from tuner.worker import Worker, WorkerConfig, worker_database

    pool = ray_settings(
        ray, ray_address, replicas, gpus_per_worker, cpus_per_worker, max_restarts, spread
    )
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
        compile=compile,
        threads=threads,
    )
    if pool is not None:
        raise typer.Exit(run_on_ray(database_url, config, pool))
    from tuner.cli._progress import LogObserver

    db = worker_database(storage.resolve_database_url(database_url), slots)
    db.upgrade()
    runner = Worker(db, config, observer=LogObserver())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.stop())
    err.print(f"worker {runner.name} on {runner.device} ({slots} slot(s)) joined {db.shown_url}")
    try:
        ran = runner.run()
    finally:
        db.dispose()
    err.print(f"worker {runner.name} stopped after {ran} trial(s)")


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
    from importlib.metadata import entry_points

    found = entry_points(group=SERVICE_GROUP, name="serve")
    if not found:
        err.print("[red]error:[/] tuner serve needs the service: pip install 'init-tuner[service]'")
        raise typer.Exit(1)
    run_service = next(iter(found)).load()  # the api package's runner: tuner never imports api
    run_service(
        host=host,
        port=port,
        workers=workers,
        device=device,
        dashboard=dashboard,
        database_url=database_url,
    )
