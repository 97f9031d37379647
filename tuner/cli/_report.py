"""``tuner report``: a study's report as one HTML page, and its plots in the Optuna dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuner.cli._common import DatabaseUrl, app, console, open_database
from tuner.errors import TunerError


@app.command()
def report(
    name: Annotated[str, typer.Argument(help="study name")],
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="the HTML file to write")
    ],
    database_url: DatabaseUrl = None,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard/--no-dashboard",
            help="also attach the plots (and a summary note) to the study in the Optuna dashboard",
        ),
    ] = True,
    top: Annotated[
        int | None,
        typer.Option(min=1, help="rows in the leaderboard [default: 20]", show_default=False),
    ] = None,
) -> None:
    """Write a study's report: one self-contained HTML page that opens offline.

    Leaderboard, best and median value per initializer, learning curves, activation and
    gradient std by depth at initialization, lr x weight decay, parameter importances.
    """
    from tuner.report import LEADERBOARD_ROWS, attach_figures, collect_report, make_figures, render

    db = open_database(database_url, read_only=True)
    try:
        if db.current_revision() is None:
            raise TunerError(f"no study named {name!r}: {db.shown_url} holds no results yet")
        data = collect_report(db, name)
        figures = make_figures(data)
        try:
            output.write_text(render(data, figures, top=top or LEADERBOARD_ROWS), encoding="utf-8")
        except OSError as exc:
            raise TunerError(f"cannot write the report to {output}: {exc}") from exc
        console.print(f"report of study [bold]{name}[/] written to {output}")
        if dashboard:
            saved = attach_figures(db, data, figures)
            console.print(
                f"{len(saved)} plot(s) and a note attached to the study in the Optuna dashboard"
            )
    finally:
        db.dispose()
