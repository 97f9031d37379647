"""The ``tuner`` command line: thin typer wrappers over the engine and storage.

Rich (progress bars, tables) lives here and nowhere else. Each module registers its
commands on the one typer ``app`` when imported. Modules import only the light layers
(``tuner.spec``, ``tuner.client``) at their top; a command imports the engine (torch,
Optuna, SQL) inside its function, so ``tuner --help`` and the client commands stay fast
and run where only the client is installed.
"""

from __future__ import annotations

import enum
import logging
from typing import Annotated

import typer

import tuner
from tuner.cli import (
    _check,
    _local,
    _remote,
    _replay,
    _report,
    _service,
    _sweep,
    _transfer,
)
from tuner.cli._common import app, err, is_storage_error
from tuner.errors import SpecError, TunerError

__all__ = ["app", "main"]
_COMMAND_MODULES = (_local, _service, _remote, _sweep, _report, _check, _replay, _transfer)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tuner {tuner.__version__}")
        raise typer.Exit()


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="the engine's log lines on stderr, timestamped (info: every claim and trial)",
        ),
    ] = LogLevel.warning,
) -> None:
    """Hyperparameter tuning for PyTorch with weight initialization as a search dimension."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        force=True,
    )


def main() -> None:
    """Console-script entry point: turns the package's errors into messages and exit codes."""
    try:
        app()
    except SpecError as exc:
        err.print(f"[red]invalid study definition[/] ({len(exc.issues)} problem(s)):")
        for issue in exc.issues:
            err.print(f"  [bold]{issue.path}[/]: {issue.msg}", highlight=False)
        raise SystemExit(2) from None
    except Exception as exc:
        if not (isinstance(exc, TunerError) or is_storage_error(exc)):
            raise
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from None
