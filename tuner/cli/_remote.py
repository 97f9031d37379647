"""Commands that talk to a running service through :mod:`tuner.client`: submit, status.

``--url`` (or ``$TUNER_URL``) names the service; ``--token`` (or ``$TUNER_TOKEN``) is sent as
a bearer token. ``status`` and ``results`` read a database instead when no URL is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuner.cli._common import DatabaseUrl, app, console, open_database
from tuner.cli._common import fmt as _fmt
from tuner.cli._tables import progress_bar, show_leaderboard, show_study
from tuner.client import Study, TunerClient
from tuner.spec import read_definition, with_overrides

ServiceUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="TUNER_URL",
        help="the service, e.g. http://127.0.0.1:8000 (default: $TUNER_URL)",
        show_default=False,
    ),
]
ServiceToken = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TUNER_TOKEN",
        help="API token sent as a bearer token (default: $TUNER_TOKEN)",
        show_default=False,
    ),
]


def one_source(url: str | None, database_url: str | None) -> None:
    """A command reads either a service or a database, never both."""
    if url and database_url:
        raise typer.BadParameter(
            "give --url (a service) or --database-url (a database), not both",
            param_hint="--url",
        )


def wait_with_progress(
    client: TunerClient, study: Study, *, timeout: float | None, poll_interval: float
) -> Study:
    """``client.wait`` with a progress bar: finished trials, best value, live trials."""
    with progress_bar() as progress:
        task = progress.add_task(
            study.name, total=study.n_trials, best=_fmt(None), status=study.status
        )

        def show(now: Study) -> None:
            c = now.counts
            status = f"{now.status} · {c.running} running · {c.pending} pending"
            best = _fmt(now.best.value if now.best else None)
            progress.update(task, completed=c.finished, best=best, status=status)

        return client.wait(
            study.name, timeout=timeout, poll_interval=poll_interval, on_progress=show
        )


@app.command()
def submit(
    spec_file: Annotated[Path, typer.Argument(metavar="SPEC", help="study definition (YAML/JSON)")],
    url: Annotated[
        str, typer.Option("--url", envvar="TUNER_URL", help="the service (default: $TUNER_URL)")
    ],
    token: ServiceToken = None,
    name: Annotated[
        str | None, typer.Option(help="submit under this name instead of the definition's")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="wait for the study to finish, then print its leaderboard")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="with --wait: give up after this many seconds")
    ] = None,
    poll_interval: Annotated[float, typer.Option(min=0.05, help="seconds between polls")] = 2.0,
    top: Annotated[int, typer.Option(min=1, help="rows in the leaderboard")] = 10,
) -> None:
    """Queue a study on a service (it validates the definition and runs it on its workers)."""
    definition = with_overrides(read_definition(spec_file), name=name)
    with TunerClient(url, token) as client:
        study = client.submit(definition)
        console.print(
            f"submitted [bold]{study.name}[/] ({study.n_trials} trials, {study.metric} "
            f"{study.direction}): {client.url}/v1/studies/{study.name}",
            highlight=False,
        )
        if wait:
            final = wait_with_progress(client, study, timeout=timeout, poll_interval=poll_interval)
            show_leaderboard(client.leaderboard(final.name, top))
            console.print(f"study {final.name} {final.status}")


@app.command()
def status(
    name: Annotated[str, typer.Argument(help="study name")],
    url: ServiceUrl = None,
    token: ServiceToken = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the study as JSON")] = False,
) -> None:
    """A study's status, trial counts and best trial, from a service (--url) or a database."""
    one_source(url, database_url)
    if url:
        with TunerClient(url, token) as client:
            study = client.get(name)
    else:
        from tuner.studies import read_study

        db = open_database(database_url, read_only=True)
        try:
            study = read_study(db, name)
        finally:
            db.dispose()
    if as_json:
        typer.echo(study.model_dump_json(indent=2))
    else:
        show_study(study)
