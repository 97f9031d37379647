"""``tuner replay``: re-run a recorded trial and compare it with what was stored."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tuner.cli._common import DatabaseUrl, app, console, err, fmt, open_database


@app.command()
def replay(
    name: Annotated[str, typer.Argument(help="study name")],
    number: Annotated[int, typer.Argument(min=0, help="trial number")],
    database_url: DatabaseUrl = None,
    device: Annotated[
        str | None,
        typer.Option(help="default: the device the trial ran on; another one is not exact"),
    ] = None,
) -> None:
    """Re-run a trial from its manifest (seeds, configuration, device); exit 1 unless it
    matches. On another device than the recorded one it runs, but cannot match exactly."""
    from tuner.studies import replay_trial

    db = open_database(database_url, read_only=True)
    try:
        with console.status(f"replaying {name} #{number}"):
            result = replay_trial(db, name, number, device=device)
    finally:
        db.dispose()
    out = result.outcome
    table = Table(title=f"{name} #{number}: replay")
    for col in ("", "value", "stop", "epochs"):
        table.add_column(col, justify="right" if col in ("value", "epochs") else "left")
    table.add_row("stored", fmt(result.stored_value), result.stored_stop, str(result.stored_epochs))
    table.add_row("replayed", fmt(out.value), out.stop_reason, str(out.epochs_run))
    console.print(table)
    for package, (then, now) in sorted(result.version_drift.items()):
        err.print(f"[yellow]{package}: recorded {then}, running {now}[/]", highlight=False)
    if out.error:
        err.print(f"[red]replay failed:[/] {out.error}", highlight=False)
    if result.note is not None:  # another device: a difference says nothing about the record
        console.print(f"[yellow]{result.note}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1 if out.error else 0)
    if not result.matches:
        console.print(
            f"[red]differs[/]: stored {result.stored_value!r}, replayed {out.value!r}",
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(f"[green]reproduced exactly[/]: {out.value!r}", highlight=False)
