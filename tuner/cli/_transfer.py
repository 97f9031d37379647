"""``tuner transfer``: run a study's best configuration at another width (muP or standard)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import yaml
from rich.table import Table

from tuner.cli._common import DatabaseUrl, app, console, fmt, open_database
from tuner.cli._tables import progress_bar

if TYPE_CHECKING:
    from tuner.worker import RunObserver


class Parametrization(enum.StrEnum):
    mup = "mup"
    standard = "standard"


@app.command()
def transfer(
    name: Annotated[str, typer.Argument(help="the tuned study")],
    width: Annotated[
        int,
        typer.Option(
            "--width",
            min=1,
            help="the new width: the widest hidden layer (mlp) or convolution (cnn); every "
            "width scales alike",
        ),
    ],
    parametrization: Annotated[
        Parametrization,
        typer.Option(
            case_sensitive=False,
            help="mup: muP with base width = the tuned width (the hyperparameters transfer); "
            "standard: the hyperparameters copied unchanged (the baseline)",
        ),
    ] = Parametrization.mup,
    new_name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="the new study [default: NAME-w<WIDTH>-<PARAMETRIZATION>]",
            show_default=False,
        ),
    ] = None,
    n_trials: Annotated[
        int, typer.Option("--n-trials", min=1, help="trials of the configuration (own seeds)")
    ] = 1,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            help="write the new study's definition (YAML) to this file and stop: run it "
            "with `tuner run` or send it with `tuner submit`",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrl = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, ...")] = "auto",
) -> None:
    """Run study NAME's best trial at --width: a new study whose search is that trial's
    hyperparameters, the model's widths scaled, in muP (base width: the tuned width) or
    standard. Each trial's manifest records the transfer."""
    import storage
    from tuner.cli._progress import LogObserver, ProgressObserver
    from tuner.studies import run_study, transfer_study

    db = open_database(database_url, read_only=True)
    try:
        spec, best = transfer_study(
            db,
            name,
            width=width,
            parametrization=parametrization.value,
            name=new_name,
            n_trials=n_trials,
        )
    finally:
        db.dispose()
    if write is not None:
        write.write_text(yaml.safe_dump(spec.to_json(), sort_keys=False), encoding="utf-8")
        console.print(f"wrote study [bold]{spec.name}[/] to {write}", highlight=False)
        return
    url = storage.resolve_database_url(database_url)
    with progress_bar() as progress:
        observer: RunObserver = LogObserver()
        if console.is_terminal:
            observer = ProgressObserver(progress, spec.budget.max_epochs, spec.resolved_direction)
        run_study(spec, database_url=url, device=device, observer=observer)
    _show(url, spec.name, name, best.trial_number, best.value)


def _show(url: str, study: str, source: str, trial: int, source_value: float | None) -> None:
    """The source trial beside the new study's trials, with what each manifest recorded."""
    import storage

    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, study)
            found = [(r.trial_number, r.state, r.value, dict(r.manifest_json or {})) for r in rows]
    finally:
        db.dispose()
    table = Table(title=f"{source} #{trial} transferred: {study}")
    for column in ("study", "trial", "width", "parametrization", "base width", "m", "value"):
        table.add_column(
            column, justify="left" if column in ("study", "parametrization") else "right"
        )
    tuned = next((m["transfer"]["source_width"] for *_, m in found if "transfer" in m), "")
    table.add_row(source, str(trial), str(tuned), "", "", "", fmt(source_value))
    for number, state, value, manifest in found:
        record = manifest.get("transfer", {})
        table.add_row(
            study,
            str(number),
            str(record.get("width", "")),
            str(record.get("parametrization", "")),
            str(record.get("base_width", "")),
            f"{record['multiplier']:g}" if "multiplier" in record else "",
            fmt(value) if state == "complete" else state,
        )
    console.print(table)
    console.print(f"results in {storage.masked_url(url)} (study {study})", highlight=False)
