"""Embedded commands: run a study here, print results, migrate a database."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tuner.cli._common import (
    Compile,
    DatabaseUrl,
    FastMath,
    Population,
    Slots,
    Threads,
    app,
    console,
    err,
    open_database,
    quiet_optuna,
)
from tuner.cli._remote import ServiceToken, ServiceUrl, one_source
from tuner.cli._tables import progress_bar, show_leaderboard
from tuner.client import TunerClient
from tuner.spec import load_spec

if TYPE_CHECKING:
    from tuner.worker import RunObserver


def print_leaderboard(database_url: str | None, study_name: str, top: int = 10) -> None:
    """Top trials, then the best result per initializer."""
    from tuner.studies import read_leaderboard

    db = open_database(database_url, read_only=True)
    try:
        board = read_leaderboard(db, study_name, top)
    finally:
        db.dispose()
    show_leaderboard(board)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM ends the run as Ctrl-C does: the running trial is handed back, recorded."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def run(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="study definition (YAML/JSON)")],
    database_url: DatabaseUrl = None,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", min=1, help="override budget.n_trials")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
    top: Annotated[int, typer.Option(min=1, help="rows in the leaderboard")] = 10,
    population: Population = 0,
    fast: FastMath = None,
    compile: Compile = False,
    slots: Slots = 1,
    threads: Threads = None,
    accept_changes: Annotated[
        bool,
        typer.Option(
            "--accept-changes",
            help="resume a study whose definition changed: the remaining trials run under "
            "the new one (the change is recorded)",
        ),
    ] = False,
) -> None:
    """Create or resume a study and run it here (embedded worker), then print the leaderboard."""
    import storage
    from tuner.cli._progress import LogObserver, ProgressObserver
    from tuner.studies import run_study

    quiet_optuna()
    spec = load_spec(spec_file)
    url = storage.resolve_database_url(database_url)
    try:
        with progress_bar() as progress, _sigterm_interrupts():
            observer: RunObserver = LogObserver()
            if console.is_terminal:
                observer = ProgressObserver(
                    progress, spec.budget.max_epochs, spec.resolved_direction
                )
            summary = run_study(
                spec,
                database_url=url,
                n_trials=n_trials,
                device=device,
                observer=observer,
                population=population,
                fast=fast,
                compile=compile,
                slots=slots,
                threads=threads,
                accept_changes=accept_changes,
            )
    except KeyboardInterrupt:
        again = f"tuner run {spec_file}"
        if database_url:
            again += f" --database-url {storage.masked_url(database_url)}"
        err.print(
            "[yellow]interrupted[/]: the running trial was handed back (it runs again, "
            f"not counted twice). Resume with: {again}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
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
    console.print(f"results in {storage.masked_url(url)} (table tuner_trial_results)")


@app.command()
def results(
    name: Annotated[str, typer.Argument(help="study name")],
    database_url: DatabaseUrl = None,
    top: Annotated[int, typer.Option(min=1, help="rows in the leaderboard")] = 10,
    url: ServiceUrl = None,
    token: ServiceToken = None,
) -> None:
    """Print a study's leaderboard and its best result per initializer (--url: from a service)."""
    one_source(url, database_url)
    if url:
        with TunerClient(url, token) as client:
            show_leaderboard(client.leaderboard(name, top))
        return
    print_leaderboard(database_url, name, top)


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the database: Optuna's tables and the tuner_ tables."""
    db = open_database(database_url)
    try:
        db.optuna_storage()  # creates (or checks) Optuna's schema
        db.upgrade()
        console.print(f"{db.shown_url}: tuner_ tables at revision {db.current_revision()}")
    finally:
        db.dispose()
