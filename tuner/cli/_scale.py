"""``tuner worker --ray``: worker actors on a Ray cluster, driven from here until they end.

Imported by the ``worker`` command only when ``--ray`` is given; Ray itself is imported when
the pool starts (``tuner.scale``), so ``tuner --help`` never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tuner.cli._common import err

if TYPE_CHECKING:
    from tuner.scale import PoolSummary, RayWorkers
    from tuner.worker import WorkerConfig

# The options of ``tuner worker --ray``; None: not given (each has its default in ray_settings).
RayFlag = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="run --replicas workers as actors on a Ray cluster (the `ray` extra), each on "
        "the device Ray assigns it; waits until they all ended",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="the Ray cluster (HOST:PORT, ray://HOST:10001, auto, local); implies --ray",
        show_default="$RAY_ADDRESS, else a cluster started on this machine, else a new local Ray",
    ),
]
Replicas = Annotated[
    int | None, typer.Option(min=1, help="with --ray: worker actors", show_default="1")
]
GpusPerWorker = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="with --ray: GPU each worker reserves and trains on; a fraction shares one "
        "(0.25: four workers a GPU); 0: the CPU",
        show_default="0",
    ),
]
CpusPerWorker = Annotated[
    float | None,
    typer.Option(
        min=0.0, help="with --ray: CPUs each worker reserves (its torch threads)", show_default="1"
    ),
]
MaxRestarts = Annotated[
    int | None,
    typer.Option(
        min=-1, help="with --ray: restarts of an actor that died (-1: always)", show_default="5"
    ),
]
Spread = Annotated[
    bool | None,
    typer.Option(
        "--spread/--pack",
        help="with --ray: actors spread over the nodes, or packed on few",
        show_default="spread",
    ),
]


#: The option that sets each field of :class:`~tuner.scale.RayWorkers`.
_OPTIONS = {
    "replicas": "--replicas",
    "gpus_per_worker": "--gpus-per-worker",
    "cpus_per_worker": "--cpus-per-worker",
    "max_restarts": "--max-restarts",
    "spread": "--spread/--pack",
}


def ray_settings(
    ray: bool,
    address: str | None,
    replicas: int | None,
    gpus_per_worker: float | None,
    cpus_per_worker: float | None,
    max_restarts: int | None,
    spread: bool | None,
) -> RayWorkers | None:
    """The pool ``tuner worker``'s options ask for; None without --ray (then no Ray option
    may be given)."""
    asked = {
        "replicas": replicas,
        "gpus_per_worker": gpus_per_worker,
        "cpus_per_worker": cpus_per_worker,
        "max_restarts": max_restarts,
        "spread": spread,
    }
    given: dict[str, Any] = {f: value for f, value in asked.items() if value is not None}
    if not ray and address is None:
        if given:
            named = [_OPTIONS[field] for field in given]
            raise typer.BadParameter(f"{', '.join(named)}: only with --ray", param_hint=named[0])
        return None
    import dataclasses

    from tuner.scale import RayWorkers

    # what was not given keeps RayWorkers' defaults
    return dataclasses.replace(RayWorkers(address=address), **given)


def _absolute_sqlite(url: str) -> str:
    """A SQLite URL with its file as an absolute path: Ray's workers start in other folders."""
    from sqlalchemy.engine import make_url

    import storage

    path = storage.sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    err.print(
        "[yellow]note:[/] SQLite serves the workers of this machine only; "
        "on a Ray cluster use PostgreSQL (--database-url)",
        highlight=False,
    )
    return make_url(url).set(database=str(path.resolve())).render_as_string(hide_password=False)


def run_on_ray(database_url: str | None, config: WorkerConfig, settings: RayWorkers) -> int:
    """Start the pool, wait for its workers, print the summary; the exit code (1: a worker
    failed for good or was killed)."""
    import signal

    import storage
    from tuner.cli._progress import LogObserver
    from tuner.scale import RayPool, StopRequest, gpu_share, import_ray

    import_ray()  # without the extra: say so before touching the database
    url = _absolute_sqlite(storage.resolve_database_url(database_url))
    db = storage.Database(url)
    try:
        db.upgrade()  # once, here: the actors only join
        shown = db.shown_url
    finally:
        db.dispose()
    pool = RayPool(settings, url, config, observer=LogObserver)
    stop = StopRequest()
    with pool:
        for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which sets its own
            signal.signal(sig, stop)
        each = f"{gpu_share(settings.gpus_per_worker)}, {settings.cpus_per_worker:g} CPU"
        err.print(
            f"{settings.replicas} worker actor(s) on Ray ({each} each) joined {shown}; "
            "Ctrl-C stops them (twice: at once)",
            highlight=False,
        )
        summary = pool.run(stop, on_stopping=_stopping)
    _print_summary(summary)
    return 1 if summary.failed else 0


def _stopping(n: int) -> None:
    err.print(
        f"stopping {n} worker actor(s): running trials are handed back at their next epoch "
        "end (Ctrl-C again: at once)",
        highlight=False,
    )


def _print_summary(summary: PoolSummary) -> None:
    table = Table("actor", "node", "GPU", "device", "worker", "trials", "ended", box=None)
    for r in summary.reports:
        p = r.placement
        table.add_row(
            str(r.index) + (" (restarted)" if p is not None and p.restarted else ""),
            p.node_ip if p else "—",
            ",".join(p.gpu_ids) if p and p.gpu_ids else "—",
            p.device if p else "—",
            r.worker or "—",
            str(r.trials),
            r.ended,
        )
    err.print(table)
    failed = len(summary.failed)
    err.print(
        f"{len(summary.reports)} worker actor(s) ended: {summary.trials} trial(s) recorded"
        + (f", [red]{failed} failed[/]" if failed else ""),
        highlight=False,
    )
