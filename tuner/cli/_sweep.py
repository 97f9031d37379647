"""``tuner sweep``: a study run for CI, judged by gates; the exit code is the verdict.

0: every gate passed · 1: a quality gate failed · 2: the sweep could not run (bad definition
or options, service down, time limit hit with too few trials, baseline not comparable).
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from tuner.cli._common import DatabaseUrl, app, console, err, is_storage_error, quiet_optuna
from tuner.cli._remote import ServiceToken, ServiceUrl, one_source, wait_with_progress
from tuner.cli._tables import progress_bar, show_gates, show_leaderboard
from tuner.client import NotFound, Study, TunerClient
from tuner.errors import TunerError
from tuner.spec import parse_spec, read_definition, with_overrides
from tuner.sweep import (
    EXIT_NOT_RUN,
    Gates,
    SweepError,
    SweepOutcome,
    SweepReport,
    judge,
    make_gates,
    run_on_service,
    write_reports,
)

_VERDICT = {
    0: "[green]sweep passed[/]",
    1: "[red]sweep failed: a quality gate[/]",
    2: "[red]sweep could not run[/]",
}


def _sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file, so ``--database-url sqlite:///out/x.db`` works."""
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return  # storage reports the bad URL
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)


def _database_url(database_url: str | None) -> str:
    import storage

    return storage.resolve_database_url(database_url)


def _hidden(url: str) -> str:
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _embedded(
    definition: dict[str, Any],
    base_dir: Path,
    db_url: str,
    options: dict[str, Any],
    device: str,
    top: int,
) -> tuple[SweepOutcome, Gates]:
    import storage
    from tuner.cli._progress import LogObserver, ProgressObserver
    from tuner.studies import find_study
    from tuner.sweep.embedded import run_embedded
    from tuner.worker import RunObserver

    quiet_optuna()
    spec = parse_spec(definition, base_dir=base_dir)
    if options["beyond_seed_noise"] is not None and spec.n_replicates < 2:
        raise SweepError(
            "--beyond-seed-noise measures the seed noise from the best trial's replicates; "
            f"{spec.name!r} trains one per trial (set replicates: k or {{init: a, data: b}})"
        )
    _sqlite_folder(db_url)
    db = storage.Database(db_url)
    try:
        gates = make_gates(find_study=lambda name: find_study(db, name), **options)
    finally:
        db.dispose()
    with progress_bar() as progress:
        observer: RunObserver = LogObserver()
        if console.is_terminal:
            observer = ProgressObserver(progress, spec.budget.max_epochs, spec.resolved_direction)
        outcome = run_embedded(spec, database_url=db_url, device=device, observer=observer, top=top)
    return outcome, gates


def _on_service(
    client: TunerClient,
    definition: dict[str, Any],
    options: dict[str, Any],
    deadline: float | None,
    poll_interval: float,
    top: int,
) -> tuple[SweepOutcome, Gates]:
    def lookup(name: str) -> Study | None:
        try:
            return client.get(name)
        except NotFound:
            return None

    gates = make_gates(find_study=lookup, **options)

    def wait(study: Study, timeout: float | None) -> Study:
        return wait_with_progress(client, study, timeout=timeout, poll_interval=poll_interval)

    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    outcome = run_on_service(client, definition, timeout=left, wait=wait, top=top)
    return outcome, gates


@app.command()
def sweep(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="study definition (YAML/JSON)")],
    url: ServiceUrl = None,
    token: ServiceToken = None,
    database_url: DatabaseUrl = None,
    name: Annotated[
        str | None, typer.Option(help="run under this study name instead of the definition's")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="wall-clock limit of the sweep, in seconds", show_default=False),
    ] = None,
    min_trials: Annotated[
        int | None,
        typer.Option(
            min=1, help="finished trials enough to judge a timed-out sweep (default: the budget)"
        ),
    ] = None,
    fail_under: Annotated[
        float | None,
        typer.Option(
            metavar="X",
            help="the best value must reach X: >= X if the metric is maximized, <= X if minimized",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            metavar="FILE|STUDY",
            help="compare with an earlier sweep's --json report, or a study of this "
            "database/service",
        ),
    ] = None,
    max_regression: Annotated[
        float, typer.Option(min=0, metavar="D", help="how much worse than --baseline is allowed")
    ] = 0.0,
    allow_missing_baseline: Annotated[
        bool, typer.Option(help="skip the comparison when the baseline does not exist")
    ] = False,
    beyond_seed_noise: Annotated[
        float | None,
        typer.Option(
            metavar="K",
            help="fail on a regression only beyond K x the seed std: the sample std of the "
            "best trial's replicate values (needs replicates in the definition)",
            show_default=False,
        ),
    ] = None,
    expect_initializer: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="the best trial must use it (repeat: any of them)"),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="write the JSON summary")
    ] = None,
    markdown_file: Annotated[
        Path | None, typer.Option("--markdown", dir_okay=False, help="write a Markdown report")
    ] = None,
    junit_file: Annotated[
        Path | None,
        typer.Option("--junit", dir_okay=False, help="write JUnit XML (one case per gate)"),
    ] = None,
    device: Annotated[str, typer.Option(help="embedded: auto, cpu, cuda, cuda:1, ...")] = "auto",
    poll_interval: Annotated[
        float, typer.Option(min=0.05, help="with --url: seconds between polls")
    ] = 2.0,
    top: Annotated[int, typer.Option(min=1, help="rows in the leaderboard")] = 10,
) -> None:
    """Run a study embedded (or on a service with --url) and judge it; the exit code is the
    verdict: 0 passed, 1 a quality gate failed, 2 the sweep could not run.

    The Markdown report is also appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    one_source(url, database_url)
    if timeout is not None and timeout <= 0:
        raise typer.BadParameter(f"must be > 0, got {timeout:g}", param_hint="--timeout")
    for given, hint in (
        (max_regression, "--max-regression"),
        (beyond_seed_noise, "--beyond-seed-noise"),
    ):
        if given and baseline is None:
            raise typer.BadParameter("needs --baseline", param_hint=hint)
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    mode: Literal["embedded", "service"] = "service" if url else "embedded"
    db_url = "" if url else _database_url(database_url)
    source = url or _hidden(db_url)
    options: dict[str, Any] = {
        "fail_under": fail_under,
        "baseline": baseline,
        "allow_missing_baseline": allow_missing_baseline,
        "max_regression": max_regression,
        "expect_initializers": expect_initializer or (),
        "min_trials": min_trials,
        "beyond_seed_noise": beyond_seed_noise,
    }
    study, outcome, error = name or spec_file.stem, None, None
    try:
        # embedded, --timeout is the study's own limit; on a service the client stops waiting
        definition = with_overrides(
            read_definition(spec_file), name=name, timeout=None if url else timeout
        )
        study = str(definition.get("name") or study)
        if url:
            with TunerClient(url, token) as client:
                outcome, gates = _on_service(
                    client, definition, options, deadline, poll_interval, top
                )
        else:
            base_dir = spec_file.resolve().parent
            outcome, gates = _embedded(definition, base_dir, db_url, options, device, top)
        verdicts = judge(outcome, gates)
    except Exception as exc:  # ours is a verdict (exit 2); a bug also shows its traceback
        if not (isinstance(exc, TunerError) or is_storage_error(exc)):
            err.print(traceback.format_exc(), highlight=False)
            exc_text = f"{type(exc).__name__}: {exc}"
        else:
            exc_text = str(exc)
        error, verdicts = exc_text, ()
    report = SweepReport(study, mode, source, time.monotonic() - started, outcome, verdicts, error)
    _finish(report, json_file, markdown_file, junit_file)


def _finish(
    report: SweepReport, json_file: Path | None, markdown_file: Path | None, junit_file: Path | None
) -> None:
    if report.outcome is not None:
        show_leaderboard(report.outcome.board)
    if report.gates:
        show_gates(report.gates)
    if report.error is not None:
        err.print(f"[red]error:[/] {report.error}", highlight=False)
    summary = os.environ.get("GITHUB_STEP_SUMMARY", "").strip()
    try:
        write_reports(
            report,
            json_file=json_file,
            markdown_file=markdown_file,
            junit_file=junit_file,
            step_summary=Path(summary) if summary else None,
        )
    except OSError as exc:
        err.print(f"[red]error:[/] cannot write a report: {exc}", highlight=False)
        raise typer.Exit(EXIT_NOT_RUN) from None
    console.print(f"{_VERDICT[report.exit_code]} (exit code {report.exit_code})")
    raise typer.Exit(report.exit_code)
