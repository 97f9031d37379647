"""The ``tuner`` command line: thin typer wrappers over the engine and storage.

Rich (progress bars, tables) lives here and nowhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import optuna
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

import storage
from tuner._engine import run_study
from tuner._errors import SpecError, TunerError
from tuner._observer import RunObserver
from tuner._spec import load_spec
from tuner._train import EpochStats
from tuner._worker import Worker, WorkerConfig

app = typer.Typer(
    help="Hyperparameter tuning for PyTorch with weight initialization as a search dimension.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; default: $TUNER_DATABASE_URL, else sqlite:///./tuner.db",
        show_default=False,
    ),
]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


class _ProgressObserver(RunObserver):
    """Shows trials done/total, the running trial's epoch, and the best value so far."""

    def __init__(self, progress: Progress, max_epochs: int, direction: str) -> None:
        self.progress, self.max_epochs, self.direction = progress, max_epochs, direction
        self.best: float | None = None
        self.task: TaskID | None = None

    def _best_of(self, value: float | None) -> None:
        if value is None:
            return
        better = self.best is None or (
            value > self.best if self.direction == "maximize" else value < self.best
        )
        if better:
            self.best = value

    def study_started(self, name: str, finished: int, target: int) -> None:
        self.task = self.progress.add_task(
            name, total=target, completed=finished, status="", best=_fmt(None)
        )

    def trial_started(self, number: int, params: dict[str, Any]) -> None:
        assert self.task is not None
        status = f"trial {number} · {params['initializer']} lr={params['lr']:.2g} · starting"
        self.progress.update(self.task, status=status)

    def epoch_finished(self, number: int, stats: EpochStats) -> None:
        assert self.task is not None
        status = f"trial {number} · epoch {stats.epoch}/{self.max_epochs}"
        self.progress.update(self.task, status=status)

    def trial_finished(self, row: storage.TrialResultData) -> None:
        assert self.task is not None
        self._best_of(row.value)
        status = f"trial {row.trial_number} · {row.stop_reason}"
        self.progress.update(self.task, advance=1, best=_fmt(self.best), status=status)


def print_leaderboard(database_url: str, study_name: str, top: int = 10) -> None:
    """Top trials, then the best result per initializer."""
    db = storage.Database(database_url)
    try:
        if db.current_revision() is None:
            raise TunerError(f"no study named {study_name!r}: {database_url} holds no results yet")
        with db.session() as session:
            record = storage.get_study_record(session, study_name)
            if record is None:
                raise TunerError(f"no study named {study_name!r} in {database_url}")
            rows = storage.list_trial_results(session, study_name, limit=top)
            per_init = storage.summarize_by_initializer(session, study_name)
            total = storage.count_trial_results(session, study_name)
            metric, direction = record.metric, record.direction
    finally:
        db.dispose()
    board = Table(title=f"{study_name}: top {len(rows)} of {total} trials ({metric}, {direction})")
    for col in ("#", "state", "stop", "initializer", "lr", "L2", "batch", "pat.", metric, "epoch"):
        board.add_column(
            col, justify="left" if col in ("state", "stop", "initializer") else "right"
        )
    for r in rows:
        board.add_row(
            str(r.trial_number),
            r.state,
            r.stop_reason,
            r.initializer,
            f"{r.lr:.3g}",
            f"{r.weight_decay:.2g}",
            str(r.batch_size),
            str(r.patience),
            _fmt(r.value),
            f"{r.best_epoch or '—'}/{r.epochs_run}",
        )
    console.print(board)
    inits = Table(title="best per initializer")
    for col in ("initializer", "trials", "complete", f"best {metric}", f"mean {metric}"):
        inits.add_column(col, justify="left" if col == "initializer" else "right")
    for s in per_init:
        inits.add_row(
            s.initializer,
            str(s.n_trials),
            str(s.n_complete),
            _fmt(s.best_value),
            _fmt(s.mean_value),
        )
    console.print(inits)


@app.command()
def run(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="study definition (YAML/JSON)")],
    database_url: DatabaseUrl = None,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="override budget.n_trials")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    top: Annotated[int, typer.Option(min=1, help="rows in the leaderboard")] = 10,
) -> None:
    """Create or resume a study and run it here (embedded worker), then print the leaderboard."""
    spec = load_spec(spec_file)
    url = storage.resolve_database_url(database_url)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials · best [green]{task.fields[best]}[/] · {task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        observer = _ProgressObserver(progress, spec.budget.max_epochs, spec.resolved_direction)
        summary = run_study(
            spec, database_url=url, n_trials=n_trials, device=device, observer=observer
        )
    if summary.ran == 0 and summary.complete:
        console.print(
            f"Study [bold]{spec.name}[/] is already finished "
            f"({summary.finished}/{summary.target} trials); its results:"
        )
    elif not summary.complete:
        console.print(
            f"[yellow]Stopped at the time limit with {summary.finished}/{summary.target} "
            "trials; run the same command again to continue.[/]"
        )
    print_leaderboard(url, spec.name, top)
    console.print(f"results in {url} (table tuner_trial_results)")


@app.command()
def results(
    name: Annotated[str, typer.Argument(help="study name")],
    database_url: DatabaseUrl = None,
    top: Annotated[int, typer.Option(min=1, help="rows in the leaderboard")] = 10,
) -> None:
    """Print a study's leaderboard and its best result per initializer."""
    print_leaderboard(storage.resolve_database_url(database_url), name, top)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the database: Optuna's tables and the tuner_ tables."""
    db = storage.Database(storage.resolve_database_url(database_url))
    try:
        db.optuna_storage()  # creates (or checks) Optuna's schema
        db.upgrade()
        console.print(f"{db.url}: tuner_ tables at revision {db.current_revision()}")
    finally:
        db.dispose()


@app.command()
def worker(
    database_url: DatabaseUrl = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    slots: Annotated[int, typer.Option(min=1, help="trials run at once on the device")] = 1,
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


def main() -> None:
    """Console-script entry point: turns the package's errors into messages and exit codes."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says it better
    try:
        app()
    except SpecError as exc:
        err.print(f"[red]invalid study definition[/] ({len(exc.issues)} problem(s)):")
        for issue in exc.issues:
            err.print(f"  [bold]{issue.path}[/]: {issue.msg}", highlight=False)
        raise SystemExit(2) from None
    except (TunerError, storage.StorageError) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from None
