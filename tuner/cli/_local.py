"""Embedded commands: run a study here, print results, migrate a database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID

import storage
from tuner.cli._common import (
    DatabaseUrl,
    FastMath,
    Population,
    Slots,
    Threads,
    app,
    console,
)
from tuner.cli._common import fmt as _fmt
from tuner.cli._remote import ServiceToken, ServiceUrl, one_source
from tuner.cli._tables import progress_bar, show_leaderboard
from tuner.client import TunerClient
from tuner.spec import load_spec
from tuner.studies import read_leaderboard, run_study
from tuner.training import EpochStats
from tuner.worker import RunObserver


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
        board = read_leaderboard(db, study_name, top)
    finally:
        db.dispose()
    show_leaderboard(board)


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
    slots: Slots = 1,
    threads: Threads = None,
) -> None:
    """Create or resume a study and run it here (embedded worker), then print the leaderboard."""
    spec = load_spec(spec_file)
    url = storage.resolve_database_url(database_url)
    with progress_bar() as progress:
        observer = _ProgressObserver(progress, spec.budget.max_epochs, spec.resolved_direction)
        summary = run_study(
            spec,
            database_url=url,
            n_trials=n_trials,
            device=device,
            observer=observer,
            population=population,
            fast=fast,
            slots=slots,
            threads=threads,
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
    url: ServiceUrl = None,
    token: ServiceToken = None,
) -> None:
    """Print a study's leaderboard and its best result per initializer (--url: from a service)."""
    one_source(url, database_url)
    if url:
        with TunerClient(url, token) as client:
            show_leaderboard(client.leaderboard(name, top))
        return
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
