"""The ``tuner`` command line: thin typer wrappers over the engine and storage.

Rich (progress bars, tables) lives here and nowhere else. Each module registers its
commands on the one typer ``app`` when imported.
"""

from __future__ import annotations

import optuna

import storage
from tuner.cli import _check, _local, _remote, _replay, _report, _service, _sweep
from tuner.cli._common import app, err
from tuner.errors import SpecError, TunerError

__all__ = ["app", "main"]
_COMMAND_MODULES = (_local, _service, _remote, _sweep, _report, _check, _replay)


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
